"""read indexes: the inbox's, the timeline's and the funnel board's reads, each answered
from an index in the order it returns (a page of 100 or 50 rows read, not a whole table
sorted)

- conversations by latest activity, ``(last_message_at, id)`` (the head's inbox, both
  columns of its ORDER BY), and per assignee (a manager's ``view=mine``, the
  unassigned queue);
- the conversations that are not closed (partial): the unread counts per view;
- a conversation's messages by direction and id: is there an inbound message after the
  viewer's read marker, and how many;
- deals per stage by ``(updated_at, id)``: a board column's 50 most recently changed;
  per funnel, stage and owner: the board's counts per stage.

Revision ID: 0015_read_indexes
Revises: 0014_search
Create Date: 2026-12-02 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015_read_indexes"
down_revision = "0014_search"
branch_labels = None
depends_on = None

INDEXES = (
    ("conversations", "ix_conversations_assignee_recent", ["assignee_id", "last_message_at", "id"]),
    ("messages", "ix_messages_conversation_direction", ["conversation_id", "direction", "id"]),
    ("deals", "ix_deals_stage_recent", ["stage_id", "updated_at", "id"]),
    ("deals", "ix_deals_funnel_stage_owner", ["funnel_id", "stage_id", "owner_id"]),
)

NOT_CLOSED = "status != 'closed'"


def upgrade() -> None:
    for table, name, columns in INDEXES:
        op.create_index(name, table, columns, unique=False)
    op.create_index(
        "ix_conversations_not_closed",
        "conversations",
        ["assignee_id", "team_id", "status"],
        unique=False,
        sqlite_where=sa.text(NOT_CLOSED),
        postgresql_where=sa.text(NOT_CLOSED),
    )
    # ORDER BY last_message_at DESC, id DESC LIMIT n straight from the index
    op.drop_index("ix_conversations_last_message_at", table_name="conversations")
    op.create_index(
        "ix_conversations_last_message_at",
        "conversations",
        ["last_message_at", "id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_conversations_last_message_at", table_name="conversations")
    op.create_index(
        "ix_conversations_last_message_at", "conversations", ["last_message_at"], unique=False
    )
    op.drop_index("ix_conversations_not_closed", table_name="conversations")
    for table, name, _columns in reversed(INDEXES):
        op.drop_index(name, table_name=table)
