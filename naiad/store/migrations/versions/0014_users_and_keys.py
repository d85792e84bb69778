"""users, their keys, and who created each experiment, run, job, model and endpoint

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_CREATED = ("experiments", "runs", "jobs", "models", "endpoints")


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )
    with op.batch_alter_table("access_keys", schema=None) as batch_op:
        batch_op.alter_column("secret", existing_type=sa.String(length=64), nullable=True)
        batch_op.add_column(sa.Column("user_name", sa.String(length=63), nullable=True))
        batch_op.add_column(
            sa.Column("read_only", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("kind", sa.String(length=16), nullable=False, server_default="key")
        )
        batch_op.create_index(batch_op.f("ix_access_keys_user_name"), ["user_name"])
        batch_op.create_foreign_key(
            "fk_access_keys_user_name_users", "users", ["user_name"], ["name"], ondelete="CASCADE"
        )
    for table in _CREATED:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("created_by", sa.String(length=200), nullable=True))
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_runs_created_by"), ["created_by"])


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_runs_created_by"))
    for table in _CREATED:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("created_by")
    with op.batch_alter_table("access_keys", schema=None) as batch_op:
        batch_op.drop_constraint("fk_access_keys_user_name_users", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_access_keys_user_name"))
        batch_op.drop_column("kind")
        batch_op.drop_column("expires_at")
        batch_op.drop_column("read_only")
        batch_op.drop_column("user_name")
        batch_op.alter_column("secret", existing_type=sa.String(length=64), nullable=False)
    op.drop_table("users")
