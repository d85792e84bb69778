"""endpoint_scaling_events: the autoscaling decisions the endpoint keeper takes

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "endpoint_scaling_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("endpoint_id", sa.String(length=32), nullable=False),
        sa.Column("variant", sa.String(length=63), nullable=False),
        sa.Column("from_replicas", sa.Integer(), nullable=False),
        sa.Column("to_replicas", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["endpoint_id"], ["endpoints.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("endpoint_scaling_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_endpoint_scaling_events_endpoint_id"), ["endpoint_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_endpoint_scaling_events_at"), ["at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("endpoint_scaling_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_endpoint_scaling_events_at"))
        batch_op.drop_index(batch_op.f("ix_endpoint_scaling_events_endpoint_id"))
    op.drop_table("endpoint_scaling_events")
