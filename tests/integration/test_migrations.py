"""Migrations: applied on start, a no-op when current, and the fast path agrees with alembic."""

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from naiad.settings import Settings
from naiad.store.db import MIGRATIONS, current_revision, head_revision, make_engine, migrate
from naiad.store.tables import Base


def test_file_order_matches_alembic_head() -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_current_head() == head_revision()


def test_migrate_creates_every_table_and_is_idempotent(settings: Settings) -> None:
    engine = make_engine(settings.db_url)
    migrate(engine)
    migrate(engine)
    assert current_revision(engine) == head_revision()
    assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_migrations_and_models_agree(settings: Settings) -> None:
    """Replaying every migration gives exactly the schema the models describe, so a new
    database created from the models (the fast path on first start) is the same."""
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(settings.db_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    with engine.connect() as connection:
        diffs = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diffs == []
    assert current_revision(engine) == head_revision()
    engine.dispose()


def test_postgres_chunk_columns_are_uncompressed(settings: Settings) -> None:
    """Both the fast path and the migrations leave float arrays uncompressed (fast reads)."""
    if not settings.db_url.startswith("postgresql"):
        pytest.skip("a PostgreSQL storage setting")
    engine = make_engine(settings.db_url)
    migrate(engine)
    with engine.connect() as connection:
        storage = connection.execute(
            text(
                "SELECT attname, attstorage FROM pg_attribute WHERE attrelid = "
                "'metric_chunks'::regclass AND attname IN ('steps', 'timestamps', 'values')"
            )
        ).all()
    assert sorted(storage) == [("steps", "e"), ("timestamps", "e"), ("values", "e")]
    engine.dispose()
