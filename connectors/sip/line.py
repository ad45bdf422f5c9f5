"""A SIP line: its account (registered to a PBX or listening) and the calls on it.

An inbound call rings (180) while the hub decides (:class:`~connectors.sip.events.CallPlan`);
then the line rings the managers' phones one after another, each for the line's ring
timeout, and connects the client to the first who answers (answer and bridge: the hub
sees who answered and when the call ends, which a 302 redirect would hide). Out of
hours it answers, plays the greeting and records a voicemail. Every call ends in one
:class:`~connectors.sip.events.CallEnded` for the hub to store.

The line advertises its own address (``host``, or ``public_address``) in Contact, Via and
the SDP, and binds its calls' RTP sockets there too, in ``rtp_port_min``..``rtp_port_max``
when set. An INVITE from an address outside ``allow_from`` is answered ``403`` before the
hub hears of it: nothing is stored.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pjsua2 as pj

from connectors.sip.bridge import Bridge
from connectors.sip.click_to_call import ClickToCall
from connectors.sip.config import LineConfig, source_ip
from connectors.sip.events import CallEnded, CallPlan, IncomingCall, LineStatus, SipEvent
from connectors.sip.headers import caller_number, header_values
from connectors.sip.inbound import InboundCall
from connectors.sip.legs import NOBODY, Leg, LineAccount
from crm_core.enums import CallDisposition, Direction

log = logging.getLogger(__name__)
_REMEMBERED = 10_000  # Call-IDs of finished calls a line still knows (a late INVITE is refused)
_REPEAT = 482  # Loop Detected: a request of a call the line already has (RFC 3261 8.2.2.2)
_FULL = 486  # Busy Here: no call slot left
_FORBIDDEN = 403  # a source outside the line's allow_from
_QUIET_SECONDS = 60.0  # one warning per refused address in this time; the rest at debug
_REFUSED_REMEMBERED = 1_000


def _no_limit() -> int:
    return 1 << 30


class Line:
    def __init__(
        self,
        endpoint: pj.Endpoint,
        config: LineConfig,
        bridge: Bridge[SipEvent],
        now: Callable[[], datetime],
        room: Callable[[], int] = _no_limit,
    ) -> None:
        self.endpoint = endpoint
        self.config = config
        self.bridge = bridge
        self.now = now
        self.calls: dict[str, InboundCall | ClickToCall] = {}
        self.room = room  # free pjsua call slots, all lines together
        self.finished_ids: OrderedDict[str, None] = OrderedDict()
        self.account: LineAccount | None = None
        self.transport_id: int | None = None
        self.spool = Path(tempfile.mkdtemp(prefix=f"omnihub-sip-{config.key}-"))
        self.refused_sources: OrderedDict[str, float] = OrderedDict()  # address -> last warned

    @property
    def busy(self) -> bool:
        return bool(self.calls)

    @property
    def slots_in_use(self) -> int:
        """pjsua call slots the calls on this line hold or are about to need."""
        strays = self.account.slots_in_use if self.account is not None else 0
        return sum(call.slots for call in self.calls.values()) + strays

    def known(self, call_id: str) -> bool:
        """A call with this Call-ID is on the line, or was."""
        return call_id in self.calls or call_id in self.finished_ids

    def _remember(self, call_id: str) -> None:
        self.finished_ids[call_id] = None
        self.finished_ids.move_to_end(call_id)
        while len(self.finished_ids) > _REMEMBERED:
            self.finished_ids.popitem(last=False)

    def open(self) -> None:
        config = self.config
        transport = pj.TransportConfig()
        transport.boundAddress = config.host
        transport.port = config.port
        if config.public_address:
            transport.publicAddress = config.public_address  # Via and Contact
        self.transport_id = self.endpoint.transportCreate(pj.PJSIP_TRANSPORT_UDP, transport)
        account = pj.AccountConfig()
        account.idUri = config.address_of_record()
        account.sipConfig.transportId = self.transport_id
        _media(account.mediaConfig.transportConfig, config)
        # pjsua's defaults rewrite Contact and Via from the registrar's answer and send
        # keep-alives every 15 s: only when asked (a register line behind NAT).
        nat = account.natConfig
        rewrite = 1 if config.contact_rewrite else 0
        nat.contactRewriteUse = rewrite
        nat.viaRewriteUse = rewrite
        nat.sdpNatRewriteUse = rewrite
        nat.udpKaIntervalSec = config.keepalive_seconds
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
            if not config.allow_from:
                log.warning(
                    "SIP line %s: listening on %s:%d, it takes calls from anyone "
                    "(allow_from is empty)",
                    config.key,
                    config.host,
                    config.port,
                )
            self.bridge.post(LineStatus(config.key, True, 200, f"listening on {config.host}"))

    def close(self) -> None:
        for call in self.calls.values():
            call.post_now()  # a voicemail or recording still closing is stored as it is
            call.release()
        self.calls.clear()
        if self.account is not None:
            self.account.listener = NOBODY
            self.account.strays.clear()  # they die here, on the SIP thread
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
                self._remember(key)
        if self.account is not None:
            self.account.reap()

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
        source = prm.rdata.srcAddress
        if not self.config.allows(source):
            self.refused(source, "an INVITE (answered 403)")
            stray = Leg(account, NOBODY, prm.callId)
            account.adopt(stray)
            stray.respond(_FORBIDDEN)
            return
        caller = caller_number(prm.rdata.wholeMsg) or "anonymous"
        call = InboundCall(self, account, prm.callId, caller)
        if self.known(call.call_id):
            # A late copy of an INVITE (its transaction is over) or a reused Call-ID: it
            # belongs to the call the line has or had, never to a second one.
            log.warning(
                "SIP line %s: INVITE of call %s again: refused", self.config.key, call.call_id
            )
            account.adopt(call.client)
            call.client.respond(_REPEAT)
            return
        self.calls[call.call_id] = call
        if self.room() < 0:
            # No slot for a manager's leg: refused while pjsua still lets the hub see the
            # call, so the caller is stored as missed (with a call back), never lost.
            log.warning("SIP line %s: no call slot for %s: busy", self.config.key, call.call_id)
            call.refuse(_FULL, CallDisposition.MISSED)
            return
        call.ring()
        self.bridge.post(
            IncomingCall(self.config.key, call.call_id, caller, call.callee, call.started_at)
        )

    def rejected(self, message: str, callee: str, source: str) -> None:
        """pjsua answered an INVITE 486 itself (every call slot taken): store it as missed
        (unless its source is not allowed to call the line: then nothing is stored)."""
        if not self.config.allows(source):
            self.refused(source, "an INVITE (answered 486: no call slot)")
            return
        call_id = header_values(message).get("call-id", "")[:300]
        if not call_id or self.known(call_id):
            return  # a retransmission of one already stored
        self._remember(call_id)
        moment = self.now()
        log.warning("SIP line %s: pjsua had no call slot for %s", self.config.key, call_id)
        self.bridge.post(
            CallEnded(
                line=self.config.key,
                call_id=call_id,
                caller=caller_number(message) or "anonymous",
                callee=callee,
                direction=Direction.INBOUND,
                started_at=moment,
                disposition=CallDisposition.MISSED,
                ended_at=moment,
            )
        )

    def subscription(self, prm: pj.OnIncomingSubscribeParam) -> None:
        """A SUBSCRIBE (presence): pjsua's answer, unless its source is not allowed."""
        source = prm.rdata.srcAddress
        if not self.config.allows(source):
            self.refused(source, "a SUBSCRIBE (answered 403)")
            prm.code = _FORBIDDEN
            prm.reason = "Forbidden"

    def refused(self, source: str, what: str) -> None:
        """Log a request from outside ``allow_from``: once a minute per address at warning."""
        ip = source_ip(source)
        address = str(ip) if ip is not None else source[:100]
        moment = time.monotonic()
        last = self.refused_sources.get(address)
        if last is not None and moment - last < _QUIET_SECONDS:
            log.debug("SIP line %s: %s from %s refused again", self.config.key, what, address)
            return
        self.refused_sources[address] = moment
        self.refused_sources.move_to_end(address)
        while len(self.refused_sources) > _REFUSED_REMEMBERED:
            self.refused_sources.popitem(last=False)
        log.warning(
            "SIP line %s: %s from %s refused: not in allow_from",
            self.config.key,
            what,
            address,
        )

    def registration(self, code: int, reason: str, active: bool) -> None:
        ok = 200 <= code < 300
        if not ok:
            log.warning("SIP line %s: registration failed: %s %s", self.config.key, code, reason)
        self.bridge.post(LineStatus(self.config.key, ok and active, code, reason))

    def deadline(self, seconds: float) -> float:
        return time.monotonic() + seconds


def _media(transport: pj.TransportConfig, config: LineConfig) -> None:
    """The calls' RTP sockets: bound to the line's address (so the SDP's c= and o= name
    it, not another interface's), advertised as ``public_address`` when set."""
    transport.boundAddress = config.media_bound_address
    if config.public_address:
        transport.publicAddress = config.public_address
    if config.rtp_port_min is not None and config.rtp_port_max is not None:
        # pjsua binds RTP on port, port + 2, ... up to port + portRange, RTCP one above.
        transport.port = config.rtp_port_min
        transport.portRange = config.rtp_port_max - config.rtp_port_min - 1
