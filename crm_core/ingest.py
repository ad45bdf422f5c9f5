"""The ingest service: one inbound message, one transaction, everything it implies.

A repeat of ``(channel account, external id)`` is a no-op. Otherwise the contact is
found by any of its identities (merging contacts the message proves to be one
person) or created; the open conversation is found, or opened and routed; the
message is appended; a deal is opened in the configured funnel when the contact
has none open, with its first task; audit and outbox rows go in the same commit.

This is the hottest path of the hub, so it speaks SQLAlchemy Core with statements
built once: about fifteen statements for a new client, fewer for a known one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import lru_cache, partial

from sqlalchemy import Connection, String, Table, and_, bindparam, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crm_core import channel_state
from crm_core import tables as t
from crm_core.clock import Clock
from crm_core.contracts import Checkpoint, Edit, IdentityRef, InboundMessage, IngestResult
from crm_core.db import Database
from crm_core.enums import (
    AuthorKind,
    Channel,
    ConversationStatus,
    DeliveryStatus,
    Direction,
    IdentityKind,
    Role,
    StageKind,
    TaskKind,
    TaskStatus,
)
from crm_core.fastsql import Prepared, Raw
from crm_core.identities import InvalidIdentityError, normalize
from crm_core.journal import Journal
from crm_core.merge import merge_contacts
from routing import Candidate, RouteDecision, RoutingRequest
from routing import decide as round_robin

log = logging.getLogger(__name__)

Router = Callable[[RoutingRequest, Sequence[Candidate]], RouteDecision]
ACTOR = "system:ingest"
_RETRIES = 4
_FUNNEL_CACHE_SECONDS = 5.0
_LIVE = (ConversationStatus.OPEN.value, ConversationStatus.PENDING.value)


class InvalidInboundError(ValueError):
    """The message cannot be ingested as given; ``field`` names the culprit."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True, slots=True)
class IngestPolicy:
    """The settings ingest follows."""

    default_region: str = "RU"
    default_funnel: str = "consultation"
    funnel_by_channel: Mapping[str, str] = field(default_factory=dict)
    first_task_due: timedelta = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class _Contact:
    id: int
    owner_id: int | None
    name: str | None
    company: str | None = None
    segment: str | None = None


class IngestService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        policy: IngestPolicy,
        router: Router = round_robin,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self._db = db
        self._clock = clock
        self.policy = policy
        self.router = router
        self._on_commit = on_commit
        self._account_ids: dict[tuple[str, str], int] = {}
        self._first_stages: dict[str, tuple[float, int, int]] = {}

    async def ingest(
        self, message: InboundMessage, checkpoint: Checkpoint | None = None
    ) -> IngestResult:
        """Store ``message`` and all it implies; raises :class:`InvalidInboundError`.

        A ``checkpoint`` (the reading position the message advances) is stored in the
        same transaction, a repeat included.
        """
        identities = self._normalized(message)

        def work(session: Session) -> tuple[IngestResult, int]:
            journal = Journal(ACTOR, self._clock.now())
            run = _Ingestion(session, message, identities, self, journal)
            result = run.execute()
            if checkpoint is not None:
                channel_state.save_checkpoint(run.raw, run.account_id, checkpoint, journal.now)
            return result, run.account_id

        for attempt in range(1, _RETRIES + 1):
            try:
                result, account_id = await self._db.write(work)
            except IntegrityError:
                # A concurrent writer (PostgreSQL) stored the same key or identity
                # first: start over, and the repeat check or the lookup will see it.
                if attempt == _RETRIES:
                    raise
                log.debug("ingest of %s raced a concurrent writer, retrying", message.external_id)
                continue
            self._account_ids[(message.channel.value, message.channel_account)] = account_id
            if not result.duplicate and self._on_commit is not None:
                self._on_commit()
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
        canonical = normalize(identity, self.policy.default_region)

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
        if not message.identities:
            raise InvalidInboundError("identities", "at least one identity of the sender is needed")
        seen: dict[tuple[str, str], IdentityRef] = {}
        for index, identity in enumerate(message.identities):
            try:
                canonical = normalize(identity, self.policy.default_region)
            except InvalidIdentityError as exc:
                raise InvalidInboundError(f"identities[{index}].value", exc.reason) from exc
            seen.setdefault((canonical.kind.value, canonical.value), canonical)
        return tuple(seen.values())

    def funnel_code(self, message: InboundMessage) -> str:
        return (
            message.funnel
            or self.policy.funnel_by_channel.get(message.channel.value)
            or self.policy.default_funnel
        )

    def first_stage(self, connection: Connection, code: str) -> tuple[int, int]:
        """``(funnel id, first open stage id)`` of an active funnel, cached for a few seconds."""
        now = time.monotonic()
        cached = self._first_stages.get(code)
        if cached is not None and cached[0] > now:
            return cached[1], cached[2]
        row = connection.execute(_FIRST_STAGE, {"code": code}).first()
        if row is None:
            raise InvalidInboundError("funnel", f"no active funnel with the code {code!r}")
        self._first_stages[code] = (now + _FUNNEL_CACHE_SECONDS, row[0], row[1])
        return row[0], row[1]


_ACCOUNT = Prepared(
    select(t.channel_accounts.c.id).where(
        t.channel_accounts.c.channel == bindparam("channel"),
        t.channel_accounts.c.key == bindparam("key"),
    )
)
_REPEAT = Prepared(
    select(
        t.messages.c.id,
        t.conversations.c.id,
        t.conversations.c.contact_id,
        t.conversations.c.assignee_id,
    )
    .join(t.conversations, t.conversations.c.id == t.messages.c.conversation_id)
    .where(
        t.messages.c.channel_account_id == bindparam("account"),
        t.messages.c.direction == Direction.INBOUND.value,
        t.messages.c.external_id == bindparam("external_id"),
    )
)


@lru_cache(maxsize=32)
def _known_identities(count: int) -> Prepared:
    """Contacts owning any of ``count`` (kind, value) pairs, through the unique index."""
    # OR of (kind, value) pairs: both SQLite and PostgreSQL search the unique index per
    # pair (SQLite scans the table for a row-value IN list).
    pairs = [
        and_(
            t.identities.c.kind == bindparam(f"kind{i}", type_=String()),
            t.identities.c.value == bindparam(f"value{i}", type_=String()),
        )
        for i in range(count)
    ]
    return Prepared(
        select(
            t.identities.c.kind,
            t.identities.c.value,
            t.identities.c.contact_id,
            t.contacts.c.owner_id,
            t.contacts.c.name,
            t.contacts.c.company,
            t.contacts.c.segment,
            t.identities.c.unreachable_at.is_not(None),
        )
        .join(t.contacts, t.contacts.c.id == t.identities.c.contact_id)
        .where(or_(*pairs))
    )


_CONTACT = select(
    t.contacts.c.id,
    t.contacts.c.owner_id,
    t.contacts.c.name,
    t.contacts.c.company,
    t.contacts.c.segment,
).where(t.contacts.c.id == bindparam("id"))
_LIVE_CONVERSATION = Prepared(
    select(t.conversations.c.id, t.conversations.c.assignee_id, t.conversations.c.team_id)
    .where(
        t.conversations.c.contact_id == bindparam("contact"),
        t.conversations.c.channel_account_id == bindparam("account"),
        t.conversations.c.status != ConversationStatus.CLOSED.value,
    )
    .order_by(t.conversations.c.id.desc())
    .limit(1)
)
_OPEN_LOAD = (
    select(func.count())
    .where(
        t.conversations.c.assignee_id == t.managers.c.id,
        t.conversations.c.status.in_([bindparam(f"live_{s}", s) for s in _LIVE]),
    )
    .correlate(t.managers)
    .scalar_subquery()
)
_CANDIDATES = Prepared(
    select(
        t.managers.c.id,
        t.managers.c.team_id,
        t.managers.c.capacity,
        t.managers.c.last_assigned_at,
        _OPEN_LOAD,
    ).where(t.managers.c.active.is_(True), t.managers.c.role == Role.MANAGER.value)
)
_OPEN_DEAL = Prepared(
    select(t.deals.c.id)
    .where(t.deals.c.contact_id == bindparam("contact"), t.deals.c.is_open.is_(True))
    .limit(1)
)
_FIRST_STAGE = (
    select(t.stages.c.funnel_id, t.stages.c.id)
    .join(t.funnels, t.funnels.c.id == t.stages.c.funnel_id)
    .where(
        t.funnels.c.code == bindparam("code"),
        t.funnels.c.active.is_(True),
        t.stages.c.kind == StageKind.OPEN.value,
    )
    .order_by(t.stages.c.position)
    .limit(1)
)


def _insert(table: Table, *, returning_id: bool = True) -> Prepared:
    """An insert of every column but the id, returning the new id."""
    columns = [c.name for c in table.columns if c.name != "id"]
    return Prepared.insert(table, columns, returning_id=returning_id)


_INSERT_ACCOUNT = _insert(t.channel_accounts)
_REACHABLE_AGAIN = Prepared(
    update(t.identities)
    .where(t.identities.c.kind == bindparam("kind"), t.identities.c.value == bindparam("value"))
    .values(unreachable_at=None, unreachable_reason=None)
)
_INSERT_CONTACT = _insert(t.contacts)
_INSERT_IDENTITY = _insert(t.identities, returning_id=False)
_INSERT_TOUCH = _insert(t.touches)
_INSERT_CONVERSATION = _insert(t.conversations)
_INSERT_MESSAGE = _insert(t.messages)
_INSERT_DEAL = _insert(t.deals)
_INSERT_STAGE_CHANGE = _insert(t.stage_changes, returning_id=False)
_INSERT_TASK = _insert(t.tasks)
_MARK_ASSIGNED = Prepared(
    update(t.managers)
    .where(t.managers.c.id == bindparam("manager"))
    .values(last_assigned_at=bindparam("now", type_=t.managers.c.last_assigned_at.type))
)
_SET_OWNER = Prepared(
    update(t.contacts)
    .where(t.contacts.c.id == bindparam("contact"), t.contacts.c.owner_id.is_(None))
    .values(owner_id=bindparam("owner", type_=t.contacts.c.owner_id.type))
)
_TOUCH_CONVERSATION = Prepared(
    update(t.conversations)
    .where(
        t.conversations.c.id == bindparam("conversation"),
        t.conversations.c.last_message_at
        < bindparam("at", type_=t.conversations.c.last_message_at.type),
    )
    .values(last_message_at=bindparam("at"))
)


class _Ingestion:
    """The steps of one ingest transaction."""

    def __init__(
        self,
        session: Session,
        message: InboundMessage,
        identities: tuple[IdentityRef, ...],
        service: IngestService,
        journal: Journal,
    ) -> None:
        self.session = session
        self.db = session.connection()
        self.raw = Raw(self.db)
        self.message = message
        self.identities = identities
        self.service = service
        self.journal = journal
        self.now = journal.now
        self.account_id = 0

    def execute(self) -> IngestResult:
        self.account_id = self._channel_account()
        repeat = self._repeat()
        if repeat is not None:
            return repeat
        contact, created, merged_ids = self._contact()
        conversation_id, assignee_id, conversation_created = self._conversation(contact, created)
        message_id = self._message(conversation_id, conversation_created)
        deal_id, task_id = self._deal(contact, created, conversation_id, assignee_id)
        self.journal.recorded_and_emitted(
            "message.created",
            "message",
            message_id,
            {
                "message_id": message_id,
                "conversation_id": conversation_id,
                "contact_id": contact.id,
                "channel": self.message.channel.value,
            },
        )
        self.journal.flush(self.session, self.raw)
        return IngestResult(
            duplicate=False,
            contact_id=contact.id,
            conversation_id=conversation_id,
            message_id=message_id,
            deal_id=deal_id,
            task_id=task_id,
            assignee_id=assignee_id,
            contact_created=created,
            conversation_created=conversation_created,
            deal_created=deal_id is not None,
            merged_contact_ids=merged_ids,
        )

    def _channel_account(self) -> int:
        channel, key = self.message.channel.value, self.message.channel_account
        known = self.service._account_ids.get((channel, key))
        if known is not None:
            return known
        found = _ACCOUNT.scalar(self.raw, {"channel": channel, "key": key})
        if found is not None:
            return int(found)
        account_id = int(
            _INSERT_ACCOUNT.scalar(
                self.raw, {"channel": channel, "key": key, "title": key, "created_at": self.now}
            )
        )
        self.journal.record(
            "channel_account.created",
            "channel_account",
            account_id,
            {"channel": channel, "key": key},
        )
        return account_id

    def _repeat(self) -> IngestResult | None:
        row = _REPEAT.first(
            self.raw, {"account": self.account_id, "external_id": self.message.external_id}
        )
        if row is None:
            return None
        return IngestResult(
            duplicate=True,
            contact_id=row[2],
            conversation_id=row[1],
            message_id=row[0],
            assignee_id=row[3],
        )

    def _contact(self) -> tuple[_Contact, bool, tuple[int, ...]]:
        lookup = _known_identities(len(self.identities))
        params: dict[str, str] = {}
        for n, identity in enumerate(self.identities):
            params[f"kind{n}"] = identity.kind.value
            params[f"value{n}"] = identity.value
        known = lookup.all(self.raw, params)
        for row in known:
            if row[7]:  # the client wrote again: reachable again
                _REACHABLE_AGAIN.execute(self.raw, {"kind": row[0], "value": row[1]})
        have = {(r[0], r[1]) for r in known}
        merged: list[int] = []
        if known:
            by_id = {r[2]: _Contact(*r[2:7]) for r in known}
            survivor_id = min(by_id)  # the oldest contact survives
            for other_id in sorted(by_id)[1:]:
                reason = f"message {self.message.external_id} brought identities of both contacts"
                merge_contacts(self.session, survivor_id, other_id, reason, self.journal)
                merged.append(other_id)
            if merged:
                row = self.db.execute(_CONTACT, {"id": survivor_id}).one()
                contact = _Contact(*row)
            else:
                contact = by_id[survivor_id]
            self._fill_blanks(contact)
            created = False
        else:
            contact = self._new_contact()
            created = True
        missing = [
            {
                "contact_id": contact.id,
                "kind": i.kind.value,
                "value": i.value,
                "created_at": self.now,
                "unreachable_at": None,
                "unreachable_reason": None,
            }
            for i in self.identities
            if (i.kind.value, i.value) not in have
        ]
        if missing:
            _INSERT_IDENTITY.executemany(self.raw, missing)
            for added in missing:
                self.journal.record(
                    "identity.added",
                    "contact",
                    contact.id,
                    {"kind": added["kind"], "value": added["value"]},
                )
        return contact, created, tuple(merged)

    def _new_contact(self) -> _Contact:
        message = self.message
        contact_id = int(
            _INSERT_CONTACT.scalar(
                self.raw,
                {
                    "name": message.display_name,
                    "company": message.company,
                    "segment": message.segment.value if message.segment else None,
                    "owner_id": None,
                    "merged_into_id": None,
                    "created_at": self.now,
                    "updated_at": self.now,
                },
            )
        )
        self.journal.recorded_and_emitted(
            "contact.created",
            "contact",
            contact_id,
            {"contact_id": contact_id, "name": message.display_name},
        )
        return _Contact(contact_id, None, message.display_name)

    def _fill_blanks(self, contact: _Contact) -> None:
        """A known contact gets the name, company and segment it did not have yet."""
        message = self.message
        changed = {
            name: given
            for name, given, current in (
                ("name", message.display_name, contact.name),
                ("company", message.company, contact.company),
                ("segment", message.segment.value if message.segment else None, contact.segment),
            )
            if given is not None and current is None
        }
        if changed:
            self.db.execute(
                update(t.contacts)
                .where(t.contacts.c.id == contact.id)
                .values(**changed, updated_at=self.now)
            )
            self.journal.record("contact.updated", "contact", contact.id, changed)

    def _conversation(self, contact: _Contact, new_contact: bool) -> tuple[int, int | None, bool]:
        if not new_contact:
            row = _LIVE_CONVERSATION.first(
                self.raw, {"contact": contact.id, "account": self.account_id}
            )
            if row is not None:
                if not self.message.attribution.is_empty():
                    self._touch(contact.id)
                return row[0], row[1], False
        self._touch(contact.id)
        decision = self._route(contact)
        conversation_id = int(
            _INSERT_CONVERSATION.scalar(
                self.raw,
                {
                    "contact_id": contact.id,
                    "channel_account_id": self.account_id,
                    "status": ConversationStatus.OPEN.value,
                    "assignee_id": decision.manager_id,
                    "team_id": decision.team_id,
                    "routing_reason": decision.reason,
                    "opened_at": self.message.occurred_at,
                    "first_response_at": None,
                    "last_message_at": self.message.occurred_at,
                    "closed_at": None,
                },
            )
        )
        self.journal.recorded_and_emitted(
            "conversation.created",
            "conversation",
            conversation_id,
            {
                "conversation_id": conversation_id,
                "contact_id": contact.id,
                "assignee_id": decision.manager_id,
                "routing_reason": decision.reason,
            },
        )
        return conversation_id, decision.manager_id, True

    def _touch(self, contact_id: int) -> None:
        a = self.message.attribution
        self.touch_id = int(
            _INSERT_TOUCH.scalar(
                self.raw,
                {
                    "contact_id": contact_id,
                    "channel": self.message.channel.value,
                    "channel_account": self.message.channel_account,
                    "utm_source": a.utm_source,
                    "utm_medium": a.utm_medium,
                    "utm_campaign": a.utm_campaign,
                    "utm_content": a.utm_content,
                    "utm_term": a.utm_term,
                    "gclid": a.gclid,
                    "yclid": a.yclid,
                    "fbclid": a.fbclid,
                    "referrer": a.referrer,
                    "landing_page": a.landing_page,
                    "occurred_at": self.message.occurred_at,
                },
            )
        )

    def _route(self, contact: _Contact) -> RouteDecision:
        candidates = [
            Candidate(
                manager_id=r[0],
                team_id=r[1],
                available=True,
                open_load=r[4],
                capacity=r[2],
                last_assigned_at=r[3],
            )
            for r in _CANDIDATES.all(self.raw)
        ]
        request = RoutingRequest(
            channel=self.message.channel.value,
            channel_account=self.message.channel_account,
            occurred_at=self.message.occurred_at,
            returning_owner_id=contact.owner_id,
        )
        decision = self.service.router(request, candidates)
        if decision.manager_id is not None:
            _MARK_ASSIGNED.execute(self.raw, {"manager": decision.manager_id, "now": self.now})
            if contact.owner_id is None:
                _SET_OWNER.execute(self.raw, {"contact": contact.id, "owner": decision.manager_id})
        return decision

    def _message(self, conversation_id: int, conversation_created: bool) -> int:
        message = self.message
        message_id = int(
            _INSERT_MESSAGE.scalar(
                self.raw,
                {
                    "conversation_id": conversation_id,
                    "channel_account_id": self.account_id,
                    "direction": Direction.INBOUND.value,
                    "author_kind": AuthorKind.CONTACT.value,
                    "author_manager_id": None,
                    "text": message.text,
                    "attachments": [a.as_json() for a in message.attachments],
                    "external_id": message.external_id,
                    "delivery_status": DeliveryStatus.RECEIVED.value,
                    "delivery_error": None,
                    "raw_ref": message.raw_ref,
                    "occurred_at": message.occurred_at,
                    "created_at": self.now,
                },
            )
        )
        if not conversation_created:
            _TOUCH_CONVERSATION.execute(
                self.raw, {"conversation": conversation_id, "at": message.occurred_at}
            )
        return message_id

    def _deal(
        self, contact: _Contact, new_contact: bool, conversation_id: int, assignee_id: int | None
    ) -> tuple[int | None, int | None]:
        if not new_contact and _OPEN_DEAL.first(self.raw, {"contact": contact.id}):
            return None, None
        code = self.service.funnel_code(self.message)
        funnel_id, stage_id = self.service.first_stage(self.db, code)
        owner_id = assignee_id or contact.owner_id
        deal_id = int(
            _INSERT_DEAL.scalar(
                self.raw,
                {
                    "contact_id": contact.id,
                    "funnel_id": funnel_id,
                    "stage_id": stage_id,
                    "is_open": True,
                    "title": self._deal_title(contact),
                    "amount": None,
                    "currency": "RUB",
                    "owner_id": owner_id,
                    "lost_reason": None,
                    "source_touch_id": getattr(self, "touch_id", None),
                    "conversation_id": conversation_id,
                    "created_at": self.now,
                    "updated_at": self.now,
                    "closed_at": None,
                },
            )
        )
        _INSERT_STAGE_CHANGE.execute(
            self.raw,
            {
                "deal_id": deal_id,
                "from_stage_id": None,
                "to_stage_id": stage_id,
                "actor": ACTOR,
                "changed_at": self.now,
            },
        )
        has_phone = any(i.kind is IdentityKind.PHONE for i in self.identities)
        due_at = self.now + self.service.policy.first_task_due
        task_id = int(
            _INSERT_TASK.scalar(
                self.raw,
                {
                    "kind": (TaskKind.CALL if has_phone else TaskKind.FOLLOW_UP).value,
                    "title": "Call the client back" if has_phone else "Answer the client",
                    "status": TaskStatus.OPEN.value,
                    "assignee_id": owner_id,
                    "author_id": None,
                    "due_at": due_at,
                    "done_at": None,
                    "contact_id": contact.id,
                    "deal_id": deal_id,
                    "conversation_id": conversation_id,
                    "created_at": self.now,
                },
            )
        )
        self.journal.recorded_and_emitted(
            "deal.created",
            "deal",
            deal_id,
            {
                "deal_id": deal_id,
                "contact_id": contact.id,
                "funnel": code,
                "stage_id": stage_id,
                "owner_id": owner_id,
            },
        )
        self.journal.recorded_and_emitted(
            "task.created",
            "task",
            task_id,
            {
                "task_id": task_id,
                "deal_id": deal_id,
                "assignee_id": owner_id,
                "kind": TaskKind.CALL.value if has_phone else TaskKind.FOLLOW_UP.value,
                "due_at": due_at.isoformat(),
            },
        )
        return deal_id, task_id

    def _deal_title(self, contact: _Contact) -> str:
        who = contact.name or self.identities[0].value
        return f"{who} — {self.message.channel.value}"[:300]
