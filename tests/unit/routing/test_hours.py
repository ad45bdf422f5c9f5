"""Working seconds between two moments: days, weekends, holidays, DST, every figure by hand."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from routing.hours import WorkingHours, weekdays

MOSCOW = ZoneInfo("Europe/Moscow")  # UTC+3 all year, no DST
BERLIN = ZoneInfo("Europe/Berlin")  # CET (UTC+1), CEST (UTC+2) from 02:00 on 29 March 2026

OFFICE = WorkingHours(
    "Europe/Moscow", weekdays(time(9), time(18)), holidays=frozenset({date(2026, 1, 7)})
)
HOUR = 3600


def _msk(year: int, month: int, day: int, hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=MOSCOW)


def test_within_one_interval() -> None:
    # Monday 2 March 2026, 10:00 to 12:30 Moscow: 2 h 30 min = 2.5 * 3600 = 9000 s
    assert OFFICE.working_seconds(_msk(2026, 3, 2, 10, 0), _msk(2026, 3, 2, 12, 30)) == 9000.0
    # the same moments given in UTC (07:00 to 09:30) give the same answer
    start = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
    assert OFFICE.working_seconds(start, start + timedelta(hours=2, minutes=30)) == 9000.0


def test_seconds_and_fractions_count_exactly() -> None:
    # Monday 09:00:00 to 09:00:01.5 Moscow: 1.5 s
    start = _msk(2026, 3, 2, 9, 0)
    assert OFFICE.working_seconds(start, start + timedelta(seconds=1.5)) == 1.5
    # Monday 08:59:30 to 09:00:30: only the 30 s after 09:00 count
    assert OFFICE.working_seconds(_msk(2026, 3, 2, 8, 59, 30), _msk(2026, 3, 2, 9, 0, 30)) == 30.0


def test_across_a_night() -> None:
    # Monday 17:00 -> Tuesday 10:00 Moscow: Mon 17-18 (1 h) + Tue 09-10 (1 h) = 2 h = 7200 s
    assert OFFICE.working_seconds(_msk(2026, 3, 2, 17, 0), _msk(2026, 3, 3, 10, 0)) == 7200.0


def test_friday_evening_to_monday_morning() -> None:
    # Fri 13 March 17:30 -> Mon 16 March 09:45 Moscow:
    # Fri 17:30-18:00 (30 min) + weekend (0) + Mon 09:00-09:45 (45 min) = 75 min = 4500 s
    assert OFFICE.working_seconds(_msk(2026, 3, 13, 17, 30), _msk(2026, 3, 16, 9, 45)) == 4500.0
    # entirely inside the weekend: Sat 10:00 -> Sun 20:00 = 0
    assert OFFICE.working_seconds(_msk(2026, 3, 14, 10, 0), _msk(2026, 3, 15, 20, 0)) == 0.0


def test_a_holiday_is_off() -> None:
    # Tue 6 Jan 12:00 -> Thu 8 Jan 12:00 Moscow, Wed 7 Jan a holiday:
    # Tue 12-18 (6 h) + Wed (0) + Thu 09-12 (3 h) = 9 h = 32400 s
    assert OFFICE.working_seconds(_msk(2026, 1, 6, 12, 0), _msk(2026, 1, 8, 12, 0)) == 32400.0
    # the holiday alone: Wed 00:00 -> Thu 00:00 = 0
    assert OFFICE.working_seconds(_msk(2026, 1, 7, 0, 0), _msk(2026, 1, 8, 0, 0)) == 0.0


def test_always_open_counts_everything_and_reversed_spans_count_nothing() -> None:
    always = WorkingHours(always=True)
    start = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
    # 2 days 12 h = 60 h = 60 * 3600 = 216000 s
    assert always.working_seconds(start, start + timedelta(days=2, hours=12)) == 216000.0
    assert always.working_seconds(start, start) == 0.0
    assert always.working_seconds(start, start - timedelta(hours=1)) == 0.0
    assert OFFICE.working_seconds(_msk(2026, 3, 2, 12, 0), _msk(2026, 3, 2, 11, 0)) == 0.0


def test_never_open_counts_nothing() -> None:
    closed = WorkingHours("Europe/Moscow")
    assert closed.working_seconds(_msk(2026, 3, 2, 0, 0), _msk(2026, 3, 9, 0, 0)) == 0.0


def test_overlapping_intervals_count_once() -> None:
    # Monday 09:00-13:00 and 12:00-18:00 join into 09:00-18:00 = 9 h = 32400 s
    hours = WorkingHours("Europe/Moscow", {0: ((time(9), time(13)), (time(12), time(18)))})
    assert hours.working_seconds(_msk(2026, 3, 2, 0, 0), _msk(2026, 3, 3, 0, 0)) == 32400.0


def test_a_split_day() -> None:
    # Monday 09:00-13:00 and 14:00-18:00 (a lunch break); 12:00 -> 15:00 = 1 h + 1 h = 7200 s
    hours = WorkingHours("Europe/Moscow", {0: ((time(14), time(18)), (time(9), time(13)))})
    assert hours.working_seconds(_msk(2026, 3, 2, 12, 0), _msk(2026, 3, 2, 15, 0)) == 7200.0


def test_berlin_spring_forward_over_a_weekend() -> None:
    # Berlin 09:00-18:00 on weekdays; the clocks jump on Sunday 29 March 2026
    # (02:00 CET -> 03:00 CEST).
    berlin = WorkingHours("Europe/Berlin", weekdays(time(9), time(18)))
    # Fri 27 March 16:00 UTC = 17:00 CET -> Mon 30 March 08:00 UTC = 10:00 CEST:
    # Fri 17-18 (1 h) + Mon 09-10 (1 h) = 2 h = 7200 s
    # (one fixed offset would be wrong: +1 reads Monday 09:00 as 08:00 UTC -> 1 h; +2 gives 3 h)
    start = datetime(2026, 3, 27, 16, 0, tzinfo=UTC)
    end = datetime(2026, 3, 30, 8, 0, tzinfo=UTC)
    assert berlin.working_seconds(start, end) == 7200.0


def test_berlin_the_short_sunday() -> None:
    # Open Sunday 00:00-06:00 in Berlin. On 29 March 2026 local 02:00-03:00 does not exist:
    # 00:00 CET = Sat 23:00 UTC ... 06:00 CEST = Sun 04:00 UTC, so only 5 h = 18000 s pass.
    sunday = WorkingHours("Europe/Berlin", {6: ((time(0), time(6)),)})
    start = datetime(2026, 3, 28, 23, 0, tzinfo=UTC)
    end = datetime(2026, 3, 29, 4, 0, tzinfo=UTC)
    assert sunday.working_seconds(start, end) == 18000.0
    # the whole week around it: the same 5 h
    assert sunday.working_seconds(start - timedelta(days=3), end + timedelta(days=3)) == 18000.0


def test_berlin_skipped_and_repeated_hours_follow_is_open() -> None:
    start_spring = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
    start_autumn = datetime(2026, 10, 24, 12, 0, tzinfo=UTC)
    day = timedelta(days=1)
    # Sunday 02:15-02:45 only: on 29 March these wall times never happen -> 0 s
    ghost = WorkingHours("Europe/Berlin", {6: ((time(2, 15), time(2, 45)),)})
    assert ghost.working_seconds(start_spring, start_spring + day) == 0.0
    # Sunday 02:30-04:00: on 29 March only 03:00-04:00 CEST (01:00-02:00 UTC) exists -> 3600 s
    half = WorkingHours("Europe/Berlin", {6: ((time(2, 30), time(4, 0)),)})
    assert half.working_seconds(start_spring, start_spring + day) == 3600.0
    # On 25 October 2026 03:00 CEST falls back to 02:00 CET (at 01:00 UTC): 02:15-02:45 happens
    # twice, at 00:15-00:45 UTC (CEST) and 01:15-01:45 UTC (CET): 30 min + 30 min = 3600 s
    assert ghost.working_seconds(start_autumn, start_autumn + day) == 3600.0
    assert ghost.is_open(datetime(2026, 10, 25, 0, 30, tzinfo=UTC))
    assert ghost.is_open(datetime(2026, 10, 25, 1, 30, tzinfo=UTC))
    # Sunday 00:00-06:00 on 25 October: 00:00 CEST = Sat 22:00 UTC ... 06:00 CET = 05:00 UTC = 7 h
    long_sunday = WorkingHours("Europe/Berlin", {6: ((time(0), time(6)),)})
    assert long_sunday.working_seconds(start_autumn, start_autumn + day) == 7 * HOUR


@pytest.mark.parametrize(
    ("zone", "start"),
    [
        ("Europe/Berlin", datetime(2026, 3, 27, 0, 0, tzinfo=UTC)),
        ("Europe/Berlin", datetime(2026, 10, 23, 0, 0, tzinfo=UTC)),
        ("America/New_York", datetime(2026, 3, 6, 0, 0, tzinfo=UTC)),
        ("Europe/Moscow", datetime(2026, 3, 6, 0, 0, tzinfo=UTC)),
    ],
)
def test_agrees_with_is_open_minute_by_minute(zone: str, start: datetime) -> None:
    # Five days around a DST change, a schedule with night and early-morning intervals:
    # the exact answer equals 60 s times the number of whole minutes is_open() calls open
    # (every boundary here is on a whole minute).
    intervals = ((time(0, 30), time(3, 30)), (time(9), time(18)), (time(22), time(23, 45)))
    hours = WorkingHours(zone, dict.fromkeys(range(7), intervals))
    minutes = 5 * 24 * 60
    open_minutes = sum(hours.is_open(start + timedelta(minutes=m)) for m in range(minutes))
    assert hours.working_seconds(start, start + timedelta(minutes=minutes)) == 60.0 * open_minutes


def test_half_a_year_is_exact() -> None:
    # 1 Jan -> 1 Jul 2026 Moscow, weekdays 09-18, 7 Jan off. Weekdays per month:
    # Jan 22 (Thu 1, Fri 2 + 4 full weeks), Feb 20, Mar 22 (4 weeks + Mon 30, Tue 31),
    # Apr 22 (4 weeks + Wed 29, Thu 30), May 21 (4 weeks + Fri 29),
    # Jun 22 (4 weeks + Mon 29, Tue 30)
    # = 22 + 20 + 22 + 22 + 21 + 22 = 129, less the holiday = 128 days * 9 h * 3600 = 4147200 s
    # (the loop runs per day, not per minute; its speed is measured in bench/, never asserted here)
    assert OFFICE.working_seconds(_msk(2026, 1, 1, 0, 0), _msk(2026, 7, 1, 0, 0)) == 4147200.0


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        OFFICE.working_seconds(datetime(2026, 3, 2, 9, 0), _msk(2026, 3, 2, 10, 0))


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York", "Europe/Moscow", "UTC"])
def test_the_meter_agrees_with_the_exact_method(zone: str) -> None:
    # Spans of a few minutes to nine days, starting every 7 h 13 min 17.5 s over a year (so
    # across both DST changes where the zone has them), against a schedule with split,
    # overlapping and night intervals and two holidays; start in UTC and in the zone itself.
    intervals = ((time(0, 30), time(3, 30)), (time(9), time(13)), (time(12), time(18)))
    weekly = {0: intervals, 1: intervals, 2: ((time(22), time(23, 45)),), 4: intervals}
    hours = WorkingHours(zone, weekly, holidays=frozenset({date(2026, 3, 30), date(2026, 11, 2)}))
    meter = hours.meter()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    step = timedelta(hours=7, minutes=13, seconds=17, microseconds=500000)
    lengths = [timedelta(minutes=7), timedelta(hours=5), timedelta(hours=30), timedelta(days=9)]
    for n in range(1200):
        at = start + n * step
        for length in lengths:
            for begin in (at, at.astimezone(ZoneInfo(zone))):
                want = hours.exact_working_seconds(begin, begin + length)
                assert meter.working_seconds(begin, begin + length) == want, (begin, length)


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York", "Europe/Moscow"])
def test_working_micros_agrees_with_the_exact_method(zone: str) -> None:
    # the same spans as above, given as microseconds since the Unix epoch
    intervals = ((time(0, 30), time(3, 30)), (time(9), time(13)), (time(12), time(18)))
    weekly = {0: intervals, 1: intervals, 2: ((time(22), time(23, 45)),), 4: intervals}
    hours = WorkingHours(zone, weekly, holidays=frozenset({date(2026, 3, 30), date(2026, 11, 2)}))
    meter = hours.meter()
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    step = timedelta(hours=7, minutes=13, seconds=17, microseconds=500001)
    lengths = [timedelta(minutes=7), timedelta(hours=5), timedelta(hours=30), timedelta(days=9)]
    tick = timedelta(microseconds=1)
    spans, wanted = [], []
    for n in range(1200):
        at = start + n * step
        for length in lengths:
            want = hours.exact_working_seconds(at, at + length)
            span = ((at - epoch) // tick, (at + length - epoch) // tick)
            assert meter.working_micros(*span) / 1_000_000 == want, (at, length)
            spans.append(span)
            wanted.append(want)
    # in one go, with a fresh meter (nothing learnt yet) and a warm one
    for each in (hours.meter(), meter):
        assert [m / 1_000_000 for m in each.working_micros_each(spans)] == wanted
    assert meter.working_micros_each([(10, 5), (5, 5)]) == [0, 0]
    assert meter.working_micros(10, 5) == 0
    assert WorkingHours(always=True).meter().working_micros(5, 10) == 5
