"""Engine factory and migrations. Engines are built by callers with settings, never at import."""

import errno
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.exc import DBAPIError, InvalidatePoolError
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"
# A checkpointed write-ahead log is cut back to this size instead of staying at its peak.
WAL_SIZE_LIMIT = 64 * 1024 * 1024
FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_SQLITE_FULL = 13  # SQLITE_FULL: also what SQLite reports when a write meets ENOSPC
_PG_DISK_FULL = "53100"


def make_engine(url: str) -> Engine:
    """SQLite gets WAL, a busy timeout and foreign keys; PostgreSQL a modest pool."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
            # Debian builds SQLite with secure_delete on: deleting a run would then write
            # every freed page, zeroed, to the WAL, so a delete needed as much free disk as
            # the run's metrics took. FAST zeroes only what costs no extra writes.
            cursor.execute("PRAGMA secure_delete=FAST")
            cursor.close()

        return engine
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with factory() as session, session.begin():
        yield session


def head_revision() -> str:
    """The newest revision on disk: files are named ``<revision>_<slug>.py`` in order."""
    names = sorted(p.name for p in (MIGRATIONS / "versions").glob("[0-9]*_*.py"))
    return names[-1].split("_", 1)[0]


def current_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except DBAPIError:  # no table yet: a new database
        return None


def create_current(engine: Engine, head: str) -> None:
    """A new database gets today's schema in one step and is stamped at the head revision.

    The same result as replaying every migration (a test checks that the models and
    the migrations agree), without loading alembic on a first start.
    """
    from naiad.store.tables import Base

    with engine.begin() as connection:
        Base.metadata.create_all(connection)
        connection.execute(
            text(
                "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
                "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
            )
        )
        connection.execute(text("INSERT INTO alembic_version VALUES (:v)"), {"v": head})


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision; run on every server start.

    When the database is already current, alembic (half a second to import and load
    its scripts) is skipped: a cold start matters to people restarting a server.
    """
    current, head = current_revision(engine), head_revision()
    if current == head:
        return
    if current is None and not inspect(engine).get_table_names():
        create_current(engine, head)
        return
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def insert_new(session: Session, table: type, values: dict[str, Any], unique: list[str]) -> bool:
    """INSERT unless a row with the same ``unique`` columns exists; True if this one went in.

    This replaces a SAVEPOINT around an INSERT that may clash: pysqlite issues no BEGIN
    before a SAVEPOINT, so on SQLite releasing it commits at once, and a request refused
    later would still leave that row behind.
    """
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        # The same API as PostgreSQL's insert; only the class differs.
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    else:
        raise NotImplementedError(f"insert_new does not support {dialect}")
    statement = (
        insert(table)
        .values(**values)
        .on_conflict_do_nothing(index_elements=unique)
        .returning(*(getattr(table, column) for column in unique))
    )  # RETURNING, not rowcount: psycopg reports -1 for this statement
    return session.execute(statement).first() is not None


def disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) says the disk or a quota is full.

    Covers the operating system's ENOSPC/EDQUOT, SQLite's SQLITE_FULL ("database or disk
    is full") and PostgreSQL's disk_full, as SQLAlchemy wraps them.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in FULL_ERRNOS:
            return True
        orig = current.orig if isinstance(current, DBAPIError) else current
        if getattr(orig, "sqlite_errorcode", None) == _SQLITE_FULL:
            return True
        if getattr(orig, "sqlstate", None) == _PG_DISK_FULL:
            return True
        if type(orig).__module__.startswith("sqlite3") and "disk is full" in str(orig):
            return True
        current = current.__cause__ or current.__context__
    return False


# PostgreSQL's SQLSTATEs for a connection that failed or a server going away: connection
# exceptions (08...), and admin_shutdown, crash_shutdown, cannot_connect_now.
_PG_GONE = ("08", "57P01", "57P02", "57P03")


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) says the database cannot be reached right now
    (restarting, down, or the connection dropped), so that a retry may well succeed."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, InvalidatePoolError):
            return True
        if isinstance(current, DBAPIError):
            if current.connection_invalidated:
                return True
            state = getattr(current.orig, "sqlstate", None)
            if state is not None and str(state).startswith(_PG_GONE):
                return True
            module = type(current.orig).__module__
            if module.startswith("psycopg") and state is None and "connection" in str(current.orig):
                return True
        current = current.__cause__ or current.__context__
    return False


def sqlite_path(engine: Engine) -> Path | None:
    """The database file of a SQLite engine; None for PostgreSQL or an in-memory database."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    return Path(database)


def _database_bytes(path: Path) -> int:
    return sum(
        p.stat().st_size if p.exists() else 0 for p in (path, path.with_name(path.name + "-wal"))
    )


def checkpoint(engine: Engine, truncate: bool) -> int:
    """Copy SQLite's write-ahead log into the database file; returns the bytes freed.

    ``truncate`` also cuts the log to nothing, waiting up to two seconds for readers
    (TRUNCATE holds off writers while it waits, so the periodic pass uses PASSIVE and
    leaves the shrinking to ``journal_size_limit``). PostgreSQL manages its own log: 0.
    """
    path = sqlite_path(engine)
    if path is None:
        return 0
    before = _database_bytes(path)
    with engine.connect() as connection:
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute("PRAGMA busy_timeout=2000")
            cursor.execute(f"PRAGMA wal_checkpoint({'TRUNCATE' if truncate else 'PASSIVE'})")
        finally:
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()
    return max(0, before - _database_bytes(path))


def vacuum(engine: Engine) -> int:
    """Rewrite the database without its free pages; returns the bytes freed.

    VACUUM cannot run inside a transaction on either backend, so it runs in autocommit.
    SQLite needs room for a full copy while it works; PostgreSQL's plain VACUUM makes
    dead rows' space reusable without locking tables, and rarely shrinks the files.
    """
    path = sqlite_path(engine)
    auto = engine.execution_options(isolation_level="AUTOCOMMIT")
    if path is not None:
        before = _database_bytes(path)
        with auto.connect() as connection:
            connection.exec_driver_sql("VACUUM")
        checkpoint(engine, truncate=True)
        return max(0, before - _database_bytes(path))
    if engine.dialect.name != "postgresql":
        return 0
    size = "SELECT pg_database_size(current_database())"
    with auto.connect() as connection:
        before = connection.exec_driver_sql(size).scalar() or 0
        connection.exec_driver_sql("VACUUM")
        after = connection.exec_driver_sql(size).scalar() or 0
    return max(0, int(before) - int(after))
