"""The routing engine: the first matching rule names a team; the team's queue names a manager."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from routing.hours import ALWAYS_OPEN, WorkingHours
from routing.model import Candidate
from routing.queues import QueueMode, pick
from routing.rules import RoutingEvent, Rule, TaskSpec


@dataclass(frozen=True, slots=True)
class Team:
    """A queue of managers. ``members`` lists manager ids in queue order; when it is
    empty, the managers whose team is this one are the members (in id order), plus
    the managers of no team when ``include_unassigned``; ``all_managers`` takes everyone."""

    name: str
    members: tuple[int, ...] = ()
    mode: QueueMode = QueueMode.EVENLY
    hours: WorkingHours = ALWAYS_OPEN
    sticky: bool = True
    redirect_after_minutes: int | None = None
    first_response_sla_minutes: int | None = None
    include_unassigned: bool = False
    all_managers: bool = False

    def queue(self, candidates: Sequence[Candidate]) -> tuple[int, ...]:
        if self.members:
            return self.members
        return tuple(
            sorted(
                c.manager_id
                for c in candidates
                if self.all_managers
                or c.team == self.name
                or (self.include_unassigned and c.team is None)
            )
        )


@dataclass(frozen=True, slots=True)
class RoutingConfig:
    """Teams by name and the ordered rules; the last rule is the default and matches all."""

    teams: Mapping[str, Team]
    rules: tuple[Rule, ...]

    def __post_init__(self) -> None:
        if not self.rules:
            raise ValueError("at least the default rule is needed")
        for rule in self.rules:
            for team in (rule.team, rule.out_of_hours.duty_team):
                if team is not None and team not in self.teams:
                    raise ValueError(f"rule {rule.name!r} names an unknown team {team!r}")


@dataclass(frozen=True, slots=True)
class Decision:
    """Where the event goes and why; ``manager_id`` None with ``waiting`` means queued.

    ``considered`` lists, in id order, the managers whose load and last assignment the
    decision depended on (the team's queue, and the client's own manager): a caller that
    decides under concurrency locks exactly these before it reads them (DESIGN.md rule 8).
    """

    rule: str
    team: str
    manager_id: int | None
    offered_to: tuple[int, ...]
    waiting: bool
    reason: str
    funnel: str | None = None
    stage: str | None = None
    tasks: tuple[TaskSpec, ...] = ()
    tags: tuple[str, ...] = ()
    auto_reply: str | None = None
    opens_at: str | None = None
    redirect_after_minutes: int | None = None
    sla_minutes: int | None = None
    considered: tuple[int, ...] = ()


def route(event: RoutingEvent, candidates: Sequence[Candidate], config: RoutingConfig) -> Decision:
    rule = _first_match(event, config)
    team = config.teams[rule.team]
    if not team.hours.is_open(event.occurred_at):
        out = rule.out_of_hours
        if out.action == "duty_team" and out.duty_team is not None:
            team = config.teams[out.duty_team]
        else:
            opening = team.hours.next_opening(event.occurred_at)
            return _decision(
                rule,
                team,
                None,
                (),
                f"team {team.name!r} is closed; waits for opening",
                auto_reply=out.template if out.action == "auto_reply" else rule.auto_reply,
                opens_at=opening.isoformat() if opening else None,
            )
    queue = team.queue(candidates)
    considered = set(queue)
    if event.owner_id is not None and _sticks(event, team):
        considered.add(event.owner_id)
    read = tuple(sorted(considered))
    own = _own_manager(event, team, candidates)
    if own is not None:
        return _decision(rule, team, own, (own,), "returning client, own manager", considered=read)
    manager, offered = pick(team.mode, queue, candidates)
    if manager is None and not offered:
        how = "nobody available, waiting in queue"
    elif manager is None:
        how = f"offered to all {len(offered)} available"
    else:
        how = team.mode.value
    return _decision(rule, team, manager, offered, how, considered=read)


def _decision(
    rule: Rule,
    team: Team,
    manager: int | None,
    offered: tuple[int, ...],
    how: str,
    *,
    auto_reply: str | None = None,
    opens_at: str | None = None,
    considered: tuple[int, ...] = (),
) -> Decision:
    return Decision(
        rule=rule.name,
        team=team.name,
        manager_id=manager,
        offered_to=offered,
        waiting=manager is None,
        reason=f"rule {rule.name!r} -> team {team.name!r}: {how}",
        funnel=rule.funnel,
        stage=rule.stage,
        tasks=rule.tasks,
        tags=rule.tags,
        auto_reply=auto_reply if auto_reply is not None else rule.auto_reply,
        opens_at=opens_at,
        redirect_after_minutes=team.redirect_after_minutes,
        sla_minutes=team.first_response_sla_minutes,
        considered=considered,
    )


def redirect(team: Team, current: int | None, candidates: Sequence[Candidate]) -> int | None:
    """The next manager after ``current`` in the team's queue who is available and has
    room, wrapping to the start of the queue when it is exhausted (None: nobody else)."""
    queue = team.queue(candidates)
    by_id = {c.manager_id: c for c in candidates}
    start = queue.index(current) + 1 if current in queue else 0
    for manager in queue[start:] + queue[:start]:
        if manager != current and manager in by_id and by_id[manager].has_room:
            return manager
    return None


def _first_match(event: RoutingEvent, config: RoutingConfig) -> Rule:
    for rule in config.rules:
        if rule.matches(event, config.teams[rule.team].hours.is_open(event.occurred_at)):
            return rule
    return config.rules[-1]


def everyone(mode: QueueMode = QueueMode.EVENLY) -> RoutingConfig:
    """The configuration with no rules of its own: every manager, one queue."""
    team = Team("everyone", mode=mode, all_managers=True)
    return RoutingConfig({team.name: team}, (Rule("default", team.name),))


def _sticks(event: RoutingEvent, team: Team) -> bool:
    """Whether the client's own manager comes first (their load is then read too)."""
    return team.sticky and event.returning and event.owner_id is not None


def _own_manager(event: RoutingEvent, team: Team, candidates: Sequence[Candidate]) -> int | None:
    if not _sticks(event, team):
        return None
    for candidate in candidates:
        if candidate.manager_id == event.owner_id and candidate.has_room:
            return candidate.manager_id
    return None
