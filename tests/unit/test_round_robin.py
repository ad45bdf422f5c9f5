from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from routing import Candidate, RoutingRequest, decide

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def _request(owner: int | None = None) -> RoutingRequest:
    return RoutingRequest("api", "default", T0, returning_owner_id=owner)


def _candidate(
    manager_id: int,
    *,
    load: int = 0,
    capacity: int = 5,
    available: bool = True,
    last: datetime | None = None,
) -> Candidate:
    return Candidate(manager_id, 1, available, load, capacity, last)


def test_longest_waiting_manager_gets_it() -> None:
    candidates = [
        _candidate(1, last=T0 - timedelta(minutes=1)),
        _candidate(2, last=T0 - timedelta(minutes=30)),
        _candidate(3, last=T0 - timedelta(minutes=5)),
    ]
    assert decide(_request(), candidates).manager_id == 2


def test_never_assigned_manager_goes_first() -> None:
    candidates = [_candidate(1, last=T0), _candidate(2, last=None)]
    assert decide(_request(), candidates).manager_id == 2


def test_full_or_unavailable_managers_are_skipped_and_queue_waits() -> None:
    candidates = [_candidate(1, load=5, capacity=5), _candidate(2, available=False)]
    decision = decide(_request(), candidates)
    assert decision.manager_id is None
    assert "queue" in decision.reason


def test_returning_client_goes_to_own_manager_with_room() -> None:
    candidates = [_candidate(1), _candidate(2, last=T0)]
    assert decide(_request(owner=2), candidates).manager_id == 2
    full_owner = [_candidate(1), _candidate(2, load=5, capacity=5)]
    assert decide(_request(owner=2), full_owner).manager_id == 1


@given(
    st.lists(st.tuples(st.booleans(), st.integers(0, 6), st.integers(1, 6)), min_size=1, max_size=8)
)
def test_never_names_an_unavailable_or_full_manager(specs: list[tuple[bool, int, int]]) -> None:
    candidates = [
        _candidate(i, available=a, load=load, capacity=cap)
        for i, (a, load, cap) in enumerate(specs, start=1)
    ]
    chosen = decide(_request(), candidates).manager_id
    if chosen is None:
        assert not any(c.has_room for c in candidates)
    else:
        assert next(c for c in candidates if c.manager_id == chosen).has_room


@given(st.integers(2, 6), st.integers(1, 60))
def test_evenly_keeps_counts_within_one(managers: int, assignments: int) -> None:
    last: dict[int, datetime | None] = dict.fromkeys(range(1, managers + 1))
    counts: Counter[int] = Counter()
    now = T0
    for _ in range(assignments):
        candidates = [_candidate(m, capacity=10_000, last=last[m]) for m in last]
        chosen = decide(_request(), candidates).manager_id
        assert chosen is not None
        counts[chosen] += 1
        now += timedelta(seconds=1)
        last[chosen] = now
    totals = [counts[m] for m in last]
    assert max(totals) - min(totals) <= 1
