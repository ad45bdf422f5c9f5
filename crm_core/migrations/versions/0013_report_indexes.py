"""report indexes: the periods the reports read (by when a deal closed or was created, a
conversation opened, a touch occurred, a task was made or done, a call started), and a
contact's touches in (time, id) order for the last-touch lookup; managers' replies by time

Revision ID: 0013_report_indexes
Revises: 0012_call_recordings
Create Date: 2026-12-01 20:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_report_indexes"
down_revision = "0012_call_recordings"
branch_labels = None
depends_on = None

INDEXES = (
    ("deals", "ix_deals_closed_at", ["closed_at"]),
    ("deals", "ix_deals_funnel_created", ["funnel_id", "created_at"]),
    ("conversations", "ix_conversations_opened_at", ["opened_at"]),
    ("touches", "ix_touches_occurred_at", ["occurred_at"]),
    ("tasks", "ix_tasks_kind_created", ["kind", "created_at"]),
    ("tasks", "ix_tasks_done_at", ["done_at"]),
    ("calls", "ix_calls_started_at", ["started_at"]),
)


PARTIAL = "author_manager_id IS NOT NULL"


def upgrade() -> None:
    for table, name, columns in INDEXES:
        op.create_index(name, table, columns, unique=False)
    # managers' replies by time (partial: the clients' messages never write to it)
    op.create_index(
        "ix_messages_manager_replies",
        "messages",
        ["created_at", "author_manager_id", "channel_account_id"],
        unique=False,
        sqlite_where=sa.text(PARTIAL),
        postgresql_where=sa.text(PARTIAL),
    )
    # the latest touch at a moment: ORDER BY occurred_at DESC, id DESC LIMIT 1 from the index
    op.drop_index("ix_touches_contact_time", table_name="touches")
    op.create_index(
        "ix_touches_contact_time", "touches", ["contact_id", "occurred_at", "id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_messages_manager_replies", table_name="messages")
    op.drop_index("ix_touches_contact_time", table_name="touches")
    op.create_index(
        "ix_touches_contact_time", "touches", ["contact_id", "occurred_at"], unique=False
    )
    for table, name, _columns in reversed(INDEXES):
        op.drop_index(name, table_name=table)
