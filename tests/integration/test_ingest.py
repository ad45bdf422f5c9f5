"""The ingest service against real SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_core.clock import ManualClock
from crm_core.contracts import Attribution
from crm_core.db import Database
from crm_core.ingest import IngestPolicy, IngestService, InvalidInboundError
from crm_core.journal import Journal
from crm_core.merge import MergeError, undo_merge
from crm_core.models import (
    AuditEntry,
    Contact,
    ContactIdentity,
    ContactMerge,
    Conversation,
    Deal,
    DealStageChange,
    Message,
    OutboxMessage,
    Stage,
    Task,
    Touch,
)
from tests.factories import (
    add_managers,
    count_rows,
    email,
    emitted,
    event_names,
    inbound,
    phone,
    telegram,
)


@pytest.fixture
def service(db: Database, clock: ManualClock) -> IngestService:
    return IngestService(db, clock, IngestPolicy(first_task_due=timedelta(minutes=15)))


async def test_one_phone_in_three_formats_is_one_contact(
    service: IngestService, db: Database
) -> None:
    first = await service.ingest(inbound(phone("8 (916) 123-45-67"), name="Ivan"))
    second = await service.ingest(inbound(phone("+7 916 123 45 67")))
    third = await service.ingest(inbound(phone("79161234567")))
    assert first.contact_created
    assert not second.contact_created
    assert not third.contact_created
    assert first.contact_id == second.contact_id == third.contact_id
    assert second.conversation_id == first.conversation_id
    assert await count_rows(db, Contact) == 1
    assert await count_rows(db, ContactIdentity) == 1
    assert await count_rows(db, Message) == 3
    # One open deal per contact: the later messages join it.
    assert first.deal_created
    assert not second.deal_created
    assert await count_rows(db, Deal) == 1


async def test_repeated_external_id_creates_nothing(service: IngestService, db: Database) -> None:
    message = inbound(phone("+79161234567"), external_id="update-77")
    stored = await service.ingest(message)
    before = {
        m.__name__: await count_rows(db, m)
        for m in (Contact, Message, Deal, Task, AuditEntry, OutboxMessage)
    }
    again = await service.ingest(message)
    assert again.duplicate
    assert again.message_id == stored.message_id
    assert again.contact_id == stored.contact_id
    after = {
        m.__name__: await count_rows(db, m)
        for m in (Contact, Message, Deal, Task, AuditEntry, OutboxMessage)
    }
    assert after == before


async def test_same_external_id_on_another_account_is_another_message(
    service: IngestService, db: Database
) -> None:
    await service.ingest(inbound(phone("+79161234567"), external_id="1", account="bot-a"))
    other = await service.ingest(inbound(phone("+79161234567"), external_id="1", account="bot-b"))
    assert not other.duplicate
    assert await count_rows(db, Message) == 2
    assert await count_rows(db, Conversation) == 2


async def test_ten_concurrent_identical_posts_store_one_message(
    service: IngestService, db: Database
) -> None:
    message = inbound(phone("+79161234567"), email("ivan@example.com"), external_id="burst")
    results = await asyncio.gather(*(service.ingest(message) for _ in range(10)))
    assert sum(not r.duplicate for r in results) == 1
    assert len({r.message_id for r in results}) == 1
    assert await count_rows(db, Message) == 1
    assert await count_rows(db, Contact) == 1
    assert await count_rows(db, Deal) == 1


async def test_concurrent_new_clients_with_one_phone_make_one_contact(
    service: IngestService, db: Database
) -> None:
    messages = [inbound(phone("+7 916 000 00 01")) for _ in range(8)]
    results = await asyncio.gather(*(service.ingest(m) for m in messages))
    assert len({r.contact_id for r in results}) == 1
    assert await count_rows(db, Contact) == 1
    assert await count_rows(db, Message) == 8


async def test_telegram_identity_bringing_a_known_phone_merges_and_undo_restores(
    service: IngestService, db: Database, clock: ManualClock
) -> None:
    caller = await service.ingest(inbound(phone("8 916 123-45-67"), name="Caller"))
    writer = await service.ingest(
        inbound(telegram("5550001"), channel="telegram", account="salesbot", name="Ivan TG")
    )
    assert caller.contact_id != writer.contact_id
    shared = await service.ingest(
        inbound(telegram("5550001"), phone("+79161234567"), channel="telegram", account="salesbot")
    )
    survivor, merged = caller.contact_id, writer.contact_id
    assert shared.contact_id == survivor
    assert shared.merged_contact_ids == (merged,)

    def state(session: Session) -> tuple[list[tuple[str, int]], list[int], int | None]:
        identities = [
            (i.kind, i.contact_id)
            for i in session.scalars(select(ContactIdentity).order_by(ContactIdentity.id))
        ]
        owners = [
            c.contact_id for c in session.scalars(select(Conversation).order_by(Conversation.id))
        ]
        return identities, owners, session.get(Contact, merged).merged_into_id  # type: ignore[union-attr]

    identities, owners, merged_into = await db.read(state)
    assert identities == [("phone", survivor), ("telegram", survivor)]
    assert owners == [survivor, survivor]
    assert merged_into == survivor
    assert await count_rows(db, Deal, Deal.contact_id == survivor) == 2

    merge_id = await db.read(lambda s: s.scalars(select(ContactMerge.id)).one())
    clock.advance(timedelta(minutes=5))

    def undo(session: Session) -> None:
        journal = Journal("test", clock.now())
        undo_merge(session, merge_id, journal)
        journal.flush(session)

    await db.write(undo)
    identities, owners, merged_into = await db.read(state)
    assert identities == [("phone", survivor), ("telegram", merged)]
    assert owners == [survivor, merged]
    assert merged_into is None
    assert await count_rows(db, Deal, Deal.contact_id == merged) == 1
    with pytest.raises(MergeError, match="already undone"):
        await db.write(undo)
    names = await event_names(db)
    assert "contact.merged" in names
    assert "contact.merge_undone" in names


async def test_new_deal_gets_a_task_for_its_round_robin_manager(
    service: IngestService, db: Database, clock: ManualClock
) -> None:
    managers = await add_managers(db, 3)
    results = []
    for n in range(6):
        results.append(await service.ingest(inbound(phone(f"+7 916 000 00 1{n}"))))
        clock.advance(timedelta(seconds=1))
    assert [r.assignee_id for r in results] == managers + managers

    tasks = await db.read(lambda s: list(s.scalars(select(Task).order_by(Task.id))))
    assert len(tasks) == 6
    for task, result in zip(tasks, results, strict=True):
        assert task.deal_id == result.deal_id
        assert task.assignee_id == result.assignee_id
        assert task.kind == "call"
        assert task.due_at is not None
        assert task.status == "open"
    # A returning client stays with their manager.
    again = await service.ingest(inbound(phone("+7 916 000 00 10"), account="another-door"))
    assert again.assignee_id == results[0].assignee_id


async def test_queue_waits_when_every_manager_is_full(service: IngestService, db: Database) -> None:
    await add_managers(db, 1, capacity=1)
    first = await service.ingest(inbound(phone("+7 916 000 00 21")))
    second = await service.ingest(inbound(phone("+7 916 000 00 22")))
    assert first.assignee_id is not None
    assert second.assignee_id is None
    reason = await db.read(lambda s: s.get(Conversation, second.conversation_id).routing_reason)  # type: ignore[union-attr]
    assert reason is not None
    assert "queue" in reason
    task = await db.read(lambda s: s.get(Task, second.task_id))
    assert task is not None
    assert task.assignee_id is None


async def test_deal_opens_in_the_configured_funnel_first_stage_with_history(
    service: IngestService, db: Database
) -> None:
    result = await service.ingest(inbound(email("Anna@Example.com"), funnel="webinar"))

    def load(session: Session) -> tuple[str, str, str, int, str]:
        deal = session.get(Deal, result.deal_id)
        assert deal is not None
        stage = session.get(Stage, deal.stage_id)
        assert stage is not None
        history = list(
            session.scalars(select(DealStageChange).where(DealStageChange.deal_id == deal.id))
        )
        task = session.get(Task, result.task_id)
        assert task is not None
        return stage.code, stage.name_ru, stage.kind, len(history), task.kind

    assert await db.read(load) == ("new", "Новая заявка", "open", 1, "follow_up")


async def test_unknown_funnel_is_refused_and_writes_nothing(
    service: IngestService, db: Database
) -> None:
    with pytest.raises(InvalidInboundError) as caught:
        await service.ingest(inbound(phone("+79161234567"), funnel="no-such"))
    assert caught.value.field == "funnel"
    for model in (
        Contact,
        ContactIdentity,
        Conversation,
        Message,
        Deal,
        Task,
        AuditEntry,
        OutboxMessage,
    ):
        assert await count_rows(db, model) == 0, model.__name__


async def test_invalid_identity_names_the_field(service: IngestService, db: Database) -> None:
    with pytest.raises(InvalidInboundError) as caught:
        await service.ingest(inbound(phone("+79161234567"), email("not-an-email")))
    assert caught.value.field == "identities[1].value"
    assert await count_rows(db, Contact) == 0


async def test_attribution_first_and_last_touch(service: IngestService, db: Database) -> None:
    first = await service.ingest(
        inbound(
            phone("+79161234567"),
            attribution=Attribution(utm_source="yandex", utm_campaign="pg-clusters", yclid="123"),
        )
    )
    await service.ingest(
        inbound(
            phone("+79161234567"),
            minutes=60,
            attribution=Attribution(
                utm_source="google", gclid="abc", landing_page="https://x.test/"
            ),
        )
    )

    def touches(session: Session) -> list[tuple[str | None, str | None, str | None]]:
        return [
            (t.utm_source, t.yclid, t.gclid)
            for t in session.scalars(
                select(Touch)
                .where(Touch.contact_id == first.contact_id)
                .order_by(Touch.occurred_at)
            )
        ]

    assert await db.read(touches) == [("yandex", "123", None), ("google", None, "abc")]
    deal = await db.read(lambda s: s.get(Deal, first.deal_id))
    assert deal is not None
    assert deal.source_touch_id is not None


async def test_every_change_is_audited_and_announced(service: IngestService, db: Database) -> None:
    await add_managers(db, 1)
    first = await service.ingest(inbound(phone("+79161234567")))
    await service.ingest(inbound(phone("+79161234567"), email("new@example.test")))
    actions = await db.read(
        lambda s: sorted(
            set(s.scalars(select(AuditEntry.action).where(AuditEntry.actor == "system:ingest")))
        )
    )
    assert actions == sorted(
        {
            "channel_account.created",
            "contact.created",
            "identity.added",  # the second message's email; the phone is in contact.created
            "conversation.created",
            "message.created",
            "deal.created",
            "task.created",
        }
    )
    assert await event_names(db) == [  # in the order they happened
        "manager.created",
        "contact.created",
        "conversation.created",
        "deal.created",
        "task.created",
        "message.created",
        "message.created",
    ]
    created = await db.read(
        lambda s: s.scalars(
            select(AuditEntry.changes).where(
                AuditEntry.action == "contact.created", AuditEntry.entity_id == first.contact_id
            )
        ).one()
    )
    assert created["identities"] == [{"kind": "phone", "value": "+79161234567"}]


async def test_one_survivor_can_absorb_several_contacts(
    service: IngestService, db: Database
) -> None:
    first = await service.ingest(inbound(phone("+79160000001")))
    second = await service.ingest(inbound(email("b@example.test")))
    third = await service.ingest(inbound(telegram("303")))
    await service.ingest(inbound(phone("+79160000001"), email("b@example.test")))
    joined = await service.ingest(inbound(telegram("303"), email("b@example.test")))
    assert joined.contact_id == first.contact_id
    assert joined.merged_contact_ids == (third.contact_id,)
    merged = await count_rows(db, Contact, Contact.merged_into_id == first.contact_id)
    assert merged == 2
    assert second.contact_id != third.contact_id
    assert len(await emitted(db, "contact.merged")) == 2


async def test_a_reply_joins_the_conversation_it_references(
    service: IngestService, db: Database
) -> None:
    first = await service.ingest(
        inbound(email("ivan@example.test"), channel="email", account="sales", external_id="<a@x>")
    )

    def close(session: Session) -> None:
        conversation = session.get(Conversation, first.conversation_id)
        assert conversation is not None
        conversation.status = "closed"

    await db.write(close)
    # A colleague answers the thread from another address: it joins by reference.
    colleague = inbound(
        email("olga@example.test"), channel="email", account="sales", external_id="<b@x>"
    )
    reply = await service.ingest(replace(colleague, thread_refs=("<unknown@x>", "<a@x>")))
    assert reply.conversation_id == first.conversation_id
    status = await db.read(lambda s: s.get(Conversation, first.conversation_id).status)  # type: ignore[union-attr]
    assert status == "open"
    # A token in the subject is honoured only for the conversation's own contact.
    stranger = await service.ingest(
        replace(
            inbound(email("eve@example.test"), channel="email", account="sales"),
            conversation_hint=first.conversation_id,
        )
    )
    assert stranger.conversation_id != first.conversation_id
    own = await service.ingest(
        replace(
            inbound(email("ivan@example.test"), channel="email", account="sales"),
            conversation_hint=first.conversation_id,
        )
    )
    assert own.conversation_id == first.conversation_id
    # Never by reference across channel accounts.
    other = await service.ingest(
        replace(
            inbound(email("ivan@example.test"), channel="email", account="support"),
            thread_refs=("<a@x>",),
        )
    )
    assert other.conversation_id != first.conversation_id
