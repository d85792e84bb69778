"""Migrations: applied on start, a no-op when current, and the fast path agrees with alembic."""

import json
from typing import Any

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, select, text
from sqlalchemy.orm import Session

from naiad.schemas.jobs import JobSpec
from naiad.settings import Settings
from naiad.store.db import MIGRATIONS, current_revision, head_revision, make_engine, migrate
from naiad.store.tables import Base, JobRow
from naiad.testing import postgres


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


def test_job_handles_are_filled_in_for_jobs_that_started(settings: Settings) -> None:
    """0006: a job that left the queue ran under the local executor, whose handle is its
    directory's name; a queued job gets its handle when it starts."""
    if settings.db_url.startswith("postgresql"):  # the shared database is already at head
        with postgres.scratch_database(postgres.admin_url() or "") as url:
            _fill_in_handles(url)
    else:
        _fill_in_handles(settings.db_url)


def _fill_in_handles(url: str) -> None:
    from alembic import command

    engine = make_engine(url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0005")
        _insert_run(connection)
        for job_id, name, status in (("j1", "ran", "Completed"), ("j2", "queued", "Pending")):
            _insert_job(connection, job_id, name, status, {})
        command.upgrade(config, "0006")
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT name, handle FROM jobs ORDER BY name")).all()
    handles = {name: json.loads(h) if isinstance(h, str) else h for name, h in rows}
    assert handles == {"queued": None, "ran": {"executor": "local", "id": "ran"}}
    engine.dispose()


def _insert_run(connection: Connection) -> None:
    connection.execute(
        text(
            "INSERT INTO experiments (id, name, description, tags, created_at) "
            "VALUES ('e1', 'exp', '', '{}', CURRENT_TIMESTAMP)"
        )
    )
    connection.execute(
        text(
            "INSERT INTO runs (id, experiment_id, name, status, artifact_uri, start_time) "
            "VALUES ('r1', 'e1', 'run', 'Running', 'x', CURRENT_TIMESTAMP)"
        )
    )


def _insert_job(
    connection: Connection, job_id: str, name: str, status: str, spec: dict[str, Any]
) -> None:
    connection.execute(
        text(
            "INSERT INTO jobs (id, name, status, spec, priority, run_id, attempt, "
            "stop_requested, created_at) VALUES "
            "(:id, :name, :status, :spec, 0, 'r1', 0, false, CURRENT_TIMESTAMP)"
        ),
        {"id": job_id, "name": name, "status": status, "spec": json.dumps(spec)},
    )


# A job's spec as stored before metric definitions: no metric_definitions, and numbers
# that submissions now store as the strings they print as.
OLD_SPEC = {
    "entrypoint": "train.py",
    "source_uri": "sources/abc.tar.gz",
    "experiment": "jobs",
    "hyperparameters": {"lr": 0.1, "seed": 2**70},
    "inputs": {"train": "file:///data"},
    "output_uri": "jobs/old/output",
    "nodes": 1,
    "processes_per_node": 2,
    "gpus": 0,
    "max_runtime_s": None,
    "max_retries": 1,
}


def test_old_job_specs_read_as_typed_specs(settings: Settings) -> None:
    """0007: a job spec from before metric definitions gets today's shape, and reads back
    as a ``JobSpec``; a spec already in that shape is left as it was."""
    if settings.db_url.startswith("postgresql"):  # the shared database is already at head
        with postgres.scratch_database(postgres.admin_url() or "") as url:
            _convert_specs(url)
    else:
        _convert_specs(settings.db_url)


def _convert_specs(url: str) -> None:
    from alembic import command

    current = {
        **OLD_SPEC,
        "hyperparameters": {"lr": 0.2},
        "metric_definitions": [{"name": "loss", "regex": "loss: ([0-9.]+)"}],
    }
    engine = make_engine(url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0006")
        _insert_run(connection)
        _insert_job(connection, "j1", "old", "Completed", OLD_SPEC)
        _insert_job(connection, "j2", "new", "Pending", current)
        command.upgrade(config, "0007")
        command.upgrade(config, "head")  # the rows as today's code reads them
    with Session(engine) as session:
        specs = {row.name: row.spec for row in session.scalars(select(JobRow))}
    assert specs["old"] == JobSpec.model_validate(
        {
            **OLD_SPEC,
            "hyperparameters": {"lr": 0.1, "seed": str(2**70)},
            "metric_definitions": [],
        }
    )
    assert specs["old"].processes == 2
    assert specs["new"] == JobSpec.model_validate(current)
    with engine.connect() as connection:
        stored = connection.execute(text("SELECT spec FROM jobs WHERE name = 'old'")).scalar()
    stored = json.loads(stored) if isinstance(stored, str) else stored
    assert stored["metric_definitions"] == []
    engine.dispose()
