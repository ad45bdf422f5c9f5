"""call recordings: an answered call's recording, until its line's retention removes it

Revision ID: 0012_call_recordings
Revises: 0011_weekly_letters
Create Date: 2026-12-01 20:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_call_recordings"
down_revision = "0011_weekly_letters"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("recording", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("recording")
