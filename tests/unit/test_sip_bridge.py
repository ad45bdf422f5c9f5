"""The SIP thread ↔ asyncio bridge and the pure parts of the SIP connector (no pjsua2)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from connectors.sip.bridge import Bridge, BridgeClosedError
from connectors.sip.config import LineConfig, SipConfigError, parse_config
from connectors.sip.headers import caller_number, user_of


class FakeSipThread:
    """What the engine's thread does: run the hub's work, post events, until told to stop."""

    def __init__(self, bridge: Bridge[str]) -> None:
        self.bridge = bridge
        self.stop = threading.Event()
        self.ran_on: set[str] = set()
        self.thread = threading.Thread(target=self.run, name="fake-sip")

    def run(self) -> None:
        while not self.stop.wait(0.001):
            self.bridge.run_pending()
        self.bridge.close()


async def test_work_runs_on_the_sip_thread_and_answers_on_the_loop() -> None:
    bridge: Bridge[str] = Bridge(asyncio.get_running_loop())
    sip = FakeSipThread(bridge)
    sip.thread.start()
    try:

        def work() -> str:
            bridge.post(f"event from {threading.current_thread().name}")
            return threading.current_thread().name

        assert await asyncio.wait_for(bridge.submit(work), 5) == "fake-sip"
        assert await asyncio.wait_for(bridge.next_event(), 5) == "event from fake-sip"

        def square(n: int) -> Callable[[], int]:
            return lambda: n * n

        results = await asyncio.wait_for(
            asyncio.gather(*(bridge.submit(square(n)) for n in range(200))), 5
        )
        assert results == [n * n for n in range(200)]
    finally:
        sip.stop.set()
        sip.thread.join(5)


async def test_an_error_on_the_sip_thread_reaches_the_caller() -> None:
    bridge: Bridge[str] = Bridge(asyncio.get_running_loop())
    sip = FakeSipThread(bridge)
    sip.thread.start()
    try:

        def fails() -> None:
            raise KeyError("no SIP line 'x'")

        with pytest.raises(KeyError):
            await asyncio.wait_for(bridge.submit(fails), 5)
    finally:
        sip.stop.set()
        sip.thread.join(5)


async def test_work_left_when_the_thread_stops_fails_instead_of_hanging() -> None:
    bridge: Bridge[str] = Bridge(asyncio.get_running_loop())
    waiting = bridge.submit(lambda: "never run")
    bridge.close()
    with pytest.raises(BridgeClosedError):
        await asyncio.wait_for(waiting, 5)
    with pytest.raises(BridgeClosedError):
        await bridge.submit(lambda: "refused")


async def test_events_in_order_and_drained_without_waiting() -> None:
    bridge: Bridge[int] = Bridge(asyncio.get_running_loop())

    def post_all() -> None:
        for n in range(50):
            bridge.post(n)

    thread = threading.Thread(target=post_all)
    thread.start()
    thread.join(5)
    assert [await asyncio.wait_for(bridge.next_event(), 5) for _ in range(10)] == list(range(10))
    await asyncio.sleep(0)
    drained = []
    while True:
        try:
            drained.append(bridge.drain_one())
        except LookupError:
            break
    assert drained == list(range(10, 50))


def test_post_after_the_loop_closed_is_dropped_quietly() -> None:
    loop = asyncio.new_event_loop()
    bridge: Bridge[str] = Bridge(loop)
    loop.close()
    bridge.post("late")  # logged, not raised: the SIP thread must not die of it


INVITE = (
    "INVITE sip:office@10.0.0.1 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK1\r\n"
    'f: "Ivan" <sip:89161234567@10.0.0.2>;tag=1\r\n'
    "To: <sip:office@10.0.0.1>\r\n"
    "Call-ID: abc@10.0.0.2\r\n"
    "\r\n"
    "v=0\r\nFrom: <sip:999@body.example>\r\n"
)


def test_caller_from_the_from_header_or_the_asserted_identity() -> None:
    assert caller_number(INVITE) == "89161234567"
    asserted = INVITE.replace("To:", "P-Asserted-Identity: <tel:+79160000001>\r\nTo:", 1)
    assert caller_number(asserted) == "+79160000001"
    assert caller_number("INVITE sip:x SIP/2.0\r\n\r\n") is None
    assert caller_number("garbage") is None
    assert user_of("sip:+7916@pbx") == "+7916"


def test_line_config_is_checked() -> None:
    config = parse_config(
        {
            "media_dir": "/tmp/m",
            "lines": [
                {"key": "office", "port": "5070", "managers": {"1": "sip:anna@pbx"}},
                {"key": "trunk", "mode": "register", "registrar": "sip:pbx.example.com"},
            ],
        }
    )
    office, trunk = config.lines
    assert office.port == 5070
    assert office.managers == {1: "sip:anna@pbx"}
    assert office.address_of_record() == "sip:office@127.0.0.1:5070"
    assert trunk.address_of_record() == "sip:trunk@pbx.example.com"
    assert trunk.dial_uri("+79161234567") == "sip:+79161234567@pbx.example.com"
    assert LineConfig("x", dial_template="sip:{number}@gw").dial_uri("1") == "sip:1@gw"
    for bad in (
        {},
        {"lines": [{"mode": "listen"}]},
        {"lines": [{"key": "a", "mode": "shout"}]},
        {"lines": [{"key": "a", "mode": "register"}]},
        {"lines": [{"key": "a"}, {"key": "a"}]},
        {"lines": [{"key": "a", "port": "many"}]},
    ):
        with pytest.raises(SipConfigError):
            parse_config(bad)
