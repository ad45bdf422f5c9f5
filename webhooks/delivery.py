"""Posting one signed outbound webhook (Standard Webhooks headers) with aiohttp.

By default a webhook goes only to public addresses: a subscription pointing at the
hub's own machine, its network or a cloud metadata address (``169.254.169.254``) would
let whoever edits subscriptions reach what the hub can reach. The check is made on the
addresses the name resolves to at delivery time, so a name that later resolves to a
private address is refused as well; an address written in any form the resolver takes
(``127.1``, ``0x7f000001``, ``[::ffff:127.0.0.1]``) is refused by the same check when the
subscription is made. ``allow_private_targets`` lifts it (a receiver on the same network,
the tests).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from dataclasses import dataclass

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from webhooks.signatures import standard_headers

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PostResult:
    """What the receiver answered: a 2xx status is success; redirects are not followed."""

    status: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None and 200 <= self.status < 300


Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def is_public_address(address: Address) -> bool:
    """Globally reachable unicast, and so is any IPv4 address an IPv6 one carries."""
    if isinstance(address, ipaddress.IPv6Address):
        carried = [address.ipv4_mapped, address.sixtofour, *(address.teredo or ())]
        if address in _NAT64:
            carried.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if not all(is_public_address(v4) for v4 in carried if v4 is not None):
            return False
    return address.is_global and not (
        address.is_multicast
        or address.is_private
        or address.is_reserved
        or address.is_loopback
        or address.is_link_local
        or address.is_unspecified
    )


def numeric_address(host: str) -> Address | None:
    """The address a host names by itself, parsed as the resolver parses it (libc's
    ``getaddrinfo``, so ``127.1``, ``0x7f000001``, ``2130706433`` and ``0177.0.0.1`` are
    127.0.0.1), or None for a name."""
    name = host.strip("[]").rstrip(".")
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(name, None, flags=socket.AI_NUMERICHOST)
        return ipaddress.ip_address(str(found[0][4][0]).partition("%")[0])
    except (OSError, UnicodeError, ValueError, IndexError):
        return None


def is_private_host(host: str) -> bool:
    """``localhost`` or an address, in any form the client takes, that is not a public one."""
    name = host.strip("[]").rstrip(".").lower()
    if not name or name == "localhost" or name.endswith(".localhost"):
        return True
    address = numeric_address(name)
    return address is not None and not is_public_address(address)  # a name: checked resolved


def url_host(url: str) -> str:
    """The host the HTTP client connects to (yarl's reading: IDNA-folded), or "" when
    the client cannot read the URL (refused, as no host is a public one)."""
    try:
        return URL(url).host or ""
    except ValueError:
        return ""


class PublicOnlyResolver(AbstractResolver):
    """aiohttp's resolver, keeping only public addresses (none left: a connection error)."""

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        public = [a for a in found if is_public_address(ipaddress.ip_address(a["host"]))]
        if not public:
            raise OSError(f"{host} resolves only to private addresses")
        return public

    async def close(self) -> None:
        await self._inner.close()


class WebhookPoster:
    """One HTTP client for all deliveries; opened lazily, closed by :meth:`close`."""

    def __init__(
        self,
        timeout: float = 10.0,
        user_agent: str = "omnihub-webhooks/1",
        *,
        allow_private: bool = False,
    ) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._user_agent = user_agent
        self._allow_private = allow_private
        self._session: aiohttp.ClientSession | None = None

    async def deliver(
        self, url: str, secret: str, webhook_id: str, timestamp: int, body: bytes
    ) -> PostResult:
        headers = {
            "content-type": "application/json",
            "user-agent": self._user_agent,
            **standard_headers(secret, webhook_id, timestamp, body),
        }
        refusal = self.refusal(url)
        if refusal is not None:
            return PostResult(None, f"refused: {refusal}")
        if self._session is None or self._session.closed:
            connector = (
                None if self._allow_private else aiohttp.TCPConnector(resolver=PublicOnlyResolver())
            )
            self._session = aiohttp.ClientSession(timeout=self._timeout, connector=connector)
        try:
            async with self._session.post(
                url, data=body, headers=headers, allow_redirects=False
            ) as response:
                await response.read()
                status = response.status
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            return PostResult(None, f"{type(exc).__name__}: {exc}"[:500])
        if 200 <= status < 300:
            return PostResult(status, None)
        return PostResult(status, f"HTTP {status}")

    def refusal(self, url: str) -> str | None:
        """Why ``url`` is refused before any lookup (a private address literal), or None."""
        host = url_host(url)
        if self._allow_private or not is_private_host(host):
            return None
        return (
            f"{host} is not a public address; a receiver on a private network needs "
            "channels.webhooks.allow_private_targets = true"
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
