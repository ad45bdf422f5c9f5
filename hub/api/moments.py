"""What a moment in a request body is: an ISO 8601 date-time with its offset, in UTC.

Strict: a number is not a date (``"due_at": 0`` is a 400, not 1970). A moment that has
no UTC equivalent (``0001-01-01T00:00:00+14:00`` is in year 0) is a 400 naming the
field, before any database sees it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, Strict


def _in_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("the date-time is out of range once converted to UTC") from None


Moment = Annotated[AwareDatetime, Strict(), AfterValidator(_in_utc)]
"""A date-time field of a body: ``due_at: Moment | None = None``."""
