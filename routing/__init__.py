"""Routing: pure decisions over small frozen values (standard library only).

``crm_core`` builds a :class:`RoutingEvent` and the :class:`Candidate` managers, asks
:func:`route` with the :class:`RoutingConfig` the hub loaded, and applies the
:class:`Decision` inside its transaction.
"""

from routing.config import ConfigError, load_config
from routing.engine import Decision, RoutingConfig, Team, everyone, redirect, route
from routing.model import Candidate, RouteDecision, RoutingRequest
from routing.queues import QueueMode
from routing.round_robin import decide
from routing.rules import RoutingEvent, Rule, TaskSpec

__all__ = [
    "Candidate",
    "ConfigError",
    "Decision",
    "QueueMode",
    "RouteDecision",
    "RoutingConfig",
    "RoutingEvent",
    "RoutingRequest",
    "Rule",
    "TaskSpec",
    "Team",
    "decide",
    "everyone",
    "load_config",
    "redirect",
    "route",
]
