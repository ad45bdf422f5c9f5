"""The values routing reads and returns."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Candidate:
    """A manager who might take the conversation, as routing needs to see them."""

    manager_id: int
    team_id: int | None
    available: bool
    open_load: int
    capacity: int
    last_assigned_at: datetime | None
    team: str | None = None

    @property
    def has_room(self) -> bool:
        return self.available and self.open_load < self.capacity


@dataclass(frozen=True, slots=True)
class RoutingRequest:
    """The event to route."""

    channel: str
    channel_account: str
    occurred_at: datetime
    returning_owner_id: int | None = None


@dataclass(frozen=True, slots=True)
class RouteDecision:
    """Who takes it (``manager_id`` None: it waits in the queue) and why."""

    manager_id: int | None
    team_id: int | None
    reason: str
