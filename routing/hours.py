"""Working hours per team: a weekly schedule in a time zone, with holidays."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

Interval = tuple[time, time]


@dataclass(frozen=True, slots=True)
class WorkingHours:
    """``weekly`` maps a weekday (0 = Monday) to its open intervals; a missing day is off."""

    timezone: str = "UTC"
    weekly: Mapping[int, tuple[Interval, ...]] = field(default_factory=dict)
    holidays: frozenset[date] = frozenset()
    always: bool = False

    def is_open(self, at: datetime) -> bool:
        if self.always:
            return True
        local = at.astimezone(ZoneInfo(self.timezone))
        if local.date() in self.holidays:
            return False
        now = local.time()
        return any(start <= now < end for start, end in self.weekly.get(local.weekday(), ()))

    def next_opening(self, at: datetime) -> datetime | None:
        """The first moment at or after ``at`` when the team works (None: never, within a year)."""
        if self.is_open(at):
            return at
        zone = ZoneInfo(self.timezone)
        local = at.astimezone(zone)
        for offset in range(0, 367):
            day = local.date() + timedelta(days=offset)
            if day in self.holidays:
                continue
            for start, _end in sorted(self.weekly.get(day.weekday(), ())):
                opening = datetime.combine(day, start, tzinfo=zone)
                if opening >= local:
                    return opening.astimezone(at.tzinfo)
        return None

    def working_seconds(self, start: datetime, end: datetime) -> float:
        """How many seconds of ``[start, end)`` fall inside the working hours.

        Exact across days, weekends, holidays and DST changes, and counted the way
        :meth:`is_open` judges a moment: an instant counts when its local wall-clock time lies
        in one of its local day's intervals. So a skipped hour (spring forward) never counts and
        a repeated hour (fall back) counts twice when it is inside an interval. Overlapping
        intervals count once. ``always=True`` counts everything; ``end <= start`` gives 0.

        The span is cut where the zone's UTC offset changes; on each piece the offset is
        constant, so the piece's local wall-clock span is intersected with each local day's
        intervals (a loop per day, not per minute).
        """
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("working_seconds needs time-zone-aware datetimes")
        if end <= start:
            return 0.0
        if self.always:
            return (end - start).total_seconds()
        zone = ZoneInfo(self.timezone)
        days = {weekday: _merged(intervals) for weekday, intervals in self.weekly.items()}
        total = timedelta(0)
        for piece_start, piece_end, offset in _constant_offset_pieces(
            start.astimezone(UTC), end.astimezone(UTC), zone
        ):
            wall_start = (piece_start + offset).replace(tzinfo=None)
            wall_end = (piece_end + offset).replace(tzinfo=None)
            total += self._wall_overlap(wall_start, wall_end, days)
        return total.total_seconds()

    def _wall_overlap(
        self, start: datetime, end: datetime, days: Mapping[int, tuple[Interval, ...]]
    ) -> timedelta:
        """The working time inside a naive local wall-clock span ``[start, end)``."""
        total = timedelta(0)
        day = start.date()
        while day <= end.date():
            if day not in self.holidays:
                for opens, closes in days.get(day.weekday(), ()):
                    low = max(start, datetime.combine(day, opens).replace(tzinfo=None))
                    high = min(end, datetime.combine(day, closes).replace(tzinfo=None))
                    if high > low:
                        total += high - low
            day += timedelta(days=1)
        return total


def _merged(intervals: tuple[Interval, ...]) -> tuple[Interval, ...]:
    """The intervals sorted, with overlapping or touching ones joined (so none counts twice)."""
    merged: list[Interval] = []
    for opens, closes in sorted(intervals):
        if merged and opens <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], closes))
        elif opens < closes:
            merged.append((opens, closes))
    return tuple(merged)


_PROBE = timedelta(hours=6)  # offsets never change twice within six hours
_TICK = timedelta(microseconds=1)


def _constant_offset_pieces(
    start: datetime, end: datetime, zone: ZoneInfo
) -> list[tuple[datetime, datetime, timedelta]]:
    """Cut the UTC span ``[start, end)`` where ``zone``'s UTC offset changes.

    Probes every six hours and, where the offset differs, finds the exact change by bisection
    (to the microsecond, so a change at a whole second is hit exactly).
    """

    def offset_at(moment: datetime) -> timedelta:
        offset = moment.astimezone(zone).utcoffset()
        assert offset is not None  # a ZoneInfo always knows its offset
        return offset

    pieces: list[tuple[datetime, datetime, timedelta]] = []
    piece_start, offset = start, offset_at(start)
    probe = start
    while probe < end:
        ahead = min(probe + _PROBE, end)
        if offset_at(ahead) == offset:
            probe = ahead
            continue
        low, high = probe, ahead  # the offset at low is the old one, at high a new one
        while high - low > _TICK:
            middle = low + (high - low) // 2
            if offset_at(middle) == offset:
                low = middle
            else:
                high = middle
        pieces.append((piece_start, high, offset))
        piece_start, offset, probe = high, offset_at(high), high
    pieces.append((piece_start, end, offset))
    return pieces


ALWAYS_OPEN = WorkingHours(always=True)


def weekdays(start: time, end: time, days: range = range(5)) -> dict[int, tuple[Interval, ...]]:
    """The common schedule: the same hours on the given weekdays (Monday to Friday)."""
    return dict.fromkeys(days, ((start, end),))
