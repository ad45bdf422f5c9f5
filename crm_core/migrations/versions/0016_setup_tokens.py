"""setup tokens: the first run's one-time link to create the first admin (its SHA-256)

Revision ID: 0016_setup_tokens
Revises: 0015_read_indexes
Create Date: 2026-12-02 00:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import crm_core.models.base

revision = "0016_setup_tokens"
down_revision = "0015_read_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "setup_tokens",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", crm_core.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", crm_core.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", crm_core.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_setup_tokens")),
        sa.UniqueConstraint("token_sha256", name=op.f("uq_setup_tokens_token_sha256")),
    )


def downgrade() -> None:
    op.drop_table("setup_tokens")
