"""search: the words of contacts' names and companies and of messages' texts, indexed.

SQLite: two contentless FTS5 tables (``contact_words``, ``message_words``; the rowid is
the contact's or message's id) kept by triggers in the writing transaction itself, so a
message is findable the moment it is committed, whatever wrote it (the ingest's raw SQL,
the ORM, a manager's note). ``ё`` is folded to ``е`` before the ``unicode61`` tokenizer
(which folds case, Cyrillic included, and Latin accents, but keeps ``ё``). Contentless:
the texts are not stored twice; a delete or an edit tells FTS5 the old words.

PostgreSQL: GIN indexes on expressions (no column is added): ``to_tsvector('russian',
text)`` on messages (Snowball's Russian stemmer, which folds ``ё``, and the English one
for Latin words) and a ``simple`` vector of the lower-cased, accent-folded name and
company on contacts.

A later migration that rebuilds ``contacts`` or ``messages`` in SQLite's batch mode drops
these triggers with the old table: it must create them again (``test_search`` would fail).

Revision ID: 0014_search
Revises: 0013_report_indexes
Create Date: 2026-12-01 23:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_search"
down_revision = "0013_report_indexes"
branch_labels = None
depends_on = None

# frozen here: the same letters as crm_core.search_words.ACCENTS at this revision
ACCENTS_FROM = "ёàáâãäåāăąçćčďèéêëēėęěìíîïīįłñńňòóôõöøōőřśšşťùúûüūůűųýÿźżž"
ACCENTS_TO = "еaaaaaaaaacccdeeeeeeeeiiiiiilnnnoooooooorssstuuuuuuuuyyzzz"


def _folded(column: str) -> str:
    return f"replace(replace({column}, 'ё', 'е'), 'Ё', 'Е')"


CONTACT_TEXT = "coalesce({p}.name, '') || ' ' || coalesce({p}.company, '')"

SQLITE = (
    "CREATE VIRTUAL TABLE contact_words USING fts5(words, content='', detail=none, columnsize=0, "
    "tokenize='unicode61 remove_diacritics 2')",
    "CREATE VIRTUAL TABLE message_words USING fts5(words, content='', detail=none, columnsize=0, "
    "tokenize='unicode61 remove_diacritics 2')",
    f"""CREATE TRIGGER contact_words_insert AFTER INSERT ON contacts BEGIN
        INSERT INTO contact_words(rowid, words)
        VALUES (new.id, {_folded(CONTACT_TEXT.format(p="new"))});
    END""",
    f"""CREATE TRIGGER contact_words_update AFTER UPDATE OF name, company ON contacts BEGIN
        INSERT INTO contact_words(contact_words, rowid, words)
        VALUES ('delete', old.id, {_folded(CONTACT_TEXT.format(p="old"))});
        INSERT INTO contact_words(rowid, words)
        VALUES (new.id, {_folded(CONTACT_TEXT.format(p="new"))});
    END""",
    f"""CREATE TRIGGER contact_words_delete AFTER DELETE ON contacts BEGIN
        INSERT INTO contact_words(contact_words, rowid, words)
        VALUES ('delete', old.id, {_folded(CONTACT_TEXT.format(p="old"))});
    END""",
    f"""CREATE TRIGGER message_words_insert AFTER INSERT ON messages BEGIN
        INSERT INTO message_words(rowid, words) VALUES (new.id, {_folded("new.text")});
    END""",
    f"""CREATE TRIGGER message_words_update AFTER UPDATE OF text ON messages BEGIN
        INSERT INTO message_words(message_words, rowid, words)
        VALUES ('delete', old.id, {_folded("old.text")});
        INSERT INTO message_words(rowid, words) VALUES (new.id, {_folded("new.text")});
    END""",
    f"""CREATE TRIGGER message_words_delete AFTER DELETE ON messages BEGIN
        INSERT INTO message_words(message_words, rowid, words)
        VALUES ('delete', old.id, {_folded("old.text")});
    END""",
    f"INSERT INTO contact_words(rowid, words) "
    f"SELECT c.id, {_folded(CONTACT_TEXT.format(p='c'))} FROM contacts c",
    f"INSERT INTO message_words(rowid, words) SELECT m.id, {_folded('m.text')} FROM messages m",
)
SQLITE_DOWN = (
    "DROP TRIGGER message_words_delete",
    "DROP TRIGGER message_words_update",
    "DROP TRIGGER message_words_insert",
    "DROP TRIGGER contact_words_delete",
    "DROP TRIGGER contact_words_update",
    "DROP TRIGGER contact_words_insert",
    "DROP TABLE message_words",
    "DROP TABLE contact_words",
)

POSTGRES = (
    "CREATE INDEX ix_messages_words ON messages USING gin (to_tsvector('russian', text))",
    "CREATE INDEX ix_contacts_words ON contacts USING gin (to_tsvector('simple', "
    f"translate(lower(coalesce(name, '') || ' ' || coalesce(company, '')), "
    f"'{ACCENTS_FROM}', '{ACCENTS_TO}')))",
)
POSTGRES_DOWN = ("DROP INDEX ix_contacts_words", "DROP INDEX ix_messages_words")


def upgrade() -> None:
    with op.batch_alter_table("contact_identities") as batch:
        batch.add_column(sa.Column("handle", sa.String(length=64), nullable=True))
        batch.create_index("ix_contact_identities_handle", ["kind", "handle"], unique=False)
    for statement in SQLITE if op.get_bind().dialect.name == "sqlite" else POSTGRES:
        op.execute(statement)


def downgrade() -> None:
    for statement in SQLITE_DOWN if op.get_bind().dialect.name == "sqlite" else POSTGRES_DOWN:
        op.execute(statement)
    with op.batch_alter_table("contact_identities") as batch:
        batch.drop_index("ix_contact_identities_handle")
        batch.drop_column("handle")
