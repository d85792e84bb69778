"""metric chunk columns stored uncompressed on PostgreSQL

Revision ID: 0003
Revises: 0002
"""

from alembic import op

COLUMNS = ("steps", "timestamps", "values")

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for column in COLUMNS:
            op.execute(f'ALTER TABLE metric_chunks ALTER COLUMN "{column}" SET STORAGE EXTERNAL')


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for column in COLUMNS:
            op.execute(f'ALTER TABLE metric_chunks ALTER COLUMN "{column}" SET STORAGE EXTENDED')
