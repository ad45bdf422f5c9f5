"""What ingest accepts: the policy it follows and the error for what it refuses."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from crm_core.contracts import Attribution
from routing import Candidate, Decision, RoutingEvent

Router = Callable[[RoutingEvent, Sequence[Candidate]], Decision]
ACTOR = "system:ingest"


class InvalidInboundError(ValueError):
    """The message cannot be ingested as given; ``field`` names the culprit."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True, slots=True)
class IngestPolicy:
    """The settings ingest follows."""

    default_region: str = "RU"
    default_funnel: str = "consultation"
    funnel_by_channel: Mapping[str, str] = field(default_factory=dict)
    first_task_due: timedelta = timedelta(minutes=15)
    # E.164 tracking number -> its campaign (crm_core.tracking): an inbound call to one
    # carries that attribution when the line or PBX gave none.
    tracking_numbers: Mapping[str, Attribution] = field(default_factory=dict)
