"""Posting one signed outbound webhook (Standard Webhooks headers) with aiohttp."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import aiohttp

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


class WebhookPoster:
    """One HTTP client for all deliveries; opened lazily, closed by :meth:`close`."""

    def __init__(self, timeout: float = 10.0, user_agent: str = "omnihub-webhooks/1") -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None

    async def deliver(
        self, url: str, secret: str, webhook_id: str, timestamp: int, body: bytes
    ) -> PostResult:
        headers = {
            "content-type": "application/json",
            "user-agent": self._user_agent,
            **standard_headers(secret, webhook_id, timestamp, body),
        }
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
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

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
