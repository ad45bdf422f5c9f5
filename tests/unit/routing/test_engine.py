"""The pure routing engine: rules, queue modes, working hours, configuration."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from routing.config import ConfigError, load_config
from routing.engine import RoutingConfig, Team, route
from routing.hours import WorkingHours, weekdays
from routing.model import Candidate
from routing.queues import QueueMode, pick
from routing.rules import RoutingEvent

MONDAY_NOON = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # 12:00 in Moscow


def _c(
    manager: int,
    *,
    load: int = 0,
    capacity: int = 5,
    available: bool = True,
    last: datetime | None = None,
) -> Candidate:
    return Candidate(manager, None, available, load, capacity, last)


def _event(**kw: Any) -> RoutingEvent:
    return RoutingEvent(
        **{"channel": "telegram", "channel_account": "bot", "occurred_at": MONDAY_NOON, **kw}
    )


CONFIG: dict[str, Any] = {
    "teams": {
        "sales": {
            "members": [1, 2, 3],
            "mode": "evenly",
            "hours": {
                "timezone": "Europe/Moscow",
                "weekly": {d: ["09:00-18:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
                "holidays": ["2026-01-07"],
            },
        },
        "webinars": {"members": [4, 5], "mode": "strictly"},
        "duty": {"members": [9], "mode": "to_all"},
    },
    "rules": [
        {
            "name": "webinar leads",
            "team": "webinars",
            "when": {"fields": [{"field": "utm_campaign", "match": "prefix", "value": "webinar"}]},
            "funnel": "webinar",
            "tasks": [{"kind": "call", "title": "Call", "due_minutes": 30}],
        },
        {
            "name": "night",
            "team": "sales",
            "when": {"hours": "outside"},
            "out_of_hours": {"action": "duty_team", "duty_team": "duty"},
        },
        {
            "name": "price questions",
            "team": "sales",
            "when": {"keywords": ["цена", "price"]},
            "tags": ["price"],
        },
        {"name": "default", "team": "sales"},
    ],
}


def test_first_matching_rule_wins_and_says_why() -> None:
    config = load_config(CONFIG)
    candidates = [_c(m) for m in (1, 2, 3, 4, 5, 9)]
    webinar = route(_event(utm_campaign="webinar_oct", text="price?"), candidates, config)
    assert (webinar.rule, webinar.team, webinar.manager_id, webinar.funnel) == (
        "webinar leads",
        "webinars",
        4,
        "webinar",
    )
    assert webinar.tasks[0].due_minutes == 30
    assert "webinar leads" in webinar.reason
    assert "strictly" in webinar.reason
    price = route(_event(text="Какая ЦЕНА кластера?"), candidates, config)
    assert (price.rule, price.tags) == ("price questions", ("price",))
    plain = route(_event(text="hello"), candidates, config)
    assert plain.rule == "default"


def test_out_of_hours_goes_to_the_duty_team_offered_to_all() -> None:
    config = load_config(CONFIG)
    saturday = MONDAY_NOON + timedelta(days=5)
    decision = route(_event(occurred_at=saturday), [_c(9), _c(1)], config)
    assert (decision.rule, decision.team, decision.manager_id) == ("night", "duty", None)
    assert decision.offered_to == (9,)


def test_closed_team_waits_for_opening_with_the_time() -> None:
    hours = WorkingHours("Europe/Moscow", weekdays(time(9), time(18)))
    config = RoutingConfig(
        {"sales": Team("sales", (1,), hours=hours)}, (load_config(CONFIG).rules[-1],)
    )
    friday_night = datetime(2026, 3, 6, 20, 0, tzinfo=UTC)
    decision = route(_event(occurred_at=friday_night), [_c(1)], config)
    assert decision.waiting
    assert decision.opens_at == "2026-03-09T06:00:00+00:00"  # Monday 09:00 Moscow


def test_holidays_and_time_zones() -> None:
    hours = WorkingHours(
        "Europe/Moscow", weekdays(time(9), time(18)), holidays=frozenset({date(2026, 3, 9)})
    )
    assert hours.is_open(datetime(2026, 3, 6, 6, 0, tzinfo=UTC))  # Fri 09:00 MSK
    assert not hours.is_open(datetime(2026, 3, 6, 5, 59, tzinfo=UTC))
    assert not hours.is_open(datetime(2026, 3, 9, 8, 0, tzinfo=UTC))  # a holiday
    assert hours.next_opening(datetime(2026, 3, 6, 16, 0, tzinfo=UTC)) == datetime(
        2026, 3, 10, 6, 0, tzinfo=UTC
    )


def test_sticky_returning_client_goes_to_own_manager_if_free() -> None:
    config = load_config(CONFIG)
    mine = route(_event(returning=True, owner_id=3), [_c(1), _c(3, last=MONDAY_NOON)], config)
    assert (mine.manager_id, "own manager" in mine.reason) == (3, True)
    full = route(_event(returning=True, owner_id=3), [_c(1), _c(3, load=5)], config)
    assert full.manager_id == 1


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda c: c["rules"][0].update(team="saels"), "rules[0].team"),
        (
            lambda c: c["rules"][1]["out_of_hours"].update(duty_team="nobody"),
            "rules[1].out_of_hours.duty_team",
        ),
        (lambda c: c["teams"]["sales"].update(mode="random"), "teams.sales.mode"),
        (
            lambda c: c["teams"]["sales"]["hours"].update(timezone="Mars/Base"),
            "teams.sales.hours.timezone",
        ),
        (
            lambda c: c["teams"]["sales"]["hours"]["weekly"].update(mon=["18:00-09:00"]),
            "teams.sales.hours.weekly.mon",
        ),
        (
            lambda c: c["rules"][0]["when"]["fields"][0].update(field="colour"),
            "rules[0].when.fields[0]",
        ),
        (
            lambda c: c["rules"][0]["when"]["fields"][0].update(match="regex", value="("),
            "rules[0].when.fields[0]",
        ),
        (lambda c: c.update(rules=[]), "rules"),
    ],
)
def test_bad_configuration_names_the_place(change: Any, where: str) -> None:
    import copy

    config = copy.deepcopy(CONFIG)
    change(config)
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert caught.value.where == where
    if where == "rules[0].team":
        assert "saels" in str(caught.value)


specs = st.lists(
    st.tuples(st.booleans(), st.integers(0, 6), st.integers(1, 6)), min_size=1, max_size=10
)


@given(specs, st.sampled_from(list(QueueMode)))
def test_never_an_unavailable_or_full_manager(
    spec: list[tuple[bool, int, int]], mode: QueueMode
) -> None:
    candidates = [
        _c(i, available=a, load=load, capacity=cap)
        for i, (a, load, cap) in enumerate(spec, start=1)
    ]
    manager, offered = pick(mode, [c.manager_id for c in candidates], candidates)
    by_id = {c.manager_id: c for c in candidates}
    for chosen in ([manager] if manager is not None else []) + list(offered):
        assert by_id[chosen].has_room


@given(specs)
def test_strictly_picks_the_first_available(spec: list[tuple[bool, int, int]]) -> None:
    candidates = [
        _c(i, available=a, load=load, capacity=cap)
        for i, (a, load, cap) in enumerate(spec, start=1)
    ]
    order = [c.manager_id for c in reversed(candidates)]  # list order is the team's, not ids
    manager, _ = pick(QueueMode.STRICTLY, order, candidates)
    first = next(
        (m for m in order if next(c for c in candidates if c.manager_id == m).has_room), None
    )
    assert manager == first


@given(st.integers(2, 8), st.integers(1, 80))
def test_evenly_keeps_counts_within_one(managers: int, assignments: int) -> None:
    last: dict[int, datetime | None] = dict.fromkeys(range(1, managers + 1))
    counts: Counter[int] = Counter()
    now = MONDAY_NOON
    for _ in range(assignments):
        manager, _offered = pick(
            QueueMode.EVENLY, list(last), [_c(m, capacity=1000, last=last[m]) for m in last]
        )
        assert manager is not None
        counts[manager] += 1
        now += timedelta(seconds=1)
        last[manager] = now
    assert max(counts[m] for m in last) - min(counts[m] for m in last) <= 1
