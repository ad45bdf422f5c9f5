"""What a connector needs to park an item that keeps failing (rule 9 of the house).

The hub fills it with ``crm_core.poisoned.PoisonedItems``: parked items of the channel,
listed in ``GET /api/v1/parked`` and retried by an admin (``POST .../retry``), which makes
them due for the connector's next pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

RETRY_SECONDS = 15.0  # how often a reader looks for parked items an admin retried


class DueItem(Protocol):
    """A parked item claimed for one more attempt (``crm_core.parked.Due``)."""

    @property
    def account(self) -> str: ...
    @property
    def item_key(self) -> str: ...
    @property
    def attempts(self) -> int: ...
    @property
    def detail(self) -> Mapping[str, Any]: ...


class PoisonLedger(Protocol):
    """Where items that kept failing are parked (``crm_core.poisoned.PoisonedItems``)."""

    async def park(
        self,
        account: str,
        item_key: str,
        reason: str,
        attempts: int,
        detail: Mapping[str, str | None],
    ) -> None:
        """Park the item after ``attempts`` more failures; an admin may retry it."""
        ...

    async def due(self, account: str) -> Sequence[DueItem]:
        """The account's parked items an admin retried, claimed for this process."""
        ...

    async def taken(self, account: str, item_key: str) -> None:
        """The item went through at last."""
        ...


def reason_of(exc: BaseException) -> str:
    """A parked item's reason: the exception's type and message (the caller redacts)."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
