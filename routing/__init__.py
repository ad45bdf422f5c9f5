"""Routing: pure decisions over small frozen values (standard library only).

``crm_core.ingest`` builds a :class:`RoutingRequest` and the candidates, calls
:func:`decide`, and applies the :class:`RouteDecision` inside its transaction.
"""

from routing.model import Candidate, RouteDecision, RoutingRequest
from routing.round_robin import decide

__all__ = ["Candidate", "RouteDecision", "RoutingRequest", "decide"]
