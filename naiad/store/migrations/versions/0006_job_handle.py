"""the executor's handle on each job row

Jobs that already left the queue ran under the local executor, whose handle is the
job's directory name under the jobs folder: those rows get it.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("handle", sa.JSON(), nullable=True))
    jobs = sa.table(
        "jobs",
        sa.column("name", sa.String()),
        sa.column("status", sa.String()),
        sa.column("handle", sa.JSON()),
    )
    connection = op.get_bind()
    started = connection.execute(sa.select(jobs.c.name).where(jobs.c.status != "Pending"))
    for (name,) in started.all():
        connection.execute(
            jobs.update()
            .where(jobs.c.name == name)
            .values(handle={"executor": "local", "id": name})
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("handle")
