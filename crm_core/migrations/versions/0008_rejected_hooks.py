"""rejected inbound hooks: refused requests at /hooks/..., counted, capped per source

Revision ID: 0008_rejected_hooks
Revises: 0007_webhook_delivery_queue
Create Date: 2026-12-01 17:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import crm_core.models.base

revision = "0008_rejected_hooks"
down_revision = "0007_webhook_delivery_queue"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rejected_hooks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.Column("body_sha256", sa.String(length=64), nullable=False),
        sa.Column("body_bytes", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("first_seen_at", crm_core.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", crm_core.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rejected_hooks")),
        sa.UniqueConstraint(
            "kind",
            "source",
            "status",
            "body_sha256",
            name=op.f("uq_rejected_hooks_kind_source_status_body_sha256"),
        ),
    )
    op.create_index(
        "ix_rejected_hooks_source", "rejected_hooks", ["kind", "source", "id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_rejected_hooks_source", table_name="rejected_hooks")
    op.drop_table("rejected_hooks")
