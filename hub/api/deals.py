"""A deal's changes: ``POST /api/v1/deals/{id}/stage`` moves it through its funnel,
``PATCH /api/v1/deals/{id}`` sets its title, amount, currency, owner and product."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from crm_core import queries
from crm_core.access import sees_deal
from crm_core.deals import DealError, DealFieldError, edit_deal, move_deal
from crm_core.journal import Journal
from hub.api.auth import VIEWER
from hub.api.bodies import parse_body
from hub.api.errors import ApiError, field_error, not_found
from hub.api.ids import Id, path_id
from hub.keys import CLOCK, DATABASE, RELAY, ROUTING, SETTINGS

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
    automation = request.app[ROUTING].automation
    return await _change_deal(
        request,
        deal_id,
        lambda session, journal: move_deal(
            session,
            deal_id,
            move.stage,
            journal,
            lost_reason=move.lost_reason,
            amount=move.amount,
            on_enter=automation.on_enter,
        ),
    )


async def _change_deal(
    request: web.Request, deal_id: int, change: Callable[[Session, Journal], object]
) -> web.Response:
    """Make ``change`` to a deal the viewer may see, in one transaction; the deal after it
    (404 for one they may not see, 409 for a move the funnel refuses, 400 for a bad value)."""
    viewer = request[VIEWER]
    clock = request.app[CLOCK]

    def work(session: Session) -> queries.Row:
        if not sees_deal(session, viewer, deal_id):
            raise LookupError(f"deal {deal_id} not found")
        journal = Journal(viewer.actor, clock.now())
        change(session, journal)
        journal.flush(session)
        detail = queries.deal_detail(session, viewer, deal_id)
        assert detail is not None
        return detail

    try:
        detail = await request.app[DATABASE].write(work)
    except LookupError:
        raise not_found("deal") from None
    except DealFieldError as exc:
        raise field_error(exc.field, exc.problem) from None
    except DealError as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    request.app[RELAY].wake()
    return web.json_response(detail)


class DealPatch(BaseModel):
    """The fields to change; a field left out stays as it is (null clears product)."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)
    title: str | None = Field(default=None, min_length=1, max_length=300)
    amount: Decimal | None = Field(default=None, ge=0, lt=10**12, max_digits=14, decimal_places=2)
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    owner_id: Id | None = None
    product: str | None = Field(default=None, min_length=1, max_length=64)


@routes.patch("/api/v1/deals/{id}")
async def patch_deal(request: web.Request) -> web.Response:
    deal_id = path_id(request)
    patch = await parse_body(request, DealPatch)
    changes = patch.model_dump(exclude_unset=True)
    for name in ("title", "currency", "owner_id"):
        if name in changes and changes[name] is None:
            raise field_error(name, "may be changed, not emptied")
    viewer = request[VIEWER]
    if "owner_id" in changes and not viewer.can_reassign:
        raise ApiError(403, "forbidden", "only the head of sales or an admin hands deals over")
    products = request.app[SETTINGS].products
    return await _change_deal(
        request,
        deal_id,
        lambda session, journal: edit_deal(session, deal_id, changes, journal, products=products),
    )


@routes.get("/api/v1/products")
async def get_products(request: web.Request) -> web.Response:
    """What a deal may be about (the ``products`` setting), for the deal card's choice."""
    products = request.app[SETTINGS].products
    items = [{"code": code, "name": name} for code, name in sorted(products.items())]
    return web.json_response({"items": items})
