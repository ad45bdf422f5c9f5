"""reports: a deal's product (for ABC by product), test leads kept apart

Revision ID: 0010_reports
Revises: 0009_site_chat
Create Date: 2026-12-01 19:55:03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_reports"
down_revision = "0009_site_chat"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("is_test", sa.Boolean(), server_default=sa.false(), nullable=False)
        )

    with op.batch_alter_table("deals", schema=None) as batch_op:
        batch_op.add_column(sa.Column("product", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deals", schema=None) as batch_op:
        batch_op.drop_column("product")

    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_column("is_test")
