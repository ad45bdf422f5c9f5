"""The client's address, also behind a reverse proxy the hub is told to trust.

The login brake counts failures per client address and ``GET /metrics`` admits by
address. Behind a proxy (the nginx of docker-compose.yml) every request comes from the
proxy: without this, all clients would share one address's budget, and twenty wrong
passwords from anyone would lock everyone out. ``trusted_proxies`` names the proxies
(addresses or networks); a request from one of them is taken to come from the last
address of ``X-Forwarded-For`` that is not itself a trusted proxy. From anyone else the
header is ignored: a client cannot choose its own address.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from aiohttp import web

from hub.settings import SettingsError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@lru_cache(maxsize=16)
def networks(spec: str, setting: str = "trusted_proxies") -> tuple[Network, ...]:
    """Comma-separated addresses or networks; raises :class:`SettingsError` naming ``setting``."""
    found: list[Network] = []
    for item in spec.split(","):
        if item.strip():
            try:
                found.append(ipaddress.ip_network(item.strip(), strict=False))
            except ValueError as exc:
                raise SettingsError(f"{setting}: {exc}") from exc
    return tuple(found)


def parsed(text: str | None) -> Address | None:
    if not text:
        return None
    try:
        return ipaddress.ip_address(text.strip().split("%", 1)[0])
    except ValueError:
        return None


def client_address(request: web.Request, trusted: tuple[Network, ...]) -> Address | None:
    """The address the request came from (None when unknown, a Unix socket say)."""
    address = parsed(request.remote)
    if address is None or not _within(address, trusted):
        return address
    hops = [parsed(hop) for hop in request.headers.get("X-Forwarded-For", "").split(",")]
    for hop in reversed(hops):
        if hop is None:
            return address  # a hop we cannot read: trust no further than the proxy
        if not _within(hop, trusted):
            return hop
        address = hop
    return address


def _within(address: Address, nets: tuple[Network, ...]) -> bool:
    return any(address in net for net in nets)
