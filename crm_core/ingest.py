"""The ingest service: one inbound message, one transaction, everything it implies.

A repeat of ``(channel account, external id)`` is a no-op. Otherwise the contact is
found by any of its identities (merging contacts the message proves to be one
person) or created; the open conversation is found (or the one it answers, by its
references), or opened and routed; the message is appended; a deal is opened in the
configured funnel when the contact has none open, with its first task; audit and
outbox rows go in the same commit. The steps are :class:`crm_core.ingestion.Ingestion`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from crm_core import channel_state
from crm_core.automation import Automation
from crm_core.clock import Clock
from crm_core.contracts import Checkpoint, Edit, IdentityRef, InboundMessage, IngestResult
from crm_core.db import Database
from crm_core.enums import Channel
from crm_core.identities import InvalidIdentityError, normalize
from crm_core.inbound import ACTOR, IngestPolicy, InvalidInboundError, Router
from crm_core.ingest_sql import FIRST_STAGE
from crm_core.ingestion import Ingestion
from crm_core.journal import Journal
from crm_core.text import storable
from crm_core.tracking import tracked
from routing import everyone, route

__all__ = ["ACTOR", "IngestPolicy", "IngestService", "InvalidInboundError"]

log = logging.getLogger(__name__)
_RETRIES = 4
# Told of each message stored or repeated: the message, the result, the seconds it took.
Observer = Callable[[InboundMessage, IngestResult, float], None]
_FUNNEL_CACHE_SECONDS = 5.0
_DEADLOCK = "40P01"


def _deadlock(error: DBAPIError) -> bool:
    return getattr(error.orig, "sqlstate", None) == _DEADLOCK


def _test_lead(message: InboundMessage, identities: tuple[IdentityRef, ...]) -> InboundMessage:
    """A test lead's contact details stay in its message's text, never as identities: a
    real lead with the same phone or email must not find (and join) the test contact."""
    if not identities:
        return message
    details = ", ".join(f"{i.kind.value} {i.value}" for i in identities)
    line = f"Test lead's contact details (not kept as identities): {details}"
    return replace(message, text=f"{message.text}\n{line}".strip())


class IngestService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        policy: IngestPolicy,
        router: Router | None = None,
        automation: Automation | None = None,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self._db = db
        self._clock = clock
        self.policy = policy
        self.router: Router = router or partial(route, config=everyone())
        self.automation = automation or Automation()
        self._on_commit = on_commit
        self._observers: list[Observer] = []
        self._account_ids: dict[tuple[str, str], int] = {}
        self._first_stages: dict[str, tuple[float, int, int, str]] = {}

    def observe(self, observer: Observer) -> None:
        """Call ``observer`` after each ingest that returns (metrics, channel health)."""
        self._observers.append(observer)

    async def ingest(
        self, message: InboundMessage, checkpoint: Checkpoint | None = None
    ) -> IngestResult:
        """Store ``message`` and all it implies; raises :class:`InvalidInboundError`.

        A ``checkpoint`` (the reading position the message advances) is stored in the
        same transaction, a repeat included.
        """
        started = time.perf_counter()
        message = storable(message)  # a NUL in a mail is replaced, not a refused mail
        policy = self.policy
        if policy.tracking_numbers and message.call is not None:
            message = tracked(message, policy.tracking_numbers, policy.default_region)
        identities = self._normalized(message)
        if message.test:
            message, identities = _test_lead(message, identities), ()

        def work(session: Session) -> tuple[IngestResult, int]:
            journal = Journal(ACTOR, self._clock.now())
            run = Ingestion(session, message, identities, self, journal)
            result = run.execute()
            if checkpoint is not None:
                channel_state.save_checkpoint(run.raw, run.account_id, checkpoint, journal.now)
            for mark in message.marks:
                channel_state.save_checkpoint(run.raw, run.account_id, mark, journal.now)
            return result, run.account_id

        for attempt in range(1, _RETRIES + 1):
            try:
                result, account_id = await self._db.write_grouped(work)
            except IntegrityError:
                # A concurrent writer (PostgreSQL) stored the same key or identity
                # first: start over, and the repeat check or the lookup will see it.
                if attempt == _RETRIES:
                    raise
                log.debug("ingest of %s raced a concurrent writer, retrying", message.external_id)
                continue
            except DBAPIError as exc:
                # A deadlock (a queue that gained a manager while routing locked it,
                # crm_core.load_locks) rolled the transaction back: run it again.
                if attempt == _RETRIES or not _deadlock(exc):
                    raise
                log.info("ingest of %s met a deadlock, retrying", message.external_id)
                continue
            self._account_ids[(message.channel.value, message.channel_account)] = account_id
            if not result.duplicate and self._on_commit is not None:
                self._on_commit()
            for observer in self._observers:
                observer(message, result, time.perf_counter() - started)
            return result
        raise AssertionError("unreachable")

    async def checkpoint(self, channel: Channel, channel_account: str, key: str) -> str | None:
        return await self._db.read(
            partial(
                channel_state.load_checkpoint,
                channel=channel.value,
                channel_account=channel_account,
                key=key,
            )
        )

    async def edit(self, edit: Edit) -> bool:
        edit = storable(edit)

        def work(session: Session) -> bool:
            journal = Journal(ACTOR, self._clock.now())
            found = channel_state.apply_edit(session, edit, journal)
            journal.flush(session)
            return found

        found = await self._db.write(work)
        if found and self._on_commit is not None:
            self._on_commit()
        return found

    async def mark_unreachable(self, identity: IdentityRef, reason: str) -> bool:
        canonical = normalize(storable(identity), self.policy.default_region)
        reason = storable(reason)

        def work(session: Session) -> bool:
            journal = Journal(ACTOR, self._clock.now())
            found = channel_state.mark_unreachable(session, canonical, reason, journal)
            journal.flush(session)
            return found

        found = await self._db.write(work)
        if found and self._on_commit is not None:
            self._on_commit()
        return found

    def _normalized(self, message: InboundMessage) -> tuple[IdentityRef, ...]:
        if not message.identities and message.call is None:  # a call may come from no number
            raise InvalidInboundError("identities", "at least one identity of the sender is needed")
        seen: dict[tuple[str, str], IdentityRef] = {}
        for index, identity in enumerate(message.identities):
            try:
                canonical = normalize(identity, self.policy.default_region)
            except InvalidIdentityError as exc:
                raise InvalidInboundError(f"identities[{index}].value", exc.reason) from exc
            seen.setdefault((canonical.kind.value, canonical.value), canonical)
        return tuple(seen.values())

    def known_account(self, channel: str, key: str) -> int | None:
        return self._account_ids.get((channel, key))

    def funnel_code(self, message: InboundMessage, rule_funnel: str | None) -> str:
        return (
            message.funnel
            or rule_funnel
            or self.policy.funnel_by_channel.get(message.channel.value)
            or self.policy.default_funnel
        )

    def first_stage(self, connection: Connection, code: str) -> tuple[int, int, str]:
        """``(funnel id, first open stage id, its code)`` of an active funnel, cached for
        a few seconds."""
        now = time.monotonic()
        cached = self._first_stages.get(code)
        if cached is not None and cached[0] > now:
            return cached[1], cached[2], cached[3]
        row = connection.execute(FIRST_STAGE, {"code": code}).first()
        if row is None:
            raise InvalidInboundError("funnel", f"no active funnel with the code {code!r}")
        self._first_stages[code] = (now + _FUNNEL_CACHE_SECONDS, row[0], row[1], row[2])
        return row[0], row[1], row[2]
