"""The one pjsua2 thread: the endpoint, its transports and lines, an event loop of its own.

pjsua2's ``Endpoint`` is one per process and is not thread-safe here
(``threadCnt=0``, ``mainThreadOnly``): this thread creates it, polls it with
``libHandleEvents``, runs the hub's work from the :class:`Bridge`, and destroys it.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime

import pjsua2 as pj

from connectors.sip.bridge import Bridge
from connectors.sip.config import LineConfig
from connectors.sip.events import SipEvent
from connectors.sip.line import Line

log = logging.getLogger(__name__)


class SipStartError(RuntimeError):
    """The user agent could not start (a port in use, a bad address...)."""


class SipEngine:
    def __init__(
        self,
        bridge: Bridge[SipEvent],
        now: Callable[[], datetime],
        *,
        poll_ms: int = 10,
        log_level: int = 1,
    ) -> None:
        self.bridge = bridge
        self.now = now
        self.poll_ms = poll_ms
        self.log_level = log_level
        self.lines: dict[str, Line] = {}
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
        line = Line(self.endpoint, config, self.bridge, self.now)
        line.open()
        self.lines[config.key] = line

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
        endpoint = pj.Endpoint()
        endpoint.libCreate()
        config = pj.EpConfig()
        config.uaConfig.threadCnt = 0
        config.uaConfig.mainThreadOnly = True
        config.uaConfig.userAgent = "omnihub"
        config.logConfig.level = self.log_level
        config.logConfig.consoleLevel = self.log_level
        config.medConfig.noVad = True
        endpoint.libInit(config)
        endpoint.audDevManager().setNullDev()
        endpoint.libStart()
        return endpoint
