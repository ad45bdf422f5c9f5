"""Working hours per team: a weekly schedule in a time zone, with holidays."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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

        This reads the schedule on every call; for many spans of one schedule (a report) take
        a :meth:`meter` once and ask it.
        """
        return self.meter().working_seconds(start, end)

    def meter(self) -> WorkingTimeMeter:
        """This schedule read once, to count the working time of many spans quickly."""
        return WorkingTimeMeter(self)

    def exact_working_seconds(self, start: datetime, end: datetime) -> float:
        """:meth:`working_seconds` the general way (cut at every offset change, a loop per
        local day with datetimes): the reference the fast path is checked against.
        """
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("working_seconds needs time-zone-aware datetimes")
        if end <= start:
            return 0.0
        if self.always:
            return (end - start).total_seconds()
        return self._exact(start, end).total_seconds()

    def _exact(self, start: datetime, end: datetime) -> timedelta:
        zone = ZoneInfo(self.timezone)
        days = {weekday: _merged(intervals) for weekday, intervals in self.weekly.items()}
        total = timedelta(0)
        for piece_start, piece_end, offset in _constant_offset_pieces(
            start.astimezone(UTC), end.astimezone(UTC), zone
        ):
            wall_start = (piece_start + offset).replace(tzinfo=None)
            wall_end = (piece_end + offset).replace(tzinfo=None)
            total += self._wall_overlap(wall_start, wall_end, days)
        return total

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


_US = 1_000_000
_HOUR_US = 3_600 * _US
_DAY_US = 24 * _HOUR_US
_PROBE_US = 6 * _HOUR_US
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_US = _EPOCH.date().toordinal() * _DAY_US  # the epoch on the wall-clock day scale


def _micros(moment: time) -> int:
    """Microseconds since midnight of a wall-clock time."""
    return ((moment.hour * 60 + moment.minute) * 60 + moment.second) * _US + moment.microsecond


class WorkingTimeMeter:
    """:meth:`WorkingHours.working_seconds` for many spans of one schedule.

    The schedule is read once: each weekday's merged intervals as microseconds of the day,
    the holidays as day numbers. A span whose UTC offset stays the same (probed every six
    hours, as the exact method does: then it is one piece there too) is counted with integer
    arithmetic on local wall-clock microseconds, the same sums the exact method makes with
    datetimes; a span across an offset change goes the exact way.
    """

    __slots__ = ("_always", "_days", "_holidays", "_hours", "_offsets", "_zone")

    def __init__(self, hours: WorkingHours) -> None:
        self._hours = hours
        self._always = hours.always
        self._zone = ZoneInfo(hours.timezone)
        self._days = tuple(
            tuple(
                (_micros(opens), _micros(closes))
                for opens, closes in _merged(tuple(hours.weekly.get(weekday, ())))
            )
            for weekday in range(7)
        )
        self._holidays = frozenset(day.toordinal() for day in hours.holidays)
        self._offsets: dict[int, int] = {}  # UTC day since the epoch -> its one UTC offset

    def working_seconds(self, start: datetime, end: datetime) -> float:
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("working_seconds needs time-zone-aware datetimes")
        if end <= start:
            return 0.0
        if self._always:
            return (end - start).total_seconds()
        zone = self._zone
        local_start = start.astimezone(zone)
        local_end = end.astimezone(zone)
        offset = local_start.utcoffset()
        if local_end.utcoffset() != offset:
            return self._hours.exact_working_seconds(start, end)
        probe, until = start.astimezone(UTC) + _PROBE, end.astimezone(UTC)
        while probe < until:  # in UTC: an aware datetime in a zone adds wall-clock time
            if probe.astimezone(zone).utcoffset() != offset:
                return self._hours.exact_working_seconds(start, end)
            probe += _PROBE
        first = local_start.toordinal() * _DAY_US + _micros(local_start.time())
        last = local_end.toordinal() * _DAY_US + _micros(local_end.time())
        return self._wall_micros(first, last) / _US

    def working_micros(self, start: int, end: int) -> int:
        """The working microseconds of ``[start, end)`` given as microseconds since the Unix
        epoch (UTC): the same count as :meth:`working_seconds`, times 10**6, for a caller that
        has integers (a report reading millions of rows) rather than datetimes.
        """
        if end <= start:
            return 0
        if self._always:
            return end - start
        offsets = self._offsets
        offset = offsets.get(start // _DAY_US)
        if offset is None:
            offset = self._offset(start)
        probe = start + _PROBE_US
        while probe < end:
            if self._offset(probe) != offset:
                return self._exact_micros(start, end)
            probe += _PROBE_US
        last = offsets.get(end // _DAY_US)
        if (self._offset(end) if last is None else last) != offset:
            return self._exact_micros(start, end)
        return self._wall_micros(start + offset + _EPOCH_US, end + offset + _EPOCH_US)

    def working_micros_each(self, spans: Iterable[tuple[int, int]]) -> list[int]:
        """:meth:`working_micros` of each ``(start, end)``, in order: the same figures, with
        the common case (a span under six hours in days of one known offset, within one
        local day) worked out inline, for a report reading hundreds of thousands of them.
        """
        if self._always:
            return [max(end - start, 0) for start, end in spans]
        offsets, days, holidays = self._offsets, self._days, self._holidays
        out: list[int] = []
        append = out.append
        for start, end in spans:
            offset = offsets.get(start // _DAY_US)
            if (
                offset is None
                or not 0 < end - start <= _PROBE_US
                or offsets.get(end // _DAY_US) != offset
            ):
                append(self.working_micros(start, end))  # the general way (and it learns)
                continue
            low = start + offset + _EPOCH_US
            high = end + offset + _EPOCH_US
            day = low // _DAY_US
            if day != high // _DAY_US:
                append(self._wall_micros(low, high))
                continue
            total = 0
            if day not in holidays:
                base = day * _DAY_US
                for opens, closes in days[(day + 6) % 7]:
                    overlap = min(high, base + closes) - max(low, base + opens)
                    if overlap > 0:
                        total += overlap
            append(total)
        return out

    def _offset(self, moment: int) -> int:
        """The zone's UTC offset (microseconds) at ``moment`` (microseconds since the epoch).

        A UTC day whose offsets at 0, 6, 12, 18 and 24 h agree has that offset throughout
        (offsets never change twice within six hours) and is remembered as such.
        """
        day = moment // _DAY_US
        offset = self._offsets.get(day)
        if offset is not None:
            return offset
        base = day * _DAY_US
        found = {self._offset_at(base + step * _PROBE_US) for step in range(5)}
        if len(found) == 1:
            offset = self._offsets[day] = found.pop()
            return offset
        return self._offset_at(moment)

    def _offset_at(self, moment: int) -> int:
        local = (_EPOCH + timedelta(microseconds=moment)).astimezone(self._zone)
        offset = local.utcoffset()
        assert offset is not None  # a ZoneInfo always knows its offset
        return offset // timedelta(microseconds=1)

    def _exact_micros(self, start: int, end: int) -> int:
        spent = self._hours._exact(
            _EPOCH + timedelta(microseconds=start), _EPOCH + timedelta(microseconds=end)
        )
        return spent // timedelta(microseconds=1)

    def _wall_micros(self, low_end: int, high_end: int) -> int:
        """The working microseconds of a local wall-clock span, both ends counted in
        microseconds from the start of day 1 (proleptic ordinal 0)."""
        days, holidays = self._days, self._holidays
        total = 0
        for day in range(low_end // _DAY_US, high_end // _DAY_US + 1):
            if day in holidays:
                continue
            base = day * _DAY_US
            for opens, closes in days[(day + 6) % 7]:  # ordinal 1 (1 Jan 0001) is a Monday
                low = max(low_end, base + opens)
                high = min(high_end, base + closes)
                if high > low:
                    total += high - low
        return total


ALWAYS_OPEN = WorkingHours(always=True)


def weekdays(start: time, end: time, days: range = range(5)) -> dict[int, tuple[Interval, ...]]:
    """The common schedule: the same hours on the given weekdays (Monday to Friday)."""
    return dict.fromkeys(days, ((start, end),))
