"""projects and their members; the project of each experiment, job, tuning job, model and
endpoint (all "default" before); who created each tuning job

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_IN_PROJECTS = ("experiments", "jobs", "tuning_jobs", "models", "endpoints")


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "project_members",
        sa.Column("project", sa.String(length=63), nullable=False),
        sa.Column("user_name", sa.String(length=63), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(["project"], ["projects.name"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_name"], ["users.name"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("project", "user_name"),
    )
    with op.batch_alter_table("project_members", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_project_members_user_name"), ["user_name"])
    for table in _IN_PROJECTS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(
                sa.Column("project", sa.String(length=63), nullable=False, server_default="default")
            )
            batch_op.create_index(batch_op.f(f"ix_{table}_project"), ["project"])
    with op.batch_alter_table("tuning_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("created_by", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tuning_jobs", schema=None) as batch_op:
        batch_op.drop_column("created_by")
    for table in _IN_PROJECTS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(batch_op.f(f"ix_{table}_project"))
            batch_op.drop_column("project")
    with op.batch_alter_table("project_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_project_members_user_name"))
    op.drop_table("project_members")
    op.drop_table("projects")
