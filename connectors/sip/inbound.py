"""One inbound call on a line: ring the managers in turn, or take a voicemail.

Runs on the SIP thread. The client's leg rings (180) until a manager's leg answers,
then it is answered and the two are bridged, and recorded (unless the line's
``record_calls`` is off): both legs feed one WAV recorder in the line's spool folder,
finished when the call ends. A leg that rings past the line's timeout is cancelled and
the next manager is rung; when nobody is left the client hears 486 (every phone was
busy) or 480. A client who hangs up while it rings is a missed call.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pjsua2 as pj

from connectors.sip.events import CallEnded, CallPlan, Target
from connectors.sip.legs import NOBODY, Leg, LineAccount
from connectors.sip.recorder import finished_wav as _finished_wav
from connectors.sip.recorder import spool_file
from crm_core.enums import CallDisposition, Direction

if TYPE_CHECKING:
    from connectors.sip.line import Line

log = logging.getLogger(__name__)
_BUSY = {486, 600}
_CLOSING_SECONDS = 1.0  # how long a voicemail or recording may take to be finished by pjsua


class InboundCall:
    def __init__(self, line: Line, account: LineAccount, pj_call_id: int, caller: str) -> None:
        self.line = line
        self.account = account
        self.client = Leg(account, self, pj_call_id)
        info = self.client.getInfo()
        self.call_id: str = info.callIdString
        self.callee: str = info.localUri
        self.caller = caller
        self.started_at: datetime = line.now()
        self.answered_at: datetime | None = None
        self.ended_at: datetime | None = None
        self.disposition: CallDisposition | None = None
        self.targets: list[Target] = []
        self.rung = 0
        self.busy_answers = 0
        self.rejected = 0
        self.manager: Leg | None = None
        self.manager_target: Target | None = None
        self.manager_id: int | None = None
        self.deadline: float | None = time.monotonic() + line.config.plan_timeout_seconds
        self.voicemail = False
        self.player: pj.AudioMediaPlayer | None = None
        self.recorder: pj.AudioMediaRecorder | None = None
        self.recording: Path | None = None  # the voicemail's file, or the answered call's
        self.closing_until: float | None = None  # the recorder is closing its file
        self.bridged = False
        self.posted = False

    @property
    def finished(self) -> bool:
        return self.posted and self.client.gone and (self.manager is None or self.manager.gone)

    def release(self) -> None:
        """Drop the legs (on the SIP thread, once both are gone)."""
        for leg in (self.client, self.manager):
            if leg is not None:
                leg.listener = NOBODY
        self.manager = None
        self.player = None
        self.recorder = None

    @property
    def slots(self) -> int:
        """pjsua call slots this call holds, or will need to ring a manager."""
        held = sum(1 for leg in (self.client, self.manager) if leg is not None and leg.live)
        may_ring = not self.client.gone and not self.voicemail and self.answered_at is None
        if may_ring and (self.manager is None or not self.manager.live):
            held += 1  # the manager's leg it will place
        return held

    def ring(self) -> None:
        self.client.respond(180)

    def refuse(self, code: int, disposition: CallDisposition) -> None:
        """The line cannot take the call (busy): the caller hears ``code``; stored as it is."""
        self.deadline = None
        self.disposition = disposition
        self.client.respond(code)  # its DISCONNECTED posts the call

    def apply(self, plan: CallPlan) -> None:
        if self.client.gone or self.disposition is not None:
            return
        self.deadline = None
        if plan.voicemail:
            self.voicemail = True
            self.client.respond(200)
            return
        self.targets = list(plan.targets)
        self._ring_next()

    def abort(self) -> None:
        """The line shuts down: end both legs; the call is stored as it stands."""
        if self.disposition is None and self.answered_at is None:
            self.disposition = CallDisposition.MISSED
        if self.manager is not None:
            self.manager.drop()
        self.client.respond(480) if self.answered_at is None else self.client.drop()

    def tick(self, moment: float) -> None:
        if self.closing_until is not None and not self.posted:
            self._post()  # once the voicemail is a finished WAV
        if self.deadline is None or moment < self.deadline:
            return
        self.deadline = None
        if self.voicemail:
            self.client.drop()  # the voicemail's length limit
        elif self.manager is not None and self.answered_at is None:
            log.info(
                "SIP line %s: call %s: %s did not answer in time",
                self.line.config.key,
                self.call_id,
                self.manager_target,
            )
            self.manager.drop()  # its DISCONNECTED rings the next one
        elif not self.targets and self.disposition is None and not self.client.gone:
            log.warning(
                "SIP line %s: call %s: no plan from the hub in time",
                self.line.config.key,
                self.call_id,
            )
            self.disposition = CallDisposition.FAILED
            self.client.respond(480)

    def _ring_next(self) -> None:
        if self.client.gone:
            return
        if self.rung >= len(self.targets):
            if self.busy_answers and self.busy_answers == self.rung:
                self.disposition = CallDisposition.BUSY
                self.client.respond(486)
            else:
                self.disposition = (
                    CallDisposition.REJECTED
                    if self.rejected == self.rung and self.rung
                    else CallDisposition.MISSED
                )
                self.client.respond(480)
            return
        target = self.targets[self.rung]
        self.rung += 1
        leg = Leg(self.account, self)
        prm = pj.CallOpParam(True)
        try:
            leg.makeCall(target.uri, prm)
        except pj.Error as exc:
            log.warning(
                "SIP line %s: call %s: cannot ring %s: %s",
                self.line.config.key,
                self.call_id,
                target.uri,
                exc.info(),
            )
            self._ring_next()
            return
        self.manager, self.manager_target = leg, target
        self.deadline = time.monotonic() + self.line.config.ring_timeout_seconds

    # Leg callbacks.
    def leg_state(self, leg: Leg, state: int, code: int) -> None:
        if leg is self.client:
            if state == pj.PJSIP_INV_STATE_CONFIRMED and self.voicemail:
                self.answered_at = self.line.now()
                self.deadline = time.monotonic() + self.line.config.voicemail_max_seconds
            elif state == pj.PJSIP_INV_STATE_DISCONNECTED:
                self._client_gone()
            return
        if state == pj.PJSIP_INV_STATE_CONFIRMED and self.answered_at is None:
            self.answered_at = self.line.now()
            self.deadline = None
            self.disposition = CallDisposition.ANSWERED
            self.manager_id = self.manager_target.manager_id if self.manager_target else None
            self.client.respond(200)
        elif state == pj.PJSIP_INV_STATE_DISCONNECTED:
            if self.answered_at is not None or self.client.gone:
                self.client.drop()
                self._post()
                return
            if code in _BUSY:
                self.busy_answers += 1
            elif code == 603:
                self.rejected += 1
            self._ring_next()

    def leg_media(self, leg: Leg) -> None:
        client_audio = self.client.audio()
        if client_audio is None:
            return
        if self.voicemail and leg is self.client and self.recorder is None:
            self._start_voicemail(client_audio)
            return
        manager_audio = self.manager.audio() if self.manager is not None else None
        if manager_audio is not None and not self.bridged:
            client_audio.startTransmit(manager_audio)
            manager_audio.startTransmit(client_audio)
            self.bridged = True
            if self.line.config.record_calls and self.recorder is None:
                self._start_recording(client_audio, manager_audio)

    def _start_recording(self, *sides: pj.AudioMedia) -> None:
        """Record the answered call: both legs feed one recorder (the bridge mixes them)."""
        path = spool_file(self.line.spool, self.call_id, "call-")
        recorder = pj.AudioMediaRecorder()
        try:
            recorder.createRecorder(str(path))
            for audio in sides:
                audio.startTransmit(recorder)
        except pj.Error as exc:
            log.warning(
                "SIP line %s: call %s: cannot record: %s",
                self.line.config.key,
                self.call_id,
                exc.info(),
            )
            return
        self.recorder, self.recording = recorder, path

    def _start_voicemail(self, audio: pj.AudioMedia) -> None:
        greeting = self.line.config.greeting_wav
        if greeting and Path(greeting).is_file():
            self.player = pj.AudioMediaPlayer()
            self.player.createPlayer(greeting, pj.PJMEDIA_FILE_NO_LOOP)
            self.player.startTransmit(audio)
        self.recording = spool_file(self.line.spool, self.call_id)
        self.recorder = pj.AudioMediaRecorder()
        self.recorder.createRecorder(str(self.recording))
        audio.startTransmit(self.recorder)

    def _client_gone(self) -> None:
        self.ended_at = self.line.now()
        self.deadline = None
        if self.disposition is None:
            self.disposition = (
                CallDisposition.VOICEMAIL if self.voicemail else CallDisposition.MISSED
            )
        if self.manager is not None and not self.manager.gone:
            self.manager.drop()
        self._post()

    def post_now(self) -> None:
        """Post the call if it waits for its recording to be finished (the line stops)."""
        if self.closing_until is not None:
            self.closing_until = 0.0
            self._post()

    def _post(self) -> None:
        if self.posted or not self.client.gone:
            return
        self.player = None
        if self.recorder is not None:
            # Destroying the recorder closes its file, but pjsua writes the WAV's sizes (and
            # the last buffered audio) when the conference bridge lets go of the port, on
            # its next clock tick: the call is posted once the file is finished.
            self.recorder = None
            self.closing_until = time.monotonic() + _CLOSING_SECONDS
        if self.closing_until is not None and self.recording is not None:
            if not _finished_wav(self.recording):
                if time.monotonic() < self.closing_until:
                    return  # tick() comes back
                log.warning(
                    "SIP line %s: call %s: the recording was not finished by pjsua",
                    self.line.config.key,
                    self.call_id,
                )
            self.closing_until = None
        self.posted = True
        self.line.bridge.post(
            CallEnded(
                line=self.line.config.key,
                call_id=self.call_id,
                caller=self.caller,
                callee=self.callee,
                direction=Direction.INBOUND,
                started_at=self.started_at,
                disposition=self.disposition or CallDisposition.MISSED,
                answered_at=self.answered_at,
                ended_at=self.ended_at or self.line.now(),
                # Who answered; else who it was routed to first (the call back is theirs).
                manager_id=self.manager_id
                or (self.targets[0].manager_id if self.targets else None),
                voicemail_path=str(self.recording) if self.recording and self.voicemail else None,
                recording_path=(
                    str(self.recording) if self.recording and not self.voicemail else None
                ),
            )
        )
