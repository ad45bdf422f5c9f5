"""The channels' health, as their loops report it: a small in-process registry.

Each channel account (a Telegram bot, a mailbox, a SIP line) is registered when its
connector is wired, then its loop reports what happens: ``connected`` after a round that
worked, ``retrying`` (with the error) after one that did not. A streak of failures, or
one lasting ``FAILING_AFTER``, turns ``retrying`` into ``failing``; ``failing_since`` is
when the streak began. ``disabled`` is an account that cannot run here (pjsua2 missing).

Connectors never import this module: the hub hands each loop a plain callable
(:meth:`ChannelHealth.reporter`). Errors are kept without the account's secrets
(registered with it) and cut to a readable length.

The registry is per process: in scaled mode a loop is reported by the process that runs it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

STARTING = "starting"
CONNECTED = "connected"
RETRYING = "retrying"
FAILING = "failing"
DISABLED = "disabled"
STATES = (STARTING, CONNECTED, RETRYING, FAILING, DISABLED)
DOWN = frozenset({RETRYING, FAILING, DISABLED})
FAILING_STREAK = 3  # failures in a row that make ``retrying`` ``failing`` ...
FAILING_AFTER = timedelta(minutes=1)  # ... or this long without a round that worked
ALERT_AFTER = timedelta(minutes=5)  # the inbox header warns admins past this
_ERROR_CHARS = 500

StatusCallback = Callable[[str, str | None], None]


@dataclass(slots=True)
class AccountHealth:
    """What is known of one channel account in this process."""

    channel: str
    account: str
    state: str = STARTING
    failures: int = 0  # reports of trouble in a row
    failing_since: datetime | None = None
    last_item_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    secrets: tuple[str, ...] = field(default=(), repr=False)

    def alert(self, now: datetime) -> bool:
        """Failing for longer than ``ALERT_AFTER``."""
        return (
            self.state == FAILING
            and self.failing_since is not None
            and now - self.failing_since > ALERT_AFTER
        )


class ChannelHealth:
    """``report(channel, account, state, error)`` and ``received(channel, account)``."""

    def __init__(self, now: Callable[[], datetime]) -> None:
        self._now = now
        self._accounts: dict[tuple[str, str], AccountHealth] = {}
        self._items: dict[tuple[str, str], datetime] = {}

    def register(
        self,
        channel: str,
        account: str,
        *,
        secrets: Iterable[str | None] = (),
        state: str = STARTING,
        error: str | None = None,
    ) -> AccountHealth:
        found = self._accounts.get((channel, account))
        if found is None:
            found = self._accounts[(channel, account)] = AccountHealth(channel, account)
        found.secrets = tuple(s for s in secrets if s and len(s) >= 4)
        found.state = state
        if error is not None:
            found.last_error, found.last_error_at = self._clean(found, error), self._now()
        return found

    def report(self, channel: str, account: str, state: str, error: str | None = None) -> None:
        """A loop's word on its account: ``connected``, ``retrying`` (with the error),
        ``failing`` or ``disabled``. Never raises."""
        try:
            self._report(channel, account, state, error)
        except Exception:  # a report must never break the loop that makes it
            log.exception("health: report of %s/%s failed", channel, account)

    def _report(self, channel: str, account: str, state: str, error: str | None) -> None:
        found = self._accounts.get((channel, account)) or self.register(channel, account)
        now = self._now()
        if error is not None:
            found.last_error, found.last_error_at = self._clean(found, error), now
        if state in (CONNECTED, DISABLED, STARTING):
            found.state, found.failures, found.failing_since = state, 0, None
            return
        found.failures += 1
        if found.failing_since is None:
            found.failing_since = now
        long = now - found.failing_since >= FAILING_AFTER
        found.state = (
            FAILING if state == FAILING or long or found.failures >= FAILING_STREAK else RETRYING
        )

    def reporter(self, channel: str, account: str) -> StatusCallback:
        """The callable a connector's loop is given."""

        def report(state: str, error: str | None = None) -> None:
            self.report(channel, account, state, error)

        return report

    def received(self, channel: str, account: str) -> None:
        """An item came in (``channel`` as in the messages: telegram, email, phone...)."""
        self._items[(channel, account)] = self._now()

    def last_item(self, channel: str, account: str) -> datetime | None:
        return self._items.get((channel, account))

    def get(self, channel: str, account: str) -> AccountHealth | None:
        return self._accounts.get((channel, account))

    def accounts(self) -> list[AccountHealth]:
        return sorted(self._accounts.values(), key=lambda a: (a.channel, a.account))

    def down(self) -> list[dict[str, Any]]:
        """Names and states of the accounts that are not working (for ``/healthz``)."""
        return [
            {"channel": a.channel, "account": a.account, "state": a.state}
            for a in self.accounts()
            if a.state in DOWN
        ]

    def now(self) -> datetime:
        return self._now()

    @staticmethod
    def _clean(found: AccountHealth, error: str) -> str:
        for secret in found.secrets:
            error = error.replace(secret, "***")
        return error.replace("\x00", "")[:_ERROR_CHARS]


HEALTH = web.AppKey("health", ChannelHealth)


def install(app: web.Application) -> None:
    """``app[HEALTH]``, on the app's clock; each channel's wiring registers its accounts."""
    from hub.keys import CLOCK

    app[HEALTH] = ChannelHealth(app[CLOCK].now)
