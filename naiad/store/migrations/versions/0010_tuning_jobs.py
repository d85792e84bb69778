"""tuning_jobs, tuning_trials; jobs.stop_reason: hyperparameter searches and their trials

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("stop_reason", sa.Text(), nullable=True))
    op.create_table(
        "tuning_jobs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("stop_requested", sa.Boolean(), nullable=False),
        sa.Column("ends_as", sa.String(length=16), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    with op.batch_alter_table("tuning_jobs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tuning_jobs_status"), ["status"], unique=False)
    op.create_table(
        "tuning_trials",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tuning_job_id", sa.String(length=32), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.String(length=32), nullable=True),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("intermediate", sa.JSON(), nullable=False),
        sa.Column("attrs", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["tuning_job_id"], ["tuning_jobs.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tuning_job_id", "number", name="uq_tuning_trials_number"),
    )
    with op.batch_alter_table("tuning_trials", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_tuning_trials_tuning_job_id"), ["tuning_job_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_tuning_trials_job_id"), ["job_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("tuning_trials", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tuning_trials_job_id"))
        batch_op.drop_index(batch_op.f("ix_tuning_trials_tuning_job_id"))
    op.drop_table("tuning_trials")
    with op.batch_alter_table("tuning_jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tuning_jobs_status"))
    op.drop_table("tuning_jobs")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("stop_reason")
