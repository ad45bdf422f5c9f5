"""Inbound items a connector could not handle however often it tried (rule 9 of the house):
a Telegram update, a mail whose handling raised. The connector counts its attempts; when
they run out it parks the item here (status ``parked``, with the reason and where the raw
item is kept) and moves its checkpoint on. An admin's retry (``POST
/api/v1/parked/{id}/retry``) makes the item due; the connector claims it with
:meth:`PoisonedItems.due`, handles it again and calls :meth:`PoisonedItems.taken` when it
went through, or :meth:`PoisonedItems.park` again when it did not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.orm import Session

from crm_core import parked
from crm_core.clock import Clock
from crm_core.db import Database

BATCH = 20
LEASE = timedelta(minutes=5)  # a claimed item is not claimed again by another process before


@dataclass(frozen=True, slots=True)
class PoisonedItems:
    """One channel's poisoned items of one kind: their keys start with ``prefix``."""

    db: Database
    clock: Clock
    channel: str
    prefix: str

    async def park(
        self,
        account: str,
        item_key: str,
        reason: str,
        attempts: int,
        detail: Mapping[str, str | None],
    ) -> None:
        """The item failed ``attempts`` more times: it is parked (not tried again by itself)."""
        failure = parked.Failure(self.channel, account, item_key, reason, False, dict(detail))
        now = self.clock.now()

        def work(session: Session) -> None:
            parked.park(session, failure, now, 1, failures=attempts)

        await self.db.write(work)

    async def due(self, account: str) -> list[parked.Due]:
        """The account's items an admin asked to retry, claimed for this process."""
        now = self.clock.now()

        def work(session: Session) -> list[parked.Due]:
            return parked.claim_due(
                session, self.channel, now, BATCH, LEASE, account=account, prefix=self.prefix
            )

        return await self.db.write(work)

    async def taken(self, account: str, item_key: str) -> None:
        """The item went through at last: it is no longer parked."""
        await self.db.write(lambda s: parked.taken(s, self.channel, account, item_key))
