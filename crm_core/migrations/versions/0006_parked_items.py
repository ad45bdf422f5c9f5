"""parked inbound items: what a channel could not take, with the reason, for an admin

Revision ID: 0006_parked_items
Revises: 0005_bigint_ids
Create Date: 2026-12-01 16:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import crm_core.models.base

revision = "0006_parked_items"
down_revision = "0005_bigint_ids"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "parked_items",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("account", sa.String(length=100), nullable=False),
        sa.Column("item_key", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column(
            "first_failed_at", crm_core.models.base.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "last_failed_at", crm_core.models.base.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "next_attempt_at", crm_core.models.base.UTCDateTime(timezone=True), nullable=True
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_parked_items")),
        sa.UniqueConstraint(
            "channel", "account", "item_key", name=op.f("uq_parked_items_channel_account_item_key")
        ),
    )
    op.create_index(
        "ix_parked_items_due", "parked_items", ["status", "next_attempt_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_parked_items_due", table_name="parked_items")
    op.drop_table("parked_items")
