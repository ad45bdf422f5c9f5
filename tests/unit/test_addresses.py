"""The client's address behind a trusted reverse proxy, and only behind one."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request

from hub.addresses import client_address, networks
from hub.settings import SettingsError

PROXIES = networks("10.77.0.0/24, 127.0.0.1")


def _address(remote: str, forwarded: str | None) -> str:
    headers = {"X-Forwarded-For": forwarded} if forwarded is not None else {}
    request = make_mocked_request("POST", "/api/v1/session", headers=headers)
    request = request.clone(remote=remote)
    return str(client_address(request, PROXIES))


@pytest.mark.parametrize(
    ("remote", "forwarded", "client"),
    [
        ("10.77.0.5", "203.0.113.7", "203.0.113.7"),  # through the proxy
        ("10.77.0.5", "198.51.100.1, 203.0.113.7", "203.0.113.7"),  # the first hop is a lie
        ("10.77.0.5", "203.0.113.7, 127.0.0.1", "203.0.113.7"),  # two trusted proxies
        ("10.77.0.5", None, "10.77.0.5"),  # the proxy's own request
        ("10.77.0.5", "not-an-address", "10.77.0.5"),  # unreadable: no further than it
        ("203.0.113.9", "127.0.0.1", "203.0.113.9"),  # a client cannot choose its address
    ],
)
def test_the_client_is_the_last_hop_before_a_trusted_proxy(
    remote: str, forwarded: str | None, client: str
) -> None:
    assert _address(remote, forwarded) == client


def test_a_bad_network_names_the_setting() -> None:
    with pytest.raises(SettingsError, match="trusted_proxies"):
        networks("10.0.0.0/33")
