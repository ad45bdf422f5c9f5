"""Queue modes per team, as Bitrix24 Open Channels users know them."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from routing.model import Candidate


class QueueMode(StrEnum):
    EVENLY = "evenly"  # the available manager who has waited longest since their last one
    STRICTLY = "strictly"  # the first available manager in the team's list order
    TO_ALL = "to_all"  # every available manager sees it; the first to take it owns it


def pick(
    mode: QueueMode, members: Sequence[int], candidates: Sequence[Candidate]
) -> tuple[int | None, tuple[int, ...]]:
    """``(manager, offered_to)``: who gets it (None: nobody yet) and who is offered it.

    Only managers of ``members`` who are available and under capacity are considered;
    ``members`` gives the team's list order.
    """
    by_id = {c.manager_id: c for c in candidates}
    ready = [by_id[m] for m in members if m in by_id and by_id[m].has_room]
    if not ready:
        return None, ()
    if mode is QueueMode.STRICTLY:
        return ready[0].manager_id, (ready[0].manager_id,)
    if mode is QueueMode.TO_ALL:
        return None, tuple(c.manager_id for c in ready)
    order = {m: i for i, m in enumerate(members)}
    chosen = min(
        ready,
        key=lambda c: (
            c.last_assigned_at.timestamp() if c.last_assigned_at else float("-inf"),
            order[c.manager_id],
        ),
    )
    return chosen.manager_id, (chosen.manager_id,)
