"""site chat: the widget's visitors, their browser sessions (token digests) and uploads

Revision ID: 0009_site_chat
Revises: 0008_rejected_hooks
Create Date: 2026-12-01 19:42:23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import crm_core.models.base

revision = "0009_site_chat"
down_revision = "0008_rejected_hooks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "site_visitors",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "channel_account_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("visitor_key", sa.String(length=200), nullable=False),
        sa.Column("verified", sa.Boolean(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("phone", sa.String(length=40), nullable=True),
        sa.Column("language", sa.String(length=8), nullable=True),
        sa.Column(
            "conversation_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("first_visit", sa.JSON(), nullable=False),
        sa.Column(
            "read_up_to", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "emailed_up_to", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("created_at", crm_core.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", crm_core.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["channel_account_id"],
            ["channel_accounts.id"],
            name=op.f("fk_site_visitors_channel_account_id_channel_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_site_visitors_conversation_id_conversations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_site_visitors")),
        sa.UniqueConstraint(
            "channel_account_id",
            "visitor_key",
            name=op.f("uq_site_visitors_channel_account_id_visitor_key"),
        ),
    )
    op.create_table(
        "site_sessions",
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column(
            "visitor_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("created_at", crm_core.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", crm_core.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["visitor_id"],
            ["site_visitors.id"],
            name=op.f("fk_site_sessions_visitor_id_site_visitors"),
        ),
        sa.PrimaryKeyConstraint("token_sha256", name=op.f("pk_site_sessions")),
    )
    with op.batch_alter_table("site_sessions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_site_sessions_visitor_id"), ["visitor_id"], unique=False
        )

    op.create_table(
        "site_uploads",
        sa.Column(
            "visitor_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("storage_key", sa.String(length=300), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=120), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("created_at", crm_core.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["visitor_id"],
            ["site_visitors.id"],
            name=op.f("fk_site_uploads_visitor_id_site_visitors"),
        ),
        sa.PrimaryKeyConstraint("visitor_id", "storage_key", name=op.f("pk_site_uploads")),
    )


def downgrade() -> None:
    op.drop_table("site_uploads")
    with op.batch_alter_table("site_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_site_sessions_visitor_id"))

    op.drop_table("site_sessions")
    op.drop_table("site_visitors")
