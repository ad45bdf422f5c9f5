"""``[channels.sip]`` network settings: the advertised address, RTP ports, NAT, allow-list."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from connectors.sip.config import LineConfig, SipConfigError, parse_config, source_ip

REGISTER = {"key": "trunk", "mode": "register", "registrar": "sip:pbx.example.com"}


def _line(**settings: Any) -> LineConfig:
    spec = {"key": "office", **settings}
    return parse_config({"lines": [spec]}).lines[0]


def _refused(match: str, **settings: Any) -> None:
    with pytest.raises(SipConfigError, match=match):
        _line(**settings)


def test_defaults_advertise_the_bound_address_and_let_pjsua_pick_rtp_ports() -> None:
    line = _line()
    assert line.public_address is None
    assert (line.rtp_port_min, line.rtp_port_max) == (None, None)
    assert line.contact_rewrite is False
    assert line.keepalive_seconds == 0
    assert line.allow_from == ()
    assert line.media_bound_address == "127.0.0.1"
    assert _line(host="0.0.0.0").media_bound_address == ""  # noqa: S104 (a setting's value)
    assert _line(host="192.0.2.10").media_bound_address == "192.0.2.10"
    trunk = _line(**REGISTER)
    assert (trunk.contact_rewrite, trunk.keepalive_seconds) == (False, 0)


def test_public_address_is_an_ipv4_address_or_a_host_name() -> None:
    assert _line(public_address="203.0.113.5").public_address == "203.0.113.5"
    line = _line(public_address="sip.example.com", port=5070)
    assert line.public_address == "sip.example.com"
    assert line.address_of_record() == "sip:office@sip.example.com:5070"
    unspecified = "0.0.0.0"  # noqa: S104 (a value refused, not a bind)
    for bad in ("sip:pbx.example.com", "203.0.113.5:5060", "::1", unspecified, "a b", "", 5):
        _refused(r"channels\.sip\.lines\[0\]\.public_address", public_address=bad)


def test_rtp_port_range() -> None:
    line = _line(rtp_port_min=10000, rtp_port_max="20000")
    assert (line.rtp_port_min, line.rtp_port_max) == (10000, 20000)
    assert _line(rtp_port_min=40000, rtp_port_max=40003).rtp_port_max == 40003
    _refused(r"lines\[0\]\.rtp_port_min, rtp_port_max: set both", rtp_port_min=10000)
    _refused(r"lines\[0\]\.rtp_port_min, rtp_port_max: set both", rtp_port_max=10000)
    _refused(r"lines\[0\]\.rtp_port_min: an even port", rtp_port_min=10001, rtp_port_max=20000)
    _refused(r"lines\[0\]\.rtp_port_max: at least", rtp_port_min=10000, rtp_port_max=10002)
    _refused(r"lines\[0\]\.rtp_port_max: at least", rtp_port_min=20000, rtp_port_max=10000)
    _refused(r"lines\[0\]\.rtp_port_min: a port from 1024", rtp_port_min=80, rtp_port_max=20000)
    _refused(r"lines\[0\]\.rtp_port_max: a port from 1024", rtp_port_min=10000, rtp_port_max=70000)
    _refused(r"lines\[0\]\.rtp_port_min: a port number", rtp_port_min="low", rtp_port_max=20000)
    _refused(r"lines\[0\]\.rtp_port_max: a port number", rtp_port_min=10000, rtp_port_max=True)


def test_nat_handling_is_for_register_lines_and_off_unless_asked() -> None:
    trunk = _line(**REGISTER, contact_rewrite=True)
    assert (trunk.contact_rewrite, trunk.keepalive_seconds) == (True, 15)
    assert _line(**REGISTER, contact_rewrite=True, keepalive_seconds=30).keepalive_seconds == 30
    assert _line(**REGISTER, keepalive_seconds=25).keepalive_seconds == 25
    assert _line(**REGISTER, contact_rewrite=True, keepalive_seconds=0).keepalive_seconds == 0
    _refused(r"lines\[0\]\.contact_rewrite: only a register line", contact_rewrite=True)
    _refused(r"lines\[0\]\.contact_rewrite: true or false", **REGISTER, contact_rewrite="yes")
    _refused(
        r"lines\[0\]\.contact_rewrite: not with public_address",
        **REGISTER,
        contact_rewrite=True,
        public_address="203.0.113.5",
    )
    _refused(r"lines\[0\]\.keepalive_seconds: only a register line", keepalive_seconds=15)
    _refused(r"lines\[0\]\.keepalive_seconds: 0 \(none\) to 3600", **REGISTER, keepalive_seconds=-1)
    _refused(r"lines\[0\]\.keepalive_seconds: a whole number", **REGISTER, keepalive_seconds="x")
    _refused(r"lines\[0\]\.keepalive_seconds: a whole number", **REGISTER, keepalive_seconds=1.5)


def test_allow_from_takes_addresses_and_networks() -> None:
    line = _line(allow_from=["10.0.0.0/8", "192.0.2.7", "2001:db8::/32"])
    assert line.allow_from == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("192.0.2.7/32"),
        ipaddress.ip_network("2001:db8::/32"),
    )
    for allowed in ("10.1.2.3:5060", "10.1.2.3", "192.0.2.7:5062", "[2001:db8::1]:5060"):
        assert line.allows(allowed), allowed
    assert line.allows("[::ffff:10.0.0.9]:5060")  # an IPv4 peer on a dual-stack socket
    for refused in ("192.0.2.8:5060", "127.0.0.1:5060", "[2001:db9::1]:5060", "", "garbage"):
        assert not line.allows(refused), refused
    assert _line(allow_from=["192.0.2.1/24"]).allow_from == (ipaddress.ip_network("192.0.2.0/24"),)
    assert _line().allows("198.51.100.1:5060")  # empty: anyone
    assert _line(**REGISTER, allow_from=["198.51.100.1"]).allows("198.51.100.1:5060")


def test_a_bad_allow_from_is_named() -> None:
    _refused(r"lines\[0\]\.allow_from\[1\]: '10\.0\.0\.300'", allow_from=["10.0.0.1", "10.0.0.300"])
    _refused(r"lines\[0\]\.allow_from\[0\]: 'office'", allow_from=["office"])
    _refused(r"lines\[0\]\.allow_from\[0\]: 7", allow_from=[7])
    _refused(r"lines\[0\]\.allow_from: a list", allow_from="10.0.0.0/8")
    with pytest.raises(SipConfigError, match=r"channels\.sip\.lines\[1\]\.allow_from\[0\]"):
        parse_config({"lines": [{"key": "a"}, {"key": "b", "allow_from": ["nope"]}]})


def test_source_ip_reads_pjsua_addresses() -> None:
    assert source_ip("127.0.0.2:5060") == ipaddress.ip_address("127.0.0.2")
    assert source_ip("[::1]:5060") == ipaddress.ip_address("::1")
    assert source_ip("::1") == ipaddress.ip_address("::1")
    assert source_ip("10.0.0.1") == ipaddress.ip_address("10.0.0.1")
    assert source_ip("x:y:z") is None
