"""Click-to-call: ring the manager's phone first; when they pick up, ring the client.

Runs on the SIP thread. The two legs are bridged once the client answers, and recorded
like an answered inbound call (unless the line's ``record_calls`` is off); either side
hanging up ends the other. The call is stored like an inbound one, direction ``out``:
``failed`` when the manager did not pick up, ``busy``/``missed`` when the client did not.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import TYPE_CHECKING

import pjsua2 as pj

from connectors.sip.events import CallEnded
from connectors.sip.legs import NOBODY, Leg
from connectors.sip.recorder import CallRecorder, spool_file
from crm_core.enums import CallDisposition, Direction

if TYPE_CHECKING:
    from connectors.sip.line import Line

log = logging.getLogger(__name__)


class ClickToCall:
    def __init__(
        self, line: Line, manager_id: int, manager_uri: str, number: str, contact_id: int
    ) -> None:
        self.line = line
        self.manager_id = manager_id
        self.manager_uri = manager_uri
        self.number = number
        self.contact_id = contact_id
        assert line.account is not None
        self.manager = Leg(line.account, self)
        self.client: Leg | None = None
        self.call_id = ""
        self.started_at: datetime = line.now()
        self.answered_at: datetime | None = None
        self.ended_at: datetime | None = None
        self.disposition: CallDisposition | None = None
        self.deadline: float | None = None
        self.bridged = False
        self.posted = False
        self.recorder: CallRecorder | None = None  # once bridged (the line's record_calls)
        self.closing = False  # the call is over: its recording is being finished

    @property
    def finished(self) -> bool:
        return self.posted and self.manager.gone and (self.client is None or self.client.gone)

    @property
    def slots(self) -> int:
        """pjsua call slots this call holds, or will need to ring the client."""
        held = sum(1 for leg in (self.manager, self.client) if leg is not None and leg.live)
        if self.client is None and self.manager.live:
            held += 1
        return held

    def release(self) -> None:
        """Drop the legs (on the SIP thread, once both are gone)."""
        self.recorder = None
        self.manager.listener = NOBODY
        if self.client is not None:
            self.client.listener = NOBODY
        self.client = None

    def start(self) -> str:
        self.manager.makeCall(self.manager_uri, pj.CallOpParam(True))
        self.call_id = self.manager.getInfo().callIdString
        self.deadline = time.monotonic() + self.line.config.ring_timeout_seconds
        return self.call_id

    def abort(self) -> None:
        if self.client is not None:
            self.client.drop()
        self.manager.drop()

    def tick(self, moment: float) -> None:
        if self.closing and not self.posted:
            self._post()  # once the recording is a finished WAV
        if self.deadline is None or moment < self.deadline:
            return
        self.deadline = None
        if self.client is None:
            self.manager.drop()
        elif self.answered_at is None:
            self.client.drop()

    def leg_state(self, leg: Leg, state: int, code: int) -> None:
        if leg is self.manager:
            if state == pj.PJSIP_INV_STATE_CONFIRMED and self.client is None:
                self._ring_client()
            elif state == pj.PJSIP_INV_STATE_DISCONNECTED:
                if self.client is None:
                    self.disposition = CallDisposition.FAILED
                elif not self.client.gone:
                    self.client.drop()
                self._post()
            return
        if state == pj.PJSIP_INV_STATE_CONFIRMED:
            self.answered_at = self.line.now()
            self.deadline = None
            self.disposition = CallDisposition.ANSWERED
        elif state == pj.PJSIP_INV_STATE_DISCONNECTED:
            if self.disposition is None:
                self.disposition = (
                    CallDisposition.BUSY if code in (486, 600) else CallDisposition.MISSED
                )
            self.manager.drop()
            self._post()

    def leg_media(self, leg: Leg) -> None:
        if self.client is None or self.bridged:
            return
        ours, theirs = self.manager.audio(), self.client.audio()
        if ours is not None and theirs is not None:
            ours.startTransmit(theirs)
            theirs.startTransmit(ours)
            self.bridged = True
            if self.line.config.record_calls:
                path = spool_file(self.line.spool, self.call_id, "call-")
                try:
                    self.recorder = CallRecorder.start(path, (theirs, ours))
                except pj.Error as exc:
                    log.warning(
                        "SIP line %s: click-to-call %s: cannot record: %s",
                        self.line.config.key,
                        self.call_id,
                        exc.info(),
                    )

    def post_now(self) -> None:
        """Post the call if it waits for its recording to be finished (the line stops)."""
        if self.closing and self.recorder is not None and not self.posted:
            self.recorder.give_up_waiting()
            self._post()

    def _ring_client(self) -> None:
        assert self.line.account is not None
        self.client = Leg(self.line.account, self)
        uri = self.line.config.dial_uri(self.number)
        try:
            self.client.makeCall(uri, pj.CallOpParam(True))
        except pj.Error as exc:
            log.warning(
                "SIP line %s: click-to-call %s: cannot ring %s: %s",
                self.line.config.key,
                self.call_id,
                uri,
                exc.info(),
            )
            self.client = None
            self.disposition = CallDisposition.FAILED
            self.manager.drop()
            return
        self.deadline = time.monotonic() + self.line.config.ring_timeout_seconds

    def _post(self) -> None:
        if self.posted:
            return
        self.ended_at = self.ended_at or self.line.now()  # not when the recording is finished
        if self.recorder is not None:
            self.closing = True
            self.recorder.stop()
            if not self.recorder.finished():
                return  # tick() comes back
        self.posted = True
        self.line.bridge.post(
            CallEnded(
                line=self.line.config.key,
                call_id=self.call_id,
                caller=self.manager_uri,
                callee=self.number,
                direction=Direction.OUTBOUND,
                started_at=self.started_at,
                disposition=self.disposition or CallDisposition.FAILED,
                answered_at=self.answered_at,
                ended_at=self.ended_at,
                manager_id=self.manager_id,
                contact_id=self.contact_id,
                recording_path=str(self.recorder.path) if self.recorder is not None else None,
            )
        )
