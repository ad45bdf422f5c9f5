"""``POST /api/v1/deals/{id}/stage``: move a deal through its funnel."""

from __future__ import annotations

from decimal import Decimal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from crm_core import queries
from crm_core.access import sees_deal
from crm_core.deals import DealError, move_deal
from crm_core.journal import Journal
from hub.api.auth import VIEWER
from hub.api.bodies import parse_body
from hub.api.errors import ApiError, not_found
from hub.api.ids import path_id
from hub.keys import CLOCK, DATABASE, RELAY, ROUTING

routes = web.RouteTableDef()


class StageMove(BaseModel):
    """Where the deal goes; a move to a lost stage needs the reason."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)
    stage: str = Field(min_length=1, max_length=64)
    lost_reason: str | None = Field(default=None, min_length=1, max_length=500)
    amount: Decimal | None = Field(default=None, ge=0, lt=10**12, max_digits=14, decimal_places=2)


@routes.post("/api/v1/deals/{id}/stage")
async def post_deal_stage(request: web.Request) -> web.Response:
    deal_id = path_id(request)
    move = await parse_body(request, StageMove)
    viewer = request[VIEWER]
    clock = request.app[CLOCK]
    automation = request.app[ROUTING].automation

    def work(session: Session) -> queries.Row:
        if not sees_deal(session, viewer, deal_id):
            raise LookupError(f"deal {deal_id} not found")
        journal = Journal(viewer.actor, clock.now())
        move_deal(
            session,
            deal_id,
            move.stage,
            journal,
            lost_reason=move.lost_reason,
            amount=move.amount,
            on_enter=automation.on_enter,
        )
        journal.flush(session)
        detail = queries.deal_detail(session, viewer, deal_id)
        assert detail is not None
        return detail

    try:
        detail = await request.app[DATABASE].write(work)
    except LookupError:
        raise not_found("deal") from None
    except DealError as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    request.app[RELAY].wake()
    return web.json_response(detail)
