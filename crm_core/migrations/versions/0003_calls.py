"""phone calls

Revision ID: 0003_calls
Revises: 0002_webhooks
Create Date: 2026-11-27 10:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import crm_core.models.base

revision = "0003_calls"
down_revision = "0002_webhooks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "calls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_key", sa.String(length=200), nullable=False),
        sa.Column("channel_account_id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=True),
        sa.Column("direction", sa.String(length=4), nullable=False),
        sa.Column("caller", sa.String(length=200), nullable=False),
        sa.Column("callee", sa.String(length=200), nullable=False),
        sa.Column("manager_id", sa.Integer(), nullable=True),
        sa.Column("started_at", crm_core.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("answered_at", crm_core.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ended_at", crm_core.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("duration_seconds", sa.Integer(), nullable=False),
        sa.Column("disposition", sa.String(length=16), nullable=False),
        sa.Column("voicemail", sa.JSON(), nullable=True),
        sa.Column("created_at", crm_core.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["channel_account_id"],
            ["channel_accounts.id"],
            name=op.f("fk_calls_channel_account_id_channel_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name=op.f("fk_calls_contact_id_contacts")
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_calls_conversation_id_conversations"),
        ),
        sa.ForeignKeyConstraint(
            ["manager_id"], ["managers.id"], name=op.f("fk_calls_manager_id_managers")
        ),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name=op.f("fk_calls_message_id_messages")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calls")),
        sa.UniqueConstraint("call_key", name=op.f("uq_calls_call_key")),
    )
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.create_index("ix_calls_contact", ["contact_id", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_index("ix_calls_contact")
    op.drop_table("calls")
