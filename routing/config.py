"""Routing configuration from plain data (the hub reads it from YAML or the API).

Everything is checked before anything is used: an error names the place
(``rules[2].team``) and what is wrong, and nothing is half-applied.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from routing.engine import RoutingConfig, Team
from routing.hours import ALWAYS_OPEN, Interval, WorkingHours
from routing.queues import QueueMode
from routing.rules import FieldCondition, Match, OutOfHours, Rule, TaskSpec

_DAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}


class ConfigError(ValueError):
    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.where = where
        self.problem = problem


def load_config(data: Mapping[str, Any]) -> RoutingConfig:
    teams_data = _mapping(data.get("teams"), "teams")
    teams = {
        name: _team(name, _mapping(spec, f"teams.{name}")) for name, spec in teams_data.items()
    }
    rules_data = _sequence(data.get("rules"), "rules")
    if not rules_data:
        raise ConfigError("rules", "at least one rule (the default) is needed")
    rules = tuple(
        _rule(_mapping(spec, f"rules[{i}]"), f"rules[{i}]", teams)
        for i, spec in enumerate(rules_data)
    )
    return RoutingConfig(teams=teams, rules=rules)


def _team(name: str, spec: Mapping[str, Any]) -> Team:
    where = f"teams.{name}"
    members = _sequence(spec.get("members", []), f"{where}.members")
    if not all(isinstance(m, int) and not isinstance(m, bool) for m in members):
        raise ConfigError(f"{where}.members", "a list of manager ids")
    try:
        mode = QueueMode(spec.get("mode", "evenly"))
    except ValueError:
        raise ConfigError(f"{where}.mode", "one of evenly, strictly, to_all") from None
    redirect = _minutes(spec, "redirect_after_minutes", where)
    sla = _minutes(spec, "first_response_sla_minutes", where)
    hours = spec.get("hours")
    return Team(
        name=name,
        members=tuple(members),
        mode=mode,
        hours=_hours(_mapping(hours, f"{where}.hours"), f"{where}.hours") if hours else ALWAYS_OPEN,
        sticky=bool(spec.get("sticky", True)),
        redirect_after_minutes=redirect,
        first_response_sla_minutes=sla,
        include_unassigned=bool(spec.get("include_unassigned", False)),
        all_managers=bool(spec.get("all_managers", False)),
    )


def _minutes(spec: Mapping[str, Any], key: str, where: str) -> int | None:
    value = spec.get(key)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
        raise ConfigError(f"{where}.{key}", "a positive number of minutes")
    return value


def _hours(spec: Mapping[str, Any], where: str) -> WorkingHours:
    timezone = spec.get("timezone", "UTC")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ConfigError(f"{where}.timezone", f"unknown time zone {timezone!r}") from None
    weekly: dict[int, tuple[Interval, ...]] = {}
    for day, intervals in _mapping(spec.get("weekly", {}), f"{where}.weekly").items():
        if day not in _DAYS:
            raise ConfigError(f"{where}.weekly.{day}", "a day is one of " + ", ".join(_DAYS))
        weekly[_DAYS[day]] = tuple(
            _interval(text, f"{where}.weekly.{day}")
            for text in _sequence(intervals, f"{where}.weekly.{day}")
        )
    holidays = set()
    for i, text in enumerate(_sequence(spec.get("holidays", []), f"{where}.holidays")):
        try:
            holidays.add(date.fromisoformat(str(text)))
        except ValueError:
            raise ConfigError(f"{where}.holidays[{i}]", "a date like 2026-01-07") from None
    return WorkingHours(timezone=timezone, weekly=weekly, holidays=frozenset(holidays))


def _interval(text: Any, where: str) -> Interval:
    try:
        start, end = (time.fromisoformat(part.strip()) for part in str(text).split("-"))
    except ValueError:
        raise ConfigError(where, f"{text!r} is not like '09:00-18:00'") from None
    if not start < end:
        raise ConfigError(where, f"{text!r} ends before it starts")
    return start, end


def _rule(spec: Mapping[str, Any], where: str, teams: Mapping[str, Team]) -> Rule:
    name = str(spec.get("name") or where)
    team = spec.get("team")
    if team not in teams:
        raise ConfigError(f"{where}.team", f"rule {name!r} names an unknown team {team!r}")
    when = _mapping(spec.get("when", {}), f"{where}.when")
    out = _mapping(spec.get("out_of_hours", {}), f"{where}.out_of_hours")
    duty = out.get("duty_team")
    if duty is not None and duty not in teams:
        raise ConfigError(f"{where}.out_of_hours.duty_team", f"unknown team {duty!r}")
    action = out.get("action", "wait")
    if action not in ("wait", "auto_reply", "duty_team"):
        raise ConfigError(f"{where}.out_of_hours.action", "one of wait, auto_reply, duty_team")
    fields = []
    for i, cond in enumerate(_sequence(when.get("fields", []), f"{where}.when.fields")):
        cond = _mapping(cond, f"{where}.when.fields[{i}]")
        try:
            fields.append(
                FieldCondition(
                    str(cond.get("field")),
                    Match(cond.get("match", "equals")),
                    str(cond.get("value", "")),
                )
            )
        except Exception as exc:  # an unknown field, match or a bad regex
            raise ConfigError(f"{where}.when.fields[{i}]", str(exc)) from None
    tasks = tuple(
        TaskSpec(
            str(t.get("kind", "follow_up")),
            str(t.get("title", "Follow up")),
            int(t.get("due_minutes", 15)),
        )
        for t in (
            _mapping(x, f"{where}.tasks")
            for x in _sequence(spec.get("tasks", []), f"{where}.tasks")
        )
    )
    hours = when.get("hours", "any")
    client = when.get("client", "any")
    if hours not in ("any", "inside", "outside"):
        raise ConfigError(f"{where}.when.hours", "one of any, inside, outside")
    if client not in ("any", "new", "returning"):
        raise ConfigError(f"{where}.when.client", "one of any, new, returning")
    return Rule(
        name=name,
        team=str(team),
        channels=frozenset(_strings(when.get("channels", []), f"{where}.when.channels")),
        accounts=frozenset(_strings(when.get("accounts", []), f"{where}.when.accounts")),
        fields=tuple(fields),
        keywords=tuple(_strings(when.get("keywords", []), f"{where}.when.keywords")),
        segments=frozenset(_strings(when.get("segments", []), f"{where}.when.segments")),
        hours=hours,
        client=client,
        funnel=spec.get("funnel"),
        stage=spec.get("stage"),
        tasks=tasks,
        tags=tuple(_strings(spec.get("tags", []), f"{where}.tags")),
        auto_reply=spec.get("auto_reply"),
        out_of_hours=OutOfHours(action=action, template=out.get("template"), duty_team=duty),
    )


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(where, "expected a mapping")
    return value


def _sequence(value: Any, where: str) -> Sequence[Any]:
    if not isinstance(value, list | tuple):
        raise ConfigError(where, "expected a list")
    return value


def _strings(value: Any, where: str) -> list[str]:
    items = _sequence(value, where)
    if not all(isinstance(item, str) for item in items):
        raise ConfigError(where, "expected a list of strings")
    return list(items)
