"""Working hours per team: a weekly schedule in a time zone, with holidays."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
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


ALWAYS_OPEN = WorkingHours(always=True)


def weekdays(start: time, end: time, days: range = range(5)) -> dict[int, tuple[Interval, ...]]:
    """The common schedule: the same hours on the given weekdays (Monday to Friday)."""
    return dict.fromkeys(days, ((start, end),))
