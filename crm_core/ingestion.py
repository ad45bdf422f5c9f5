"""The steps of one ingest transaction, on the statements of :mod:`crm_core.ingest_sql`."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import Connection, select, update
from sqlalchemy.orm import Session

from crm_core import ingest_sql as q
from crm_core import tables as t
from crm_core import timers
from crm_core.automation import Automation
from crm_core.calls import WITHHELD, record_call, record_repeat
from crm_core.contracts import CallRecord, IdentityRef, InboundMessage, IngestResult
from crm_core.enums import (
    AuthorKind,
    CallDisposition,
    ConversationStatus,
    DeliveryStatus,
    Direction,
    IdentityKind,
    TaskKind,
    TaskStatus,
)
from crm_core.fastsql import Raw
from crm_core.inbound import ACTOR, IngestPolicy, InvalidInboundError, Router
from crm_core.journal import Journal
from crm_core.load_locks import assignment_stamp, decide_locked
from crm_core.merge import merge_contacts
from crm_core.replies import ReplyError, queue_reply
from crm_core.snapshots import (
    AttachmentSnapshot,
    AttributionSnapshot,
    ContactSnapshot,
    ConversationSnapshot,
    DealSnapshot,
    MessageSnapshot,
    TaskSnapshot,
)
from routing import Candidate, Decision, RoutingEvent, TaskSpec

log = logging.getLogger(__name__)
# A test lead is routed to no one: no assignee, no queue, redirect or SLA timers.
_NOT_ROUTED = Decision(
    rule="", team="", manager_id=None, offered_to=(), waiting=False, reason="test lead: not routed"
)


class IngestContext(Protocol):
    """What a transaction needs from the service that runs it."""

    policy: IngestPolicy
    router: Router
    automation: Automation

    def known_account(self, channel: str, key: str) -> int | None: ...

    def funnel_code(self, message: InboundMessage, rule_funnel: str | None) -> str: ...

    def first_stage(self, connection: Connection, code: str) -> tuple[int, int, str]: ...


@dataclass(frozen=True, slots=True)
class _Contact:
    id: int
    owner_id: int | None
    name: str | None
    company: str | None = None
    segment: str | None = None


class Ingestion:
    """The steps of one ingest transaction."""

    def __init__(
        self,
        session: Session,
        message: InboundMessage,
        identities: tuple[IdentityRef, ...],
        service: IngestContext,
        journal: Journal,
    ) -> None:
        self.session = session
        self.db = session.connection()
        self.raw = Raw.of(session)
        self.message = message
        self.identities = identities
        self.service = service
        self.journal = journal
        self.now = journal.now
        self.account_id = 0
        self.decision: Decision | None = None

    def execute(self) -> IngestResult:
        self.account_id = self._channel_account()
        repeat = self._repeat()
        if repeat is not None:
            return repeat
        contact, created, merged_ids = self._contact()
        conversation_id, assignee_id, conversation_created = self._conversation(contact, created)
        stored = self._message(conversation_id, conversation_created)
        message_id = stored.id
        if self.decision is not None and self.decision.auto_reply:
            self._auto_reply(conversation_id, self.decision.auto_reply)
        deal_id, task_id = self._deal(contact, created, conversation_id, assignee_id)
        if self.message.call is not None:
            call = self._call_with_number(self.message.call)
            call_back_id = record_call(
                self.session,
                self.journal,
                self.service.automation,
                call,
                account_id=self.account_id,
                contact_id=contact.id,
                conversation_id=conversation_id,
                message_id=message_id,
                deal_id=deal_id,
                assignee_id=assignee_id or contact.owner_id,
                reachable=self._phone() is not None,
            )
            task_id = call_back_id or task_id
            if call.disposition is CallDisposition.ANSWERED:  # who answered may own it now
                assignee_id = self.db.execute(
                    select(t.conversations.c.assignee_id).where(
                        t.conversations.c.id == conversation_id
                    )
                ).scalar()
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
            about=stored,
        )
        self.journal.flush(self.session)
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

    def _call_with_number(self, call: CallRecord) -> CallRecord:
        """The call with the client's number in E.164, as the contact's identity has it
        (a PBX or a SIP trunk sends ``79161234567``, ``8916...`` or ``+7 916 ...``): the
        caller of an incoming call, the callee of an outgoing one."""
        phone = self._phone()
        if phone is None:
            return call
        if call.direction is Direction.INBOUND:
            return replace(call, caller=phone)
        return replace(call, callee=phone)

    def _phone(self) -> str | None:
        return next((i.value for i in self.identities if i.kind is IdentityKind.PHONE), None)

    def _channel_account(self) -> int:
        channel, key = self.message.channel.value, self.message.channel_account
        known = self.service.known_account(channel, key)
        if known is not None:
            return known
        found = q.ACCOUNT.scalar(self.raw, {"channel": channel, "key": key})
        if found is not None:
            return int(found)
        account_id = int(
            q.INSERT_ACCOUNT.scalar(
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
        row = q.REPEAT.first(
            self.raw, {"account": self.account_id, "external_id": self.message.external_id}
        )
        if row is None:
            return None
        if self.message.call is not None:  # a later record of the call: answered wins
            record_repeat(self.session, self.journal, self._call_with_number(self.message.call))
            self.journal.flush(self.session)
        return IngestResult(
            duplicate=True,
            contact_id=row[2],
            conversation_id=row[1],
            message_id=row[0],
            assignee_id=row[3],
        )

    def _contact(self) -> tuple[_Contact, bool, tuple[int, ...]]:
        if not self.identities:  # a call from a withheld number: a record of its own
            return self._new_contact(), True, ()
        lookup = q.known_identities(len(self.identities))
        handle = self.message.handle.lower()[:64] if self.message.handle else None
        own = (self.identities[0].kind.value, self.identities[0].value)  # the channel's own
        params: dict[str, str] = {}
        for n, identity in enumerate(self.identities):
            params[f"kind{n}"] = identity.kind.value
            params[f"value{n}"] = identity.value
        known = lookup.all(self.raw, params)
        for row in known:
            if row[7]:  # the client wrote again: reachable again
                q.REACHABLE_AGAIN.execute(self.raw, {"kind": row[0], "value": row[1]})
            if handle is not None and (row[0], row[1]) == own and row[8] != handle:
                q.SET_HANDLE.execute(self.raw, {"kind": row[0], "value": row[1], "handle": handle})
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
                row = self.db.execute(q.CONTACT, {"id": survivor_id}).one()
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
                "handle": handle if (i.kind.value, i.value) == own else None,
            }
            for i in self.identities
            if (i.kind.value, i.value) not in have
        ]
        if missing:
            q.INSERT_IDENTITY.executemany(self.raw, missing)
            if not created:  # a new contact's identities are in its contact.created entry
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
            q.INSERT_CONTACT.scalar(
                self.raw,
                {
                    "name": message.display_name,
                    "company": message.company,
                    "segment": message.segment.value if message.segment else None,
                    "owner_id": None,
                    "merged_into_id": None,
                    "is_test": message.test,
                    "created_at": self.now,
                    "updated_at": self.now,
                },
            )
        )
        self.journal.recorded_and_emitted(
            "contact.created",
            "contact",
            contact_id,
            {
                "contact_id": contact_id,
                "name": message.display_name,
                "identities": [{"kind": i.kind.value, "value": i.value} for i in self.identities],
            },
            about=ContactSnapshot(
                id=contact_id,
                name=message.display_name,
                company=message.company,
                segment=message.segment.value if message.segment else None,
                owner_id=None,
                identities=ContactSnapshot.identities_of(self.identities),
                created_at=self.now,
                is_test=message.test,
            ),
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
        threaded = self._threaded(contact)
        if threaded is not None:
            if not self.message.attribution.is_empty():
                self._touch(contact.id)
            return threaded[0], threaded[1], False
        if not new_contact and not self.message.own_conversation:
            row = q.LIVE_CONVERSATION.first(
                self.raw, {"contact": contact.id, "account": self.account_id}
            )
            if row is not None:
                if not self.message.attribution.is_empty():
                    self._touch(contact.id)
                return row[0], row[1], False
        self._touch(contact.id)
        test = self.message.test
        decision, team_id = (_NOT_ROUTED, None) if test else self._route(contact, new_contact)
        conversation_id = int(
            q.INSERT_CONVERSATION.scalar(
                self.raw,
                {
                    "contact_id": contact.id,
                    "channel_account_id": self.account_id,
                    "status": ConversationStatus.OPEN.value,
                    "assignee_id": decision.manager_id,
                    "team_id": team_id,
                    "routing_reason": decision.reason,
                    "tags": list(decision.tags),
                    "opened_at": self.message.occurred_at,
                    "first_response_at": None,
                    "sla_breached_at": None,
                    "last_message_at": self.message.occurred_at,
                    "closed_at": None,
                },
            )
        )
        if decision.redirect_after_minutes and decision.manager_id is not None:
            timers.schedule(
                self.raw,
                timers.REDIRECT,
                conversation_id,
                decision.manager_id,
                decision.team,
                decision.redirect_after_minutes,
                self.now,
            )
        if decision.manager_id is None and not decision.offered_to and not test:
            # Waiting: at the team's opening, or again in a few minutes.
            opens = datetime.fromisoformat(decision.opens_at) if decision.opens_at else None
            timers.schedule(
                self.raw,
                timers.QUEUE,
                conversation_id,
                None,
                decision.team,
                0 if opens else timers.QUEUE_RETRY_MINUTES,
                self.now,
                due_at=opens,
            )
        if decision.sla_minutes:
            timers.schedule(
                self.raw,
                timers.SLA,
                conversation_id,
                decision.manager_id,
                decision.team,
                decision.sla_minutes,
                self.now,
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
            about=ConversationSnapshot(
                id=conversation_id,
                contact_id=contact.id,
                channel_account_id=self.account_id,
                status=ConversationStatus.OPEN.value,
                assignee_id=decision.manager_id,
                team_id=team_id,
                routing_reason=decision.reason,
                tags=tuple(decision.tags),
                opened_at=self.message.occurred_at,
                first_response_at=None,
                sla_breached_at=None,
                last_message_at=self.message.occurred_at,
                closed_at=None,
            ),
        )
        return conversation_id, decision.manager_id, True

    def _threaded(self, contact: _Contact) -> tuple[int, int | None] | None:
        """The conversation this message answers, by its references or a conversation token."""
        message = self.message
        row = None
        if message.thread_refs:
            row = self.db.execute(
                select(t.conversations.c.id, t.conversations.c.assignee_id)
                .join(t.messages, t.messages.c.conversation_id == t.conversations.c.id)
                .where(
                    t.messages.c.channel_account_id == self.account_id,
                    t.messages.c.external_id.in_(message.thread_refs),
                )
                .order_by(t.messages.c.id.desc())
                .limit(1)
            ).first()
        if row is None and message.conversation_hint is not None:
            row = self.db.execute(
                select(t.conversations.c.id, t.conversations.c.assignee_id).where(
                    t.conversations.c.id == message.conversation_hint,
                    t.conversations.c.channel_account_id == self.account_id,
                    t.conversations.c.contact_id == contact.id,
                )
            ).first()
        if row is None:
            return None
        self.db.execute(
            update(t.conversations)
            .where(
                t.conversations.c.id == row[0],
                t.conversations.c.status == ConversationStatus.CLOSED.value,
            )
            .values(status=ConversationStatus.OPEN.value, closed_at=None)
        )
        return row[0], row[1]

    def _touch(self, contact_id: int) -> None:
        a = self.message.attribution
        self.touch_id = int(
            q.INSERT_TOUCH.scalar(
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

    def _route(self, contact: _Contact, new_contact: bool) -> tuple[Decision, int | None]:
        """Ask routing, with the managers it reads locked (:mod:`crm_core.load_locks`);
        returns the decision and the database id of its team."""
        message = self.message
        a = message.attribution
        event = RoutingEvent(
            channel=message.channel.value,
            channel_account=message.channel_account,
            occurred_at=message.occurred_at,
            text=message.text,
            utm_source=a.utm_source,
            utm_medium=a.utm_medium,
            utm_campaign=a.utm_campaign,
            utm_content=a.utm_content,
            utm_term=a.utm_term,
            segment=message.segment.value if message.segment else None,
            returning=not new_contact,
            owner_id=contact.owner_id,
        )
        router = self.service.router

        def decide(candidates: Sequence[Candidate]) -> tuple[Decision, tuple[int, ...]]:
            decision = router(event, candidates)
            return decision, decision.considered

        decision, candidates = decide_locked(self.raw, decide)
        self.decision = decision
        if decision.manager_id is not None:
            stamp = assignment_stamp(self.now, candidates, decision.considered)
            q.MARK_ASSIGNED.execute(self.raw, {"manager": decision.manager_id, "now": stamp})
            if contact.owner_id is None:
                q.SET_OWNER.execute(self.raw, {"contact": contact.id, "owner": decision.manager_id})
        team_id = next((c.team_id for c in candidates if c.team == decision.team), None)
        return decision, team_id

    def _message(self, conversation_id: int, conversation_created: bool) -> MessageSnapshot:
        message = self.message
        message_id = int(
            q.INSERT_MESSAGE.scalar(
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
            q.TOUCH_CONVERSATION.execute(
                self.raw, {"conversation": conversation_id, "at": message.occurred_at}
            )
        return MessageSnapshot(
            id=message_id,
            conversation_id=conversation_id,
            channel_account_id=self.account_id,
            channel=message.channel.value,
            direction=Direction.INBOUND.value,
            author_kind=AuthorKind.CONTACT.value,
            author_manager_id=None,
            text=message.text,
            attachments=tuple(
                AttachmentSnapshot(a.name, a.content_type, a.size, a.storage_key, a.url, a.failure)
                for a in message.attachments
            ),
            external_id=message.external_id,
            delivery_status=DeliveryStatus.RECEIVED.value,
            delivery_error=None,
            occurred_at=message.occurred_at,
            created_at=self.now,
        )

    def _deal(
        self, contact: _Contact, new_contact: bool, conversation_id: int, assignee_id: int | None
    ) -> tuple[int | None, int | None]:
        if not new_contact:
            open_deal = q.OPEN_DEAL.first(self.raw, {"contact": contact.id})
            if open_deal is not None:
                if self.service.automation.listens("client_replied"):
                    self.service.automation.fire(
                        self.session, self.journal, "client_replied", int(open_deal[0])
                    )
                return None, None
        code, funnel_id, stage_id, stage_code = self._funnel_stage()
        owner_id = assignee_id or contact.owner_id
        decision = self.decision
        title = self._deal_title(contact)
        touch_id: int | None = getattr(self, "touch_id", None)
        deal_id = int(
            q.INSERT_DEAL.scalar(
                self.raw,
                {
                    "contact_id": contact.id,
                    "funnel_id": funnel_id,
                    "stage_id": stage_id,
                    "is_open": True,
                    "title": title,
                    "amount": None,
                    "currency": "RUB",
                    "product": None,
                    "owner_id": owner_id,
                    "lost_reason": None,
                    "source_touch_id": touch_id,
                    "routing_reason": decision.reason if decision else None,
                    "tags": list(decision.tags) if decision else [],
                    "conversation_id": conversation_id,
                    "created_at": self.now,
                    "updated_at": self.now,
                    "closed_at": None,
                },
            )
        )
        q.INSERT_STAGE_CHANGE.execute(
            self.raw,
            {
                "deal_id": deal_id,
                "from_stage_id": None,
                "to_stage_id": stage_id,
                "actor": ACTOR,
                "changed_at": self.now,
            },
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
            about=DealSnapshot(
                id=deal_id,
                title=title,
                funnel=code,
                funnel_id=funnel_id,
                stage=stage_code,
                stage_id=stage_id,
                is_open=True,
                amount=None,
                currency="RUB",
                contact_id=contact.id,
                owner_id=owner_id,
                conversation_id=conversation_id,
                lost_reason=None,
                routing_reason=decision.reason if decision else None,
                tags=tuple(decision.tags) if decision else (),
                attribution=None
                if touch_id is None
                else AttributionSnapshot.of(
                    self.message.channel.value,
                    self.message.channel_account,
                    self.message.attribution,
                ),
                created_at=self.now,
                closed_at=None,
            ),
        )
        task_ids = [
            self._task(spec, owner_id, contact.id, deal_id, conversation_id)
            for spec in self._task_specs()
        ]
        return deal_id, task_ids[0] if task_ids else None

    def _funnel_stage(self) -> tuple[str, int, int, str]:
        """The deal's funnel and stage: the message's own funnel, else the rule's, else the
        channel's or the default; a rule naming a funnel or stage that does not exist falls
        back (the client's message is never refused for a configuration slip)."""
        rule_funnel = self.decision.funnel if self.decision else None
        code = self.service.funnel_code(self.message, rule_funnel)
        try:
            funnel_id, stage_id, stage_code = self.service.first_stage(self.db, code)
        except InvalidInboundError:
            if self.message.funnel or not rule_funnel:
                raise
            log.warning("routing rule names an unknown funnel %r; using the default", code)
            code = self.service.funnel_code(self.message, None)
            funnel_id, stage_id, stage_code = self.service.first_stage(self.db, code)
        wanted = self.decision.stage if self.decision else None
        if wanted:
            found = q.STAGE_BY_CODE.scalar(self.raw, {"funnel": funnel_id, "code": wanted})
            if found is None:
                log.warning("routing rule names stage %r, not in funnel %r", wanted, code)
            else:
                stage_id, stage_code = int(found), wanted
        return code, funnel_id, stage_id, stage_code

    def _task_specs(self) -> tuple[TaskSpec, ...]:
        if self.message.test:
            return ()  # nobody is to call a test lead back
        call = self.message.call
        if call is not None and call.missed:
            return ()  # the call's own call-back task is the first (crm_core.calls)
        if call is not None and call.disposition is CallDisposition.ANSWERED:
            return self.decision.tasks if self.decision else ()  # the client was spoken to
        if self.decision is not None and self.decision.tasks:
            return self.decision.tasks
        if any(i.kind is IdentityKind.PHONE for i in self.identities):
            return (TaskSpec(TaskKind.CALL.value, "Call the client back", 0),)
        return (TaskSpec(TaskKind.FOLLOW_UP.value, "Answer the client", 0),)

    def _task(
        self,
        spec: TaskSpec,
        owner_id: int | None,
        contact_id: int,
        deal_id: int,
        conversation_id: int,
    ) -> int:
        due_at = self.now + (
            timedelta(minutes=spec.due_minutes)
            if spec.due_minutes
            else self.service.policy.first_task_due
        )
        task_id = int(
            q.INSERT_TASK.scalar(
                self.raw,
                {
                    "kind": spec.kind,
                    "title": spec.title,
                    "status": TaskStatus.OPEN.value,
                    "assignee_id": owner_id,
                    "author_id": None,
                    "due_at": due_at,
                    "done_at": None,
                    "overdue_at": None,
                    "contact_id": contact_id,
                    "deal_id": deal_id,
                    "conversation_id": conversation_id,
                    "created_at": self.now,
                },
            )
        )
        self.journal.recorded_and_emitted(
            "task.created",
            "task",
            task_id,
            {
                "task_id": task_id,
                "deal_id": deal_id,
                "assignee_id": owner_id,
                "kind": spec.kind,
                "due_at": due_at.isoformat(),
            },
            about=TaskSnapshot(
                id=task_id,
                kind=spec.kind,
                title=spec.title,
                status=TaskStatus.OPEN.value,
                assignee_id=owner_id,
                author_id=None,
                due_at=due_at,
                done_at=None,
                overdue_at=None,
                contact_id=contact_id,
                deal_id=deal_id,
                conversation_id=conversation_id,
                created_at=self.now,
            ),
        )
        return task_id

    def _auto_reply(self, conversation_id: int, text: str) -> None:
        try:
            queue_reply(self.session, self.journal, conversation_id, text)
        except ReplyError as exc:
            log.info("no auto-reply for conversation %s: %s", conversation_id, exc)

    def _deal_title(self, contact: _Contact) -> str:
        who = contact.name or (self.identities[0].value if self.identities else WITHHELD)
        return f"{who} — {self.message.channel.value}"[:300]
