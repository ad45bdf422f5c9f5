"""weekly letters: one row per head of sales and week, queued with the mail's outbox row

Revision ID: 0011_weekly_letters
Revises: 0010_reports
Create Date: 2026-12-01 20:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import crm_core.models.base

revision = "0011_weekly_letters"
down_revision = "0010_reports"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "weekly_letters",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "manager_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("week_start", sa.Date(), nullable=False),
        sa.Column("queued_at", crm_core.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["manager_id"],
            ["managers.id"],
            name=op.f("fk_weekly_letters_manager_id_managers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_weekly_letters")),
        sa.UniqueConstraint(
            "manager_id", "week_start", name=op.f("uq_weekly_letters_manager_id_week_start")
        ),
    )


def downgrade() -> None:
    op.drop_table("weekly_letters")
