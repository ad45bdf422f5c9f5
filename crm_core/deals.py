"""Moving a deal through its funnel: stage history, won and lost, events."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_core.enums import StageKind
from crm_core.journal import Journal
from crm_core.models import Deal, DealStageChange, Manager, Stage
from crm_core.snapshots import DealSnapshot

StageEntered = Callable[[Session, Journal, Deal, Stage], None]


class DealError(ValueError):
    """A move the funnel does not allow; the message says why."""


class DealFieldError(DealError):
    """A value the deal cannot take; ``field`` names it."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def move_deal(
    session: Session,
    deal_id: int,
    stage_code: str,
    journal: Journal,
    *,
    lost_reason: str | None = None,
    amount: Decimal | None = None,
    on_enter: StageEntered | None = None,
) -> Deal:
    """Move the deal to ``stage_code`` of its own funnel; a no-op if it is there already.

    ``on_enter`` (the funnel automation) runs after the move, in the same transaction.
    """
    deal = session.get(Deal, deal_id, with_for_update=True)
    if deal is None:
        raise LookupError(f"deal {deal_id} not found")
    stage = session.scalar(
        select(Stage).where(Stage.funnel_id == deal.funnel_id, Stage.code == stage_code)
    )
    if stage is None:
        raise DealError(f"the deal's funnel has no stage {stage_code!r}")
    if stage.kind == StageKind.LOST and not (lost_reason or deal.lost_reason):
        raise DealError("a lost deal needs a lost_reason")
    if amount is not None:
        deal.amount = amount
    if stage.id == deal.stage_id:
        return deal
    change = DealStageChange(
        deal_id=deal.id,
        from_stage_id=deal.stage_id,
        to_stage_id=stage.id,
        actor=journal.actor,
        changed_at=journal.now,
    )
    session.add(change)
    deal.stage_id = stage.id
    deal.is_open = stage.kind == StageKind.OPEN
    deal.closed_at = None if deal.is_open else journal.now
    deal.lost_reason = lost_reason if stage.kind == StageKind.LOST else None
    deal.updated_at = journal.now
    session.flush()
    payload = {
        "deal_id": deal.id,
        "contact_id": deal.contact_id,
        "from_stage_id": change.from_stage_id,
        "stage_id": stage.id,
        "stage": stage.code,
        "kind": stage.kind,
    }
    snapshot = DealSnapshot.of(session, deal, stage.code)
    journal.recorded_and_emitted(
        "deal.stage_changed", "deal", deal.id, payload, event_key=change.id, about=snapshot
    )
    if stage.kind != StageKind.OPEN:
        outcome = "deal.won" if stage.kind == StageKind.WON else "deal.lost"
        journal.emit(
            outcome, change.id, {**payload, "lost_reason": deal.lost_reason}, about=snapshot
        )
    if on_enter is not None:
        on_enter(session, journal, deal, stage)
    return deal


_EDITABLE = ("title", "amount", "currency", "owner_id", "product")


def edit_deal(
    session: Session,
    deal_id: int,
    changes: Mapping[str, Any],
    journal: Journal,
    *,
    products: Collection[str] = (),
) -> Deal:
    """Change the deal's title, amount, currency, owner or product (from ``products``);
    each change is in the deal's history and announced as ``deal.updated``."""
    deal = session.get(Deal, deal_id, with_for_update=True)
    if deal is None:
        raise LookupError(f"deal {deal_id} not found")
    for name in set(changes) - set(_EDITABLE):
        raise DealFieldError(name, "cannot be changed here")
    product = changes.get("product")
    if product is not None and product not in products:
        known = ", ".join(sorted(products)) or "none is configured"
        raise DealFieldError("product", f"{product!r} is not in the product list ({known})")
    owner = changes.get("owner_id")
    if owner is not None:
        active = session.scalar(select(Manager.active).where(Manager.id == owner))
        if not active:
            raise DealFieldError("owner_id", f"no active manager {owner}")
    done: list[dict[str, Any]] = []
    for name, value in changes.items():
        before = getattr(deal, name)
        if before != value:
            setattr(deal, name, value)
            done.append({"field": name, "old": _plain(before), "new": _plain(value)})
    if not done:
        return deal
    deal.updated_at = journal.now
    session.flush()
    payload = {"deal_id": deal.id, "contact_id": deal.contact_id, "changes": done}
    stage = session.scalar(select(Stage.code).where(Stage.id == deal.stage_id))
    journal.recorded_and_emitted(
        "deal.updated",
        "deal",
        deal.id,
        payload,
        event_key=journal.occurrence(deal.id, "updated"),
        about=DealSnapshot.of(session, deal, str(stage)),
    )
    return deal


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, Decimal) else value
