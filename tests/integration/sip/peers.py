"""SIPp as the client and as the managers' phones, on free loopback UDP ports."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from connectors.sip import available

SCENARIOS = Path(__file__).with_name("scenarios")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
SIPP = shutil.which("sipp")


_RESPONSE = re.compile(r"^SIP/2\.0 (\d{3})\b.*?^CSeq:\s*\d+\s+(\w+)", re.MULTILINE | re.DOTALL)


def response_codes(messages: str, method: str) -> list[int]:
    """The status codes of the responses to ``method`` in a SIPp message trace."""
    codes = []
    for block in messages.split("message received")[1:]:
        match = _RESPONSE.search(block.split("-----------------", 1)[0])
        if match and match.group(2).upper() == method.upper():
            codes.append(int(match.group(1)))
    return codes


def need_peers() -> None:
    """SIPp and pjsua2: in CI they must be there; elsewhere the test is skipped."""
    missing = []
    if SIPP is None:
        missing.append("SIPp (apt-get install sip-tester)")
    if not available():
        missing.append("pjsua2 (pip install -e '.[sip]')")
    if not missing:
        return
    if IN_CI:
        pytest.fail(f"needed in CI: {', '.join(missing)}; ./dev test installs both")
    pytest.skip(f"not installed: {', '.join(missing)} (or ./dev test)")


def udp_port() -> int:
    """A free even UDP port whose next two are free too (SIPp's RTP takes port and port+2)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port % 2 or port > 65000:
            continue
        try:
            for extra in (1, 2, 3):
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                    probe.bind(("127.0.0.1", port + extra))
        except OSError:
            continue
        return port
    raise RuntimeError("no free UDP port")


class Sipp:
    """One SIPp process; :meth:`finish` waits for it and kills it when it overstays."""

    def __init__(
        self, workdir: Path, name: str, args: list[str], local_ip: str = "127.0.0.1"
    ) -> None:
        assert SIPP is not None
        self.name = name
        self.port = udp_port()
        self.workdir = workdir / name
        self.workdir.mkdir(parents=True, exist_ok=True)
        command = [
            SIPP,
            *args,
            "-i", local_ip,
            "-p", str(self.port),
            "-mp", str(udp_port()),
            "-nostdin",
            "-timeout", "20",
            "-timeout_error",
            "-trace_err",
            "-trace_msg",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command,
            cwd=self.workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )

    @classmethod
    def phone(
        cls,
        workdir: Path,
        name: str,
        scenario: str | None = None,
        calls: int = 1,
        hold_ms: int = 500,
    ) -> Sipp:
        """A phone: SIPp's own answering ``uas``, or a scenario of ours."""
        how = ["-sn", "uas"] if scenario is None else ["-sf", str(SCENARIOS / scenario)]
        return cls(workdir, name, [*how, "-m", str(calls), "-d", str(hold_ms)])

    @classmethod
    def client(
        cls,
        workdir: Path,
        name: str,
        scenario: str,
        line_port: int,
        *,
        caller: str = "89161234567",
        hold_ms: int = 500,
        call_id: str | None = None,
        keys: dict[str, str] | None = None,
        calls: int = 1,
        local_ip: str = "127.0.0.1",
    ) -> Sipp:
        """A client calling the line; ``local_ip`` is the address it sends from (any
        127.0.0.0/8 address is loopback on Linux)."""
        args = [
            f"127.0.0.1:{line_port}",
            "-sf", str(SCENARIOS / scenario),
            "-s", "office",
            "-key", "caller", caller,
            "-d", str(hold_ms),
            "-m", str(calls),
        ]  # fmt: skip
        for key, value in (keys or {}).items():
            args += ["-key", key, value]
        if calls > 1:
            args += ["-l", str(calls), "-r", str(calls)]  # all at once: concurrent callers
        if call_id is not None:
            args += ["-cid_str", call_id]
        return cls(workdir, name, args, local_ip)

    @property
    def uri(self) -> str:
        return f"sip:manager@127.0.0.1:{self.port}"

    async def finish(self, seconds: float = 25.0) -> int:
        try:
            return await asyncio.wait_for(asyncio.to_thread(self.process.wait), seconds)
        except TimeoutError:
            self.kill()
            raise AssertionError(f"SIPp {self.name} did not finish: {self.log()}") from None

    def kill(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, 9)
            self.process.wait(5)
        if self.process.stderr is not None:
            self.process.stderr.close()

    def messages(self) -> str:
        """Every SIP message this SIPp sent or received (``-trace_msg``)."""
        return "\n".join(
            path.read_text(errors="replace") for path in sorted(self.workdir.glob("*_messages.log"))
        )

    def log(self) -> str:
        texts = [
            path.read_text(errors="replace")[-3000:] for path in sorted(self.workdir.glob("*.log"))
        ]
        return "\n".join(texts)
