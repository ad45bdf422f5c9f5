"""Posting one signed outbound webhook (Standard Webhooks headers) with aiohttp.

By default a webhook goes only to public addresses: a subscription pointing at the
hub's own machine, its network or a cloud metadata address (``169.254.169.254``) would
let whoever edits subscriptions reach what the hub can reach. The check is made on the
addresses the name resolves to at delivery time, so a name that later resolves to a
private address is refused as well. ``allow_private_targets`` lifts it (a receiver on
the same network, the tests).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

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


def is_private_host(host: str) -> bool:
    """``localhost`` or an address literal that is not a public one."""
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return not ipaddress.ip_address(name).is_global
    except ValueError:
        return False  # a name: checked when it is resolved


class PublicOnlyResolver(AbstractResolver):
    """aiohttp's resolver, keeping only public addresses (none left: a connection error)."""

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        public = [a for a in found if ipaddress.ip_address(a["host"]).is_global]
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
        host = urlsplit(url).hostname or ""
        if self._allow_private or not is_private_host(host):
            return None
        return (
            f"{host} is not a public address; a receiver on a private network needs "
            "channels.webhooks.allow_private_targets = true"
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
