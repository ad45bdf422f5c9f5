"""What the SIP thread tells the hub, and what the hub tells a line (plain values)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from crm_core.enums import CallDisposition, Direction


@dataclass(frozen=True, slots=True)
class IncomingCall:
    """A call rings on a line; the hub answers with a :class:`CallPlan`."""

    line: str
    call_id: str
    caller: str
    callee: str
    started_at: datetime


@dataclass(frozen=True, slots=True)
class Target:
    manager_id: int
    uri: str


@dataclass(frozen=True, slots=True)
class CallPlan:
    """Who to ring, in order (each for the line's ring timeout), or take a voicemail."""

    targets: tuple[Target, ...] = ()
    voicemail: bool = False


@dataclass(frozen=True, slots=True)
class CallEnded:
    """A call is over: everything the hub needs to store it."""

    line: str
    call_id: str
    caller: str
    callee: str
    direction: Direction
    started_at: datetime
    disposition: CallDisposition
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    manager_id: int | None = None
    voicemail_path: str | None = None
    contact_id: int | None = None
    recording_path: str | None = None  # an answered call's recording (both sides), a WAV


@dataclass(frozen=True, slots=True)
class LineStatus:
    """A registration's outcome (or a listening line's start)."""

    line: str
    ok: bool
    code: int
    reason: str


SipEvent = IncomingCall | CallEnded | LineStatus
