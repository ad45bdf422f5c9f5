"""Decisions by load that hold under concurrency (DESIGN.md rule 8).

Routing reads the managers' open loads and last assignments and decides who gets a
conversation. On PostgreSQL, transactions that route at the same time would each read
the loads as they were before any of them committed: two managers with capacity 3 got 15
and 11 conversations, and ``evenly`` gave most of a burst to whoever had waited longest
when it started. SQLite's single writer hides this.

**The choice: lock the managers a decision reads, in id order, then read and decide.**
:func:`decide_locked` decides once on what it reads, locks the rows of the managers that
decision depended on (``SELECT ... ORDER BY id FOR NO KEY UPDATE``: one statement, so
every transaction takes them in the same order and none deadlocks another; rows that
merely refer to a manager still go in meanwhile), reads the candidates again and
decides again, in the same transaction. At READ COMMITTED (the hub's isolation)
each statement sees what was committed before it began, so the second read sees every
assignment made by whoever held the locks before: decisions about one queue serialize,
while queues of other managers (another team) proceed in parallel. The locks last until
the commit, as the update of the chosen manager's ``last_assigned_at`` held its row anyway.
If the second decision reads managers the first did not (a manager joined the team
meanwhile), those are locked too and it decides again; the rare deadlock this out-of-order
lock can meet is retried by the caller's transaction.

Why not the team's row: a routing team is configuration (a queue of listed ids, of every
manager, or of the managers of no team; two teams may share managers), so the only rows
every decision about a manager meets are the managers' own. Why not a serializable
transaction with retry: concurrent ingests of one queue all conflict on the load they
read, so all but one would roll back the whole ingest (contact, message, deal, outbox)
and run it again; a burst of 32 would do several times the work that waiting a few
milliseconds for a lock costs.

Cost: on SQLite nothing (one writer: what the first read saw is still true when the
writes happen, so the first decision stands); on PostgreSQL one locking select and a
second read of the candidates per routed conversation. A decision that reads no loads (a
closed team waiting for its opening) locks nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import bindparam, select

from crm_core import ingest_sql as q
from crm_core import tables as t
from crm_core.fastsql import Raw
from routing import Candidate

D = TypeVar("D")
Decide = Callable[[Sequence[Candidate]], tuple[D, Collection[int]]]
"""A decision over the candidates, and the ids of the managers whose rows it read."""

_LOCK = (
    select(t.managers.c.id)
    .where(t.managers.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(t.managers.c.id)
    .with_for_update(key_share=True)
)
_TICK = timedelta(microseconds=1)


def decide_locked(raw: Raw, decide: Decide[D]) -> tuple[D, list[Candidate]]:
    """``decide`` on the candidates, with the managers it read locked (see the module).

    Returns the decision and the candidates it was made on.
    """
    candidates = q.candidates(raw)
    decision, read = decide(candidates)
    if raw.dialect.name == "sqlite":
        return decision, candidates
    locked: set[int] = set()
    while wanted := set(read) - locked:
        raw.connection.execute(_LOCK, {"ids": sorted(wanted)})
        locked |= wanted
        candidates = q.candidates(raw)
        decision, read = decide(candidates)
    return decision, candidates


def assignment_stamp(
    now: datetime, candidates: Sequence[Candidate], considered: Collection[int]
) -> datetime:
    """The ``last_assigned_at`` for the manager just chosen among ``considered``.

    ``now``, or a microsecond after the latest assignment among them when the clock has
    not moved past it (a manual clock, a burst within one tick, or a transaction that
    took its time stamp before it waited for the lock): the manager just chosen is then
    always the one who has waited least, and ``evenly`` goes round in turn.
    """
    read = set(considered)
    latest = max(
        (
            c.last_assigned_at
            for c in candidates
            if c.last_assigned_at is not None and c.manager_id in read
        ),
        default=None,
    )
    if latest is None or latest < now:
        return now
    return latest + _TICK
