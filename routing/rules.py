"""Routing rules: ordered conditions on the event, and what to do when one matches."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Literal

FIELDS = frozenset(
    {
        "channel",
        "channel_account",
        "source",
        "utm_source",
        "utm_medium",
        "utm_campaign",
        "utm_content",
        "utm_term",
        "form_id",
        "language",
        "segment",
    }
)


@dataclass(frozen=True, slots=True)
class RoutingEvent:
    """What routing knows of a new conversation or lead."""

    channel: str
    channel_account: str
    occurred_at: datetime
    text: str = ""
    source: str | None = None
    utm_source: str | None = None
    utm_medium: str | None = None
    utm_campaign: str | None = None
    utm_content: str | None = None
    utm_term: str | None = None
    form_id: str | None = None
    language: str | None = None
    segment: str | None = None
    returning: bool = False
    owner_id: int | None = None

    def field(self, name: str) -> str | None:
        value = getattr(self, name)
        return value if isinstance(value, str) else None


class Match(StrEnum):
    EQUALS = "equals"
    PREFIX = "prefix"
    REGEX = "regex"


@dataclass(frozen=True, slots=True)
class FieldCondition:
    field: str
    match: Match
    value: str

    def __post_init__(self) -> None:
        if self.field not in FIELDS:
            raise ValueError(f"unknown field {self.field!r}; known: {', '.join(sorted(FIELDS))}")
        if self.match is Match.REGEX:
            re.compile(self.value)

    def holds(self, event: RoutingEvent) -> bool:
        actual = event.field(self.field)
        if actual is None:
            return False
        if self.match is Match.EQUALS:
            return actual.casefold() == self.value.casefold()
        if self.match is Match.PREFIX:
            return actual.casefold().startswith(self.value.casefold())
        return re.search(self.value, actual) is not None


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """A task to create with the decision: kind, title, due in minutes."""

    kind: str
    title: str
    due_minutes: int = 15


@dataclass(frozen=True, slots=True)
class OutOfHours:
    """What a rule does when its team is closed."""

    action: Literal["wait", "auto_reply", "duty_team"] = "wait"
    template: str | None = None
    duty_team: str | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    team: str
    channels: frozenset[str] = frozenset()
    accounts: frozenset[str] = frozenset()
    fields: tuple[FieldCondition, ...] = ()
    keywords: tuple[str, ...] = ()
    segments: frozenset[str] = frozenset()
    hours: Literal["any", "inside", "outside"] = "any"
    client: Literal["any", "new", "returning"] = "any"
    funnel: str | None = None
    stage: str | None = None
    tasks: tuple[TaskSpec, ...] = ()
    tags: tuple[str, ...] = ()
    auto_reply: str | None = None
    out_of_hours: OutOfHours = field(default_factory=OutOfHours)

    def matches(self, event: RoutingEvent, team_open: bool) -> bool:
        if self.channels and event.channel not in self.channels:
            return False
        if self.accounts and event.channel_account not in self.accounts:
            return False
        if self.segments and event.segment not in self.segments:
            return False
        if self.client == "new" and event.returning:
            return False
        if self.client == "returning" and not event.returning:
            return False
        if self.hours == "inside" and not team_open:
            return False
        if self.hours == "outside" and team_open:
            return False
        if self.keywords:
            text = event.text.casefold()
            if not any(word.casefold() in text for word in self.keywords):
                return False
        return all(condition.holds(event) for condition in self.fields)
