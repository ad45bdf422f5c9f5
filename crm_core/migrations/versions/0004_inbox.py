"""the managers' inbox: browser sessions, read markers, shared or competing team work

Revision ID: 0004_inbox
Revises: 0003_calls
Create Date: 2026-11-27 10:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import crm_core.models.base

revision = "0004_inbox"
down_revision = "0003_calls"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_conversations_last_message_at", "conversations", ["last_message_at"], unique=False
    )
    with op.batch_alter_table("teams") as batch:
        batch.add_column(
            sa.Column("shared_work", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    op.create_table(
        "manager_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("manager_id", sa.Integer(), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", crm_core.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", crm_core.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", crm_core.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["manager_id"],
            ["managers.id"],
            name=op.f("fk_manager_sessions_manager_id_managers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_manager_sessions")),
        sa.UniqueConstraint("token_sha256", name=op.f("uq_manager_sessions_token_sha256")),
    )
    op.create_index(
        op.f("ix_manager_sessions_manager_id"), "manager_sessions", ["manager_id"], unique=False
    )
    op.create_table(
        "conversation_reads",
        sa.Column("manager_id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        sa.Column("last_read_message_id", sa.Integer(), nullable=False),
        sa.Column("read_at", crm_core.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_conversation_reads_conversation_id_conversations"),
        ),
        sa.ForeignKeyConstraint(
            ["manager_id"],
            ["managers.id"],
            name=op.f("fk_conversation_reads_manager_id_managers"),
        ),
        sa.PrimaryKeyConstraint(
            "manager_id", "conversation_id", name=op.f("pk_conversation_reads")
        ),
    )


def downgrade() -> None:
    op.drop_index("ix_conversations_last_message_at", table_name="conversations")
    op.drop_table("conversation_reads")
    op.drop_index(op.f("ix_manager_sessions_manager_id"), table_name="manager_sessions")
    op.drop_table("manager_sessions")
    with op.batch_alter_table("teams") as batch:
        batch.drop_column("shared_work")
