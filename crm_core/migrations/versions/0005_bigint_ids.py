"""64-bit ids on PostgreSQL: every key, every reference to one, and their sequences

The API takes ids up to 2**62 - 1; int4 columns made an id past 2**31 - 1 a 500.
SQLite's INTEGER is 64 bits already (and must stay INTEGER PRIMARY KEY, the rowid), so
there this migration does nothing. On PostgreSQL each table is rewritten once.

Revision ID: 0005_bigint_ids
Revises: 0004_inbox
Create Date: 2026-12-02 12:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0005_bigint_ids"
down_revision = "0004_inbox"
branch_labels = None
depends_on = None

# Each table's id columns; a table whose first column is ``id`` has a serial sequence on it.
ID_COLUMNS: dict[str, tuple[str, ...]] = {
    "audit_log": ("id", "entity_id"),
    "channel_accounts": ("id",),
    "funnels": ("id",),
    "outbox": ("id",),
    "routing_documents": ("id",),
    "teams": ("id",),
    "webhook_subscriptions": ("id",),
    "channel_checkpoints": ("id", "channel_account_id"),
    "managers": ("id", "team_id"),
    "stages": ("id", "funnel_id"),
    "webhook_deliveries": ("id", "subscription_id"),
    "api_tokens": ("id", "manager_id"),
    "contacts": ("id", "owner_id", "merged_into_id"),
    "manager_sessions": ("id", "manager_id"),
    "contact_identities": ("id", "contact_id"),
    "contact_merges": ("id", "survivor_id", "merged_id"),
    "conversations": ("id", "contact_id", "channel_account_id", "assignee_id", "team_id"),
    "touches": ("id", "contact_id"),
    "conversation_reads": ("manager_id", "conversation_id", "last_read_message_id"),
    "deals": (
        "id",
        "contact_id",
        "funnel_id",
        "stage_id",
        "owner_id",
        "source_touch_id",
        "conversation_id",
    ),
    "messages": ("id", "conversation_id", "channel_account_id", "author_manager_id"),
    "timers": ("id", "conversation_id", "manager_id"),
    "calls": (
        "id",
        "channel_account_id",
        "contact_id",
        "conversation_id",
        "message_id",
        "manager_id",
    ),
    "deal_stage_changes": ("id", "deal_id", "from_stage_id", "to_stage_id"),
    "message_revisions": ("id", "message_id"),
    "tasks": ("id", "assignee_id", "author_id", "contact_id", "deal_id", "conversation_id"),
}


def _retype(sql_type: str) -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    for table, columns in ID_COLUMNS.items():
        changes = ", ".join(f'ALTER COLUMN "{c}" TYPE {sql_type}' for c in columns)
        op.execute(f'ALTER TABLE "{table}" {changes}')
        if columns[0] == "id":
            # A serial's sequence is int4 too: it would stop at 2**31 - 1.
            op.execute(
                "DO $$ BEGIN EXECUTE format('ALTER SEQUENCE %s AS "
                f"{sql_type}', pg_get_serial_sequence('\"{table}\"', 'id')); END $$"
            )


def upgrade() -> None:
    _retype("bigint")


def downgrade() -> None:
    # Fails, as it should, once an id past 2**31 - 1 is stored.
    _retype("integer")
