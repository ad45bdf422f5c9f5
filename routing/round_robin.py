"""The default queue: the client's own manager first, otherwise evenly.

*Evenly* gives the conversation to the manager with room who has waited longest
since their last assignment (never-assigned managers first, then by id).
"""

from __future__ import annotations

from collections.abc import Sequence

from routing.model import Candidate, RouteDecision, RoutingRequest

_NEVER = float("-inf")


def decide(request: RoutingRequest, candidates: Sequence[Candidate]) -> RouteDecision:
    with_room = [c for c in candidates if c.has_room]
    if request.returning_owner_id is not None:
        for candidate in with_room:
            if candidate.manager_id == request.returning_owner_id:
                return RouteDecision(
                    candidate.manager_id, candidate.team_id, "returning client: own manager"
                )
    if not with_room:
        return RouteDecision(None, None, "no manager with room: waiting in queue")
    chosen = min(with_room, key=_waited_longest)
    return RouteDecision(chosen.manager_id, chosen.team_id, "round robin: waited longest")


def _waited_longest(candidate: Candidate) -> tuple[float, int]:
    last = candidate.last_assigned_at
    return (last.timestamp() if last is not None else _NEVER, candidate.manager_id)
