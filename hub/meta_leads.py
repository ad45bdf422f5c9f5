"""Meta Lead Ads batches: each ``leadgen`` change stands alone.

A notification may carry several leads; each is fetched from the Graph API and stored on
its own. One the Graph API refuses (or one that is not a lead the hub can store: no phone
nor email) does not hold the others back: it is parked (``crm_core.parked``) with the
reason, logged with its leadgen id, and the batch is answered 200 so that Meta stops
resending what is stored. A refusal that can heal (the Graph API's 5xx or 429, a timeout,
a connection error) leaves the lead ``retrying``: :meth:`MetaLeads.retry_due`, run every
``POLL_SECONDS`` by the hub, fetches it again after a backoff (1 minute, doubling, at most
an hour) until ``lead_retry_attempts`` failures park it. A 4xx is not retried at all;
an admin sees both in ``GET /api/v1/parked`` and may retry one by hand.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiohttp
from sqlalchemy.orm import Session

from crm_core import parked
from crm_core.clock import Clock
from crm_core.contracts import InboundMessage, IngestResult
from crm_core.db import Database
from hub.api.errors import ApiError
from webhooks import meta
from webhooks.common import HookError, HookRequest
from webhooks.sources import Source

log = logging.getLogger(__name__)
CHANNEL = "meta"
POLL_SECONDS = 15.0
LEASE = timedelta(minutes=5)  # a claimed lead is not claimed again by another process before
BATCH = 20

Ingest = Callable[[InboundMessage], Awaitable[IngestResult]]


@dataclass(frozen=True, slots=True)
class Refused:
    """A lead of the batch that was not stored (yet)."""

    leadgen_id: str
    reason: str
    retrying: bool

    def as_json(self) -> dict[str, object]:
        return {"leadgen_id": self.leadgen_id, "reason": self.reason, "retrying": self.retrying}


@dataclass(frozen=True, slots=True)
class MetaLeads:
    db: Database
    clock: Clock
    graph: aiohttp.ClientSession
    ingest: Ingest
    max_attempts: int

    async def take(
        self, source: Source, refs: list[meta.LeadRef], hook: HookRequest
    ) -> tuple[list[IngestResult], list[Refused]]:
        """Store every lead of the batch that can be stored; park the others."""
        results: list[IngestResult] = []
        refused: list[Refused] = []
        for ref in refs:
            outcome = await self._take(source, ref, hook)
            if isinstance(outcome, parked.Failure):
                refused.append(await self._park(outcome))
                continue
            results.append(outcome)
            await self._taken(source.key, ref.leadgen_id)
        return results, refused

    async def retry_due(self, sources: Mapping[str, Source]) -> int:
        """One more attempt at each lead that is due; returns how many were stored."""
        now = self.clock.now()
        due = await self.db.write(lambda s: parked.claim_due(s, CHANNEL, now, BATCH, LEASE))
        stored = 0
        for item in due:
            source = sources.get(item.account)
            ref = meta.LeadRef(
                item.item_key, _opt(item.detail, "form_id"), _opt(item.detail, "page_id")
            )
            if source is None or source.kind != "meta":
                failure = _failure(item.account, ref, "the source is no longer configured", False)
                await self._park(failure)
                continue
            outcome = await self._take(source, ref, _replayed(item.first_failed_at))
            if isinstance(outcome, parked.Failure):
                await self._park(outcome)
                continue
            await self._taken(item.account, item.item_key)
            log.info(
                "source %s: leadgen %s stored on attempt %d",
                item.account,
                item.item_key,
                item.attempts + 1,
            )
            stored += 1
        return stored

    async def run_forever(self, sources: Mapping[str, Source]) -> None:
        while True:
            try:
                await self.retry_due(sources)
            except asyncio.CancelledError:
                raise
            except Exception:  # the database away for a moment: try again at the next poll
                log.exception("retrying parked Meta leads failed")
            await asyncio.sleep(POLL_SECONDS)

    async def _take(
        self, source: Source, ref: meta.LeadRef, hook: HookRequest
    ) -> IngestResult | parked.Failure:
        try:
            lead = await meta.fetch_lead(self.graph, source, ref.leadgen_id)
            return await self.ingest(meta.lead_message(source, ref, lead, hook))
        except meta.GraphError as exc:
            return _failure(source.key, ref, str(exc), exc.healable)
        except HookError as exc:  # a lead with neither a phone nor an email
            return _failure(source.key, ref, exc.message, False)
        except ApiError as exc:  # a contact detail the hub cannot store
            if exc.status != 400:
                raise
            return _failure(source.key, ref, exc.message, False)

    async def _park(self, failure: parked.Failure) -> Refused:
        now = self.clock.now()
        row = await self.db.write(lambda s: parked.park(s, failure, now, self.max_attempts))
        retrying = row.status == parked.RETRYING
        log.warning(
            "source %s: leadgen %s not stored (%s), attempt %d, %s",
            failure.account,
            failure.item_key,
            failure.reason,
            row.attempts,
            "retried later" if retrying else "parked",
        )
        return Refused(failure.item_key, failure.reason, retrying)

    async def _taken(self, account: str, leadgen_id: str) -> None:
        """A lead stored at last (Meta resent it, or a retry) is no longer parked."""

        def parked_before(session: Session) -> bool:
            return parked.is_parked(session, CHANNEL, account, leadgen_id)

        def forget(session: Session) -> bool:
            return parked.taken(session, CHANNEL, account, leadgen_id)

        if await self.db.read(parked_before):
            await self.db.write(forget)


def _failure(account: str, ref: meta.LeadRef, reason: str, healable: bool) -> parked.Failure:
    detail = {"form_id": ref.form_id, "page_id": ref.page_id}
    return parked.Failure(CHANNEL, account, ref.leadgen_id, reason, healable, detail)


def _opt(detail: Mapping[str, object], name: str) -> str | None:
    value = detail.get(name)
    return value if isinstance(value, str) else None


def _replayed(when: datetime) -> HookRequest:
    """What the lead's message needs of the notification: when it came."""
    return HookRequest(method="POST", body=b"", content_type="", headers={}, query={}, now=when)
