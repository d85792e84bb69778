"""endpoint traffic history, one row per variant per minute

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "endpoint_minutes",
        sa.Column("endpoint_id", sa.String(length=32), nullable=False),
        sa.Column("variant", sa.String(length=63), nullable=False),
        sa.Column("minute", sa.BigInteger(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column("client_errors", sa.Integer(), nullable=False),
        sa.Column("latency_le", sa.JSON(), nullable=False),
        sa.Column("latency", sa.JSON(), nullable=False),
        sa.Column("batch_le", sa.JSON(), nullable=False),
        sa.Column("batches", sa.JSON(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("batch_count", sa.Integer(), nullable=False),
        sa.Column("queue_depth", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["endpoint_id"], ["endpoints.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("endpoint_id", "variant", "minute"),
    )
    with op.batch_alter_table("endpoint_minutes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_endpoint_minutes_minute"), ["minute"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("endpoint_minutes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_endpoint_minutes_minute"))
    op.drop_table("endpoint_minutes")
