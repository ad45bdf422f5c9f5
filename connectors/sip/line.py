"""A SIP line: its account (registered to a PBX or listening) and the calls on it.

An inbound call rings (180) while the hub decides (:class:`~connectors.sip.events.CallPlan`);
then the line rings the managers' phones one after another, each for the line's ring
timeout, and connects the client to the first who answers (answer and bridge: the hub
sees who answered and when the call ends, which a 302 redirect would hide). Out of
hours it answers, plays the greeting and records a voicemail. Every call ends in one
:class:`~connectors.sip.events.CallEnded` for the hub to store.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pjsua2 as pj

from connectors.sip.bridge import Bridge
from connectors.sip.click_to_call import ClickToCall
from connectors.sip.config import LineConfig
from connectors.sip.events import CallPlan, IncomingCall, LineStatus, SipEvent
from connectors.sip.headers import caller_number
from connectors.sip.inbound import InboundCall
from connectors.sip.legs import NOBODY, LineAccount

log = logging.getLogger(__name__)


class Line:
    def __init__(
        self,
        endpoint: pj.Endpoint,
        config: LineConfig,
        bridge: Bridge[SipEvent],
        now: Callable[[], datetime],
    ) -> None:
        self.endpoint = endpoint
        self.config = config
        self.bridge = bridge
        self.now = now
        self.calls: dict[str, InboundCall | ClickToCall] = {}
        self.account: LineAccount | None = None
        self.transport_id: int | None = None
        self.spool = Path(tempfile.mkdtemp(prefix=f"omnihub-sip-{config.key}-"))

    @property
    def busy(self) -> bool:
        return bool(self.calls)

    def open(self) -> None:
        config = self.config
        transport = pj.TransportConfig()
        transport.boundAddress = config.host
        transport.port = config.port
        self.transport_id = self.endpoint.transportCreate(pj.PJSIP_TRANSPORT_UDP, transport)
        account = pj.AccountConfig()
        account.idUri = config.address_of_record()
        account.sipConfig.transportId = self.transport_id
        if config.mode == "register":
            assert config.registrar is not None
            account.regConfig.registrarUri = config.registrar
            account.regConfig.firstRetryIntervalSec = 5
            account.regConfig.retryIntervalSec = config.register_retry_seconds
            account.regConfig.randomRetryIntervalSec = 10
            account.sipConfig.authCreds.append(
                pj.AuthCredInfo("digest", "*", config.user or config.key, 0, config.password or "")
            )
        else:
            account.regConfig.registerOnAdd = False
        self.account = LineAccount(self)
        self.account.create(account, True)
        if config.mode == "listen":
            self.bridge.post(LineStatus(config.key, True, 200, f"listening on {config.host}"))

    def close(self) -> None:
        for call in self.calls.values():
            call.release()
        self.calls.clear()
        if self.account is not None:
            self.account.listener = NOBODY
            self.account.shutdown()
            self.account = None
        if self.transport_id is not None:
            try:
                self.endpoint.transportClose(self.transport_id)
            except pj.Error as exc:
                log.debug("SIP transport close: %s", exc.info())
            self.transport_id = None

    def hang_up_all(self) -> None:
        for call in list(self.calls.values()):
            call.abort()

    def tick(self, moment: float) -> None:
        for key, call in list(self.calls.items()):
            call.tick(moment)
            if call.finished:
                del self.calls[key]
                call.release()

    # From the hub (through the bridge).
    def apply_plan(self, call_id: str, plan: CallPlan) -> bool:
        call = self.calls.get(call_id)
        if not isinstance(call, InboundCall):
            return False
        call.apply(plan)
        return True

    def click_to_call(self, manager_id: int, manager_uri: str, number: str, contact_id: int) -> str:
        assert self.account is not None
        call = ClickToCall(self, manager_id, manager_uri, number, contact_id)
        call_id = call.start()
        self.calls[call_id] = call
        return call_id

    # From pjsua2.
    def incoming(self, account: LineAccount, prm: pj.OnIncomingCallParam) -> None:
        caller = caller_number(prm.rdata.wholeMsg) or "anonymous"
        call = InboundCall(self, account, prm.callId, caller)
        self.calls[call.call_id] = call
        call.ring()
        self.bridge.post(
            IncomingCall(self.config.key, call.call_id, caller, call.callee, call.started_at)
        )

    def registration(self, code: int, reason: str, active: bool) -> None:
        ok = 200 <= code < 300
        if not ok:
            log.warning("SIP line %s: registration failed: %s %s", self.config.key, code, reason)
        self.bridge.post(LineStatus(self.config.key, ok and active, code, reason))

    def deadline(self, seconds: float) -> float:
        return time.monotonic() + seconds
