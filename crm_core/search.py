"""Search: contacts by any identity, name or company, and messages by their words.

Scoped exactly as the inbox is (:mod:`crm_core.access`): a manager finds only contacts
they may open and messages of conversations they may see.

- A phone typed in any format finds its E.164 identity (phone or WhatsApp); four or more
  digits also find the numbers that contain them.
- An email finds its identity in any case; a beginning of an address (``ivan``,
  ``ivan@exa``) finds the addresses that start so.
- ``@username`` finds a Telegram contact by the username they last wrote under.
- Words find contacts by name and company (word prefixes, case- and accent-insensitive,
  ``ё`` as ``е``) and messages by their text (word stems: ``кластеры`` finds "кластер").

Contacts found by an identity come first, then by name, newest first; messages newest
first. Each hit carries its context and a link to open it in the inbox.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Integer,
    Row,
    Select,
    and_,
    column,
    or_,
    select,
    table,
    text,
)
from sqlalchemy.orm import Session

from crm_core.access import Viewer, contact_scope, conversation_scope
from crm_core.enums import IdentityKind
from crm_core.identities import InvalidIdentityError, normalize_email, normalize_phone
from crm_core.models import ChannelAccount, Contact, ContactIdentity, Conversation, Message
from crm_core.search_words import ACCENTS_FROM, ACCENTS_TO, Words, words_of

PG_WINDOWS = (20_000,)  # the newest ids searched first, then all
CONTEXT = 80  # characters of a message's text either side of its first match
# SQLite's FTS5 tables (migration 0014), by their rowid: the contact's or message's id
CONTACT_WORDS = table("contact_words", column("rowid", Integer))
MESSAGE_WORDS = table("message_words", column("rowid", Integer))
_PHONE_TEXT = re.compile(r"^\+?[\d\s().\-]+$")
_USERNAME = re.compile(r"^@([A-Za-z0-9_]{3,32})$")
_PHONE_KINDS = (IdentityKind.PHONE.value, IdentityKind.WHATSAPP.value)
# the expression of the contacts' words index (migration 0014), literally: PostgreSQL uses
# an expression index only for the very same expression, constants included
_CONTACT_WORDS_PG = (
    "to_tsvector('simple', translate(lower(coalesce(contacts.name, '') || ' ' || "
    f"coalesce(contacts.company, '')), '{ACCENTS_FROM}', '{ACCENTS_TO}'))"
)


@dataclass(frozen=True, slots=True)
class Found:
    contact_id: int
    matched: str  # phone, whatsapp, email, telegram, name
    context: str


def search(
    session: Session, viewer: Viewer, q: str, *, default_region: str, limit: int = 20
) -> dict[str, Any]:
    """Raises :class:`crm_core.search_words.SearchQueryError` for a text with no words."""
    words = words_of(q)
    found = _by_identity(session, words.text, default_region, limit)
    seen = {f.contact_id for f in found}
    for contact_id in _by_name(session, words, limit + len(seen)):
        if contact_id not in seen:
            found.append(Found(contact_id, "name", ""))
            seen.add(contact_id)
    return {
        "query": words.text,
        "contacts": _contacts(session, viewer, found, limit),
        "messages": _messages(session, viewer, words, limit),
    }


def _by_identity(session: Session, q: str, region: str, limit: int) -> list[Found]:
    conditions: list[ColumnElement[bool]] = []
    username = _USERNAME.match(q)
    if username:
        conditions.append(
            and_(
                ContactIdentity.kind == IdentityKind.TELEGRAM.value,
                ContactIdentity.handle == username.group(1).lower(),
            )
        )
    elif "@" in q and " " not in q:
        try:
            conditions.append(_identity(IdentityKind.EMAIL.value, normalize_email(q)))
        except InvalidIdentityError:
            conditions.append(_starting(IdentityKind.EMAIL.value, q.lower()))
    elif _PHONE_TEXT.match(q):
        digits = re.sub(r"\D", "", q)
        try:
            phone = normalize_phone(q, region)
            conditions.append(
                and_(ContactIdentity.kind.in_(_PHONE_KINDS), ContactIdentity.value == phone)
            )
        except InvalidIdentityError:
            pass
        if len(digits) >= 4:
            conditions.append(
                and_(
                    ContactIdentity.kind.in_(_PHONE_KINDS),
                    ContactIdentity.value.contains(digits, autoescape=True),
                )
            )
    elif " " not in q and len(q) >= 3:
        conditions.append(_starting(IdentityKind.EMAIL.value, q.lower()))
    if not conditions:
        return []
    rows = session.execute(
        select(ContactIdentity.contact_id, ContactIdentity.kind, ContactIdentity.value)
        .where(or_(*conditions))
        .order_by(ContactIdentity.contact_id.desc())
        .limit(limit * 4)
    ).all()
    found: dict[int, Found] = {}
    for contact_id, kind, value in rows:
        found.setdefault(contact_id, Found(contact_id, kind, value))
    return list(found.values())


def _identity(kind: str, value: str) -> ColumnElement[bool]:
    return and_(ContactIdentity.kind == kind, ContactIdentity.value == value)


def _starting(kind: str, prefix: str) -> ColumnElement[bool]:
    # a range rather than LIKE: the (kind, value) unique index answers it on both databases
    return and_(
        ContactIdentity.kind == kind,
        ContactIdentity.value >= prefix,
        ContactIdentity.value < prefix + "\U0010ffff",
    )


def _by_name(session: Session, words: Words, limit: int) -> list[int]:
    query: Select[Any] = select(Contact.id).where(Contact.merged_into_id.is_(None))
    if session.get_bind().dialect.name != "sqlite":
        matches = f"{_CONTACT_WORDS_PG} @@ to_tsquery('simple', '{words.postgres_names()}')"
        rows = _newest_on_postgres(session, query, "contacts", matches, limit * 4)
        return [row[0] for row in rows]
    # driven by the index, newest first: FTS5 walks its rowids backwards and stops early
    query = (
        query.select_from(CONTACT_WORDS)
        .join(Contact, Contact.id == CONTACT_WORDS.c.rowid)
        .where(text("contact_words MATCH :q").bindparams(q=words.sqlite_names()))
        .order_by(CONTACT_WORDS.c.rowid.desc())
    )
    return list(session.scalars(query.limit(limit * 4)))  # some may be out of scope


def _contacts(
    session: Session, viewer: Viewer, found: list[Found], limit: int
) -> list[dict[str, Any]]:
    if not found:
        return []
    visible = {
        row.id: row
        for row in session.execute(
            select(Contact.id, Contact.name, Contact.company).where(
                Contact.id.in_([f.contact_id for f in found]),
                Contact.merged_into_id.is_(None),
                contact_scope(viewer),
            )
        )
    }
    hits = []
    for f in found:
        row = visible.get(f.contact_id)
        if row is None:
            continue
        context = f.context or " · ".join(v for v in (row.name, row.company) if v)
        hits.append(
            {
                "id": row.id,
                "name": row.name,
                "company": row.company,
                "matched": f.matched,
                "context": context,
                "link": f"/contacts/{row.id}",
            }
        )
        if len(hits) == limit:
            break
    return hits


def _messages(session: Session, viewer: Viewer, words: Words, limit: int) -> list[dict[str, Any]]:
    query = cast(
        "Select[Any]",
        (
            select(
                Message.id,
                Message.conversation_id,
                Message.direction,
                Message.text,
                Message.created_at,
                Conversation.contact_id,
                Contact.name,
                ChannelAccount.channel,
            )
            .join(Conversation, Conversation.id == Message.conversation_id)
            .join(Contact, Contact.id == Conversation.contact_id)
            .join(ChannelAccount, ChannelAccount.id == Message.channel_account_id)
            .where(conversation_scope(viewer))
        ),
    )
    if session.get_bind().dialect.name == "sqlite":
        query = (
            query.select_from(MESSAGE_WORDS)
            .join(Message, Message.id == MESSAGE_WORDS.c.rowid)
            .where(text("message_words MATCH :q").bindparams(q=words.sqlite_texts()))
            .order_by(MESSAGE_WORDS.c.rowid.desc())
        )
        rows: list[Row[Any]] = list(session.execute(query.limit(limit)))
    else:
        matches = (
            "to_tsvector('russian', messages.text) @@ "
            f"to_tsquery('russian', '{words.postgres_texts()}')"
        )
        rows = _newest_on_postgres(session, query, "messages", matches, limit)
    pattern = _highlighter(words)
    return [
        {
            "id": row.id,
            "conversation_id": row.conversation_id,
            "contact_id": row.contact_id,
            "contact_name": row.name,
            "channel": row.channel,
            "direction": row.direction,
            "created_at": row.created_at.isoformat(),
            **_context(row.text, pattern),
            "link": f"/inbox?c={row.conversation_id}",
        }
        for row in rows
    ]


def _newest_on_postgres(
    session: Session, query: Select[Any], table: str, matches: str, limit: int
) -> list[Row[Any]]:
    """The newest rows of ``table`` that ``matches`` (a condition its GIN index answers),
    searched in widening windows of the newest ids.

    The planner cannot know how common a word is, and either of its two plans can take
    seconds: walking the table newest first, computing each row's words (a GIN index on an
    expression keeps no values), for a rare word; fetching and sorting every match for a
    common one. Within a window of the newest ids it ANDs the index's matches with the id
    range instead: a common word fills the page in the first window, a rare one costs a
    few index lookups. The tsquery and the bounds are literals (the words are ``\\w+``
    runs): with parameters, a generic plan would guess again.
    """
    newest = session.scalar(text(f"SELECT max(id) FROM {table}")) or 0  # noqa: S608
    rows: list[Row[Any]] = []
    upper: int | None = None
    for width in (*PG_WINDOWS, None):
        floor = None if width is None else newest - width
        window = query.where(text(matches))
        if floor is not None:
            window = window.where(text(f"{table}.id > {int(floor)}"))
        if upper is not None:
            window = window.where(text(f"{table}.id <= {int(upper)}"))
        # id + 0: never walk the primary key newest first (see above)
        order = text(f"{table}.id + 0 DESC")
        rows.extend(session.execute(window.order_by(order).limit(limit - len(rows))))
        if len(rows) >= limit or floor is None or floor <= 0:
            break
        upper = floor
    return rows


def _highlighter(words: Words) -> re.Pattern[str]:
    """The query's stems at the start of a word, ``е`` matching ``ё``, in any case."""
    stems = sorted(set(words.stems()) | set(words.words), key=len, reverse=True)
    parts = [re.escape(s).replace("е", "[её]") for s in stems]
    return re.compile(r"(?<!\w)(?:" + "|".join(parts) + r")\w*", re.IGNORECASE)


def _context(body: str, pattern: re.Pattern[str]) -> dict[str, Any]:
    """A window of the text around its first match, and where the matches are in it."""
    first = pattern.search(body)
    start = 0 if first is None else max(0, first.start() - CONTEXT)
    end = len(body) if first is None else min(len(body), first.end() + CONTEXT)
    if first is None:
        end = min(len(body), 2 * CONTEXT)
    window = body[start:end]
    prefix = "…" if start > 0 else ""
    suffix = "…" if end < len(body) else ""
    context = prefix + window + suffix
    highlights = [[m.start() + len(prefix), m.end() - m.start()] for m in pattern.finditer(window)]
    return {"context": context, "highlights": highlights}
