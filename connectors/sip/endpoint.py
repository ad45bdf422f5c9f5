"""The one pjsua2 thread: the endpoint, its transports and lines, an event loop of its own.

pjsua2's ``Endpoint`` is one per process and is not thread-safe here
(``threadCnt=0``, ``mainThreadOnly``): this thread creates it, polls it with
``libHandleEvents``, runs the hub's work from the :class:`Bridge`, and destroys it.
"""

from __future__ import annotations

import gc
import logging
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pjsua2 as pj

from connectors.sip.bridge import Bridge
from connectors.sip.config import LineConfig
from connectors.sip.events import SipEvent
from connectors.sip.line import Line

log = logging.getLogger(__name__)


class SipStartError(RuntimeError):
    """The user agent could not start (a port in use, a bad address...)."""


class _Endpoint(pj.Endpoint):  # type: ignore[misc]
    """pjsua2's endpoint, telling the engine of the INVITEs pjsua refused on its own."""

    def __init__(self, engine: SipEngine) -> None:
        super().__init__()
        self.engine = engine

    def onRejectedIncomingCall(self, prm: pj.OnRejectedIncomingCallParam) -> None:  # noqa: N802
        try:
            if prm.callId < 0 and prm.statusCode == _FULL:  # no call slot was free
                rdata = prm.rdata
                self.engine.rejected(rdata.wholeMsg, prm.localInfo, rdata.srcAddress)
        except Exception:
            log.exception("SIP rejected call handler failed")


_FULL = 486


class SipEngine:
    def __init__(
        self,
        bridge: Bridge[SipEvent],
        now: Callable[[], datetime],
        *,
        poll_ms: int = 10,
        log_level: int = 1,
        max_calls: int = 64,
    ) -> None:
        self.bridge = bridge
        self.now = now
        self.poll_ms = poll_ms
        self.log_level = log_level
        self.max_calls = max_calls  # pjsua's call slots; lowered to what the build allows
        self.lines: dict[str, Line] = {}
        self.spools: list[Path] = []  # the lines' voicemail folders, removed after the stop
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._error: BaseException | None = None
        self.endpoint: pj.Endpoint | None = None

    # Any thread.
    def start(self, timeout: float = 10.0) -> None:
        """Start the thread and wait until pjsua2 runs (blocking: call it off the loop)."""
        self._thread = threading.Thread(target=self._run, name="sip-ua", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise SipStartError("the SIP user agent did not start in time")
        if self._error is not None:
            raise SipStartError(str(self._error)) from self._error

    def stop(self, timeout: float = 15.0) -> None:
        """Hang up, unregister, destroy the endpoint, join the thread (blocking)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("the SIP thread did not stop in %.0f s", timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self._error is None

    # The SIP thread.
    def open_line(self, config: LineConfig) -> None:
        assert self.endpoint is not None
        line = Line(self.endpoint, config, self.bridge, self.now, self.room)
        self.spools.append(line.spool)
        line.open()
        self.lines[config.key] = line

    def room(self) -> int:
        """Free pjsua call slots (negative: more are wanted than there are)."""
        return self.max_calls - sum(line.slots_in_use for line in self.lines.values())

    def rejected(self, message: str, callee: str, source: str) -> None:
        """pjsua refused an INVITE itself (all slots taken): the line it was for stores it."""
        line = self._line_for(message)
        if line is None:
            # For no line's address: the first line stores it, if no line's allow_from
            # shuts its source out.
            line = next(iter(self.lines.values()), None)
            if line is None:
                return
            if not all(ln.config.allows(source) for ln in self.lines.values()):
                line.refused(source, "an INVITE (answered 486: no call slot)")
                return
        line.rejected(message, callee, source)

    def _line_for(self, message: str) -> Line | None:
        target = message.split("\r\n", 1)[0].split("\n", 1)[0]  # INVITE sip:user@host:port SIP/2.0
        uri = target.split(" ")[1] if target.count(" ") >= 2 else ""
        for line in self.lines.values():
            config = line.config
            hosts = {config.host, config.public_address or config.host}
            if config.mode == "listen" and any(f"@{h}:{config.port}" in uri for h in hosts):
                return line
            if config.mode == "register" and f":{config.user or config.key}@" in uri:
                return line
        return None

    def line(self, key: str) -> Line:
        found = self.lines.get(key)
        if found is None:
            raise KeyError(f"no SIP line {key!r}")
        return found

    def _run(self) -> None:
        try:
            self.endpoint = self._create()
        except Exception as exc:
            self._error = exc
            self._ready.set()
            self.bridge.close()
            return
        self._ready.set()
        endpoint = self.endpoint
        try:
            while not self._stopping.is_set():
                self.bridge.run_pending()
                endpoint.libHandleEvents(self.poll_ms)
                self._tick()
            self.bridge.run_pending()
            for line in self.lines.values():
                line.hang_up_all()
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline and any(ln.busy for ln in self.lines.values()):
                endpoint.libHandleEvents(self.poll_ms)
                self._tick()
            for line in self.lines.values():
                line.close()
            for _ in range(20):
                endpoint.libHandleEvents(self.poll_ms)
        except Exception:
            log.exception("the SIP thread failed")
        finally:
            self.bridge.close()
            self.lines.clear()
            gc.collect()  # every pjsua2 object dies here, on this thread, before the library
            endpoint.libDestroy()
            self.endpoint = None

    def _tick(self) -> None:
        moment = time.monotonic()
        for line in self.lines.values():
            try:
                line.tick(moment)
            except Exception:
                log.exception("SIP line %s: tick failed", line.config.key)

    def _create(self) -> pj.Endpoint:
        endpoint = _Endpoint(self)
        endpoint.libCreate()
        config = pj.EpConfig()
        config.uaConfig.maxCalls = self.max_calls
        config.uaConfig.threadCnt = 0
        config.uaConfig.mainThreadOnly = True
        config.uaConfig.userAgent = "omnihub"
        config.logConfig.level = self.log_level
        config.logConfig.consoleLevel = self.log_level
        config.medConfig.noVad = True
        endpoint.libInit(config)
        endpoint.audDevManager().setNullDev()
        endpoint.libStart()
        allowed = self._slots(endpoint)
        if allowed < self.max_calls:
            log.warning(
                "SIP: max_calls = %d, but this pjsua2 build holds %d calls at once "
                "(PJSUA_MAX_CALLS): about %d calls can talk at a time",
                self.max_calls,
                allowed,
                allowed // 2,
            )
            self.max_calls = allowed
        return endpoint

    def _slots(self, endpoint: pj.Endpoint) -> int:
        """How many calls pjsua holds at once: ``max_calls``, unless the build caps it
        lower (pjsua2 has no getter for PJSUA_MAX_CALLS). Places calls to a loopback
        socket until pjsua has no slot left; the socket declines them all (603)."""
        transport = pj.TransportConfig()
        transport.boundAddress = "127.0.0.1"
        transport.port = 0
        transport_id = endpoint.transportCreate(pj.PJSIP_TRANSPORT_UDP, transport)
        config = pj.AccountConfig()
        config.idUri = "sip:slots@127.0.0.1"
        config.sipConfig.transportId = transport_id
        config.regConfig.registerOnAdd = False
        config.mediaConfig.transportConfig.boundAddress = "127.0.0.1"  # no wildcard RTP socket
        account = pj.Account()
        account.create(config)
        calls: list[pj.Call] = []
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
            sink.bind(("127.0.0.1", 0))
            sink.setblocking(False)
            uri = f"sip:slots@127.0.0.1:{sink.getsockname()[1]}"
            try:
                while len(calls) < self.max_calls:
                    call = pj.Call(account)
                    call.makeCall(uri, pj.CallOpParam(True))
                    calls.append(call)
            except pj.Error:
                pass
            deadline = time.monotonic() + 5.0
            while any(c.isActive() for c in calls) and time.monotonic() < deadline:
                endpoint.libHandleEvents(self.poll_ms)
                _decline_all(sink)
        allowed = len(calls)
        calls.clear()
        account.shutdown()
        endpoint.transportClose(transport_id)
        return allowed


def _decline_all(sink: socket.socket) -> None:
    """Answer every INVITE waiting on ``sink`` with 603 (the slot probe's far end)."""
    while True:
        try:
            data, peer = sink.recvfrom(65535)
        except BlockingIOError:
            return
        head = data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
        if not head[0].startswith(b"INVITE "):
            continue
        keep = (b"via:", b"from:", b"call-id:", b"cseq:")
        lines = [h for h in head[1:] if h.lower().startswith(keep)]
        lines += [h + b";tag=probe" for h in head[1:] if h.lower().startswith(b"to:")]
        sink.sendto(
            b"\r\n".join([b"SIP/2.0 603 Decline", *lines, b"Content-Length: 0", b"", b""]), peer
        )
