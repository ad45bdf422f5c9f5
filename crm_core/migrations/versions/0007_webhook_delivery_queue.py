"""outbound webhooks that wait instead of being dropped: ordering keys, groups, streak start

The outbox gets an ordering key (a row is claimed only when no earlier row of its key is
pending), a sequence (the order of the events) and a group key (a subscription's rows,
released together when it is turned back on). A subscription remembers since when it has
been failing; a delivery attempt remembers its outbox row (to retry it).

Revision ID: 0007_webhook_delivery_queue
Revises: 0006_parked_items
Create Date: 2026-12-01 16:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import crm_core.models.base

revision = "0007_webhook_delivery_queue"
down_revision = "0006_parked_items"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ordering_key", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("sequence", _ID, nullable=True))
        batch_op.add_column(sa.Column("group_key", sa.String(length=100), nullable=True))
        batch_op.create_index("ix_outbox_ordering", ["ordering_key", "status"], unique=False)
        batch_op.create_index("ix_outbox_group", ["group_key", "status"], unique=False)
        batch_op.create_index("ix_outbox_topic_created", ["topic", "created_at"], unique=False)
    with op.batch_alter_table("webhook_subscriptions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "failing_since", crm_core.models.base.UTCDateTime(timezone=True), nullable=True
            )
        )
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("outbox_id", _ID, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_column("outbox_id")
    with op.batch_alter_table("webhook_subscriptions", schema=None) as batch_op:
        batch_op.drop_column("failing_since")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_topic_created")
        batch_op.drop_index("ix_outbox_group")
        batch_op.drop_index("ix_outbox_ordering")
        batch_op.drop_column("group_key")
        batch_op.drop_column("sequence")
        batch_op.drop_column("ordering_key")
