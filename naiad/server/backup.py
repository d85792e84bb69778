"""`naiad backup` and `naiad restore`: a consistent copy of a home's database and artifact
store, taken while the server runs, and read back into a fresh home.

A backup is a directory, renamed into place only once complete:

- ``manifest.json``: what it holds, which database and schema revision it came from;
- ``database.sqlite`` (SQLite's online backup API) or ``database.pgdump`` (``pg_dump``'s
  custom format), each a snapshot of one instant;
- ``artifacts/``: the artifact store's files under their store paths, and
  ``artifacts.sha256``, their checksums as ``sha256sum -c`` reads them;
- ``admin_token`` (0600), so scripts and the admin's access key still work after a restore.

The database is copied first and the files after it: a row that names a file is written
after the file, so every row of the snapshot finds its file (files written since are
extra, and harmless).
"""

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from sqlalchemy import Engine, inspect, text

from naiad import __version__
from naiad.core.errors import Conflict, InvalidInput, NaiadError
from naiad.server.home import HomeInUse, lock_home
from naiad.settings import Settings
from naiad.store.artifacts import ArtifactStore, open_artifact_store
from naiad.store.artifacts.base import CHUNK_SIZE
from naiad.store.db import current_revision, make_engine, migrate, sqlite_path

FORMAT = 1
MANIFEST = "manifest.json"
SQLITE_FILE = "database.sqlite"
PGDUMP_FILE = "database.pgdump"
ARTIFACTS = "artifacts"
CHECKSUMS = "artifacts.sha256"
TOKEN = "admin_token"
# What the report counts: the objects a person would look for after a restore.
COUNTED = (
    "experiments",
    "runs",
    "metric_chunks",
    "models",
    "model_versions",
    "endpoints",
    "jobs",
    "tuning_jobs",
    "notebooks",
    "connections",
    "access_keys",
)

Progress = Callable[[str, int, int], None]
"""``(phase, done, total)``: bytes of ``artifacts`` or ``verifying``, as they go."""


class BackupError(NaiadError):
    status_code = 400
    code = "backup_failed"


@dataclass
class Report:
    """What a backup holds, or what a restore put back."""

    path: str
    database: str  # sqlite | postgresql
    revision: str | None
    rows: dict[str, int]
    files: int
    bytes: int
    artifact_root: str
    created_at: str
    seconds: float = 0.0
    naiad_version: str = __version__
    upgraded_from: str | None = None  # a restore whose backup had an older schema
    format: int = FORMAT
    extra: dict[str, Any] = field(default_factory=dict)


def _quiet(_phase: str, _done: int, _total: int) -> None:
    return None


# -- backup ------------------------------------------------------------------------------


def backup(settings: Settings, dest: Path, progress: Progress | None = None) -> Report:
    """Copy the database, then the artifact store, into the new directory ``dest``."""
    started, progress = time.monotonic(), progress or _quiet
    dest = dest.expanduser().absolute()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise Conflict(f"{dest} already exists; back up into a new directory.")
    dest.parent.mkdir(parents=True, exist_ok=True)
    if settings.database_url is None and not settings.layout.database.is_file():
        raise InvalidInput(
            f"There is no Naiad database at {settings.layout.database}: NAIAD_HOME names a "
            "home no server has used (or NAIAD_DATABASE_URL is unset for a PostgreSQL one)."
        )
    engine = make_engine(settings.db_url)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    try:
        os.chmod(work, 0o700)  # the database holds connection and access-key secrets
        database, revision = _dump_database(settings, engine, work)
        rows = _counts(_snapshot_engine(work, database, settings))
        store = open_artifact_store(
            settings.artifacts_root, s3_endpoint_url=settings.s3_endpoint_url
        )
        files, size = _copy_artifacts(store, work / ARTIFACTS, work / CHECKSUMS, progress)
        token = settings.layout.token_file
        if token.is_file():
            shutil.copyfile(token, work / TOKEN)
            os.chmod(work / TOKEN, 0o600)
        report = Report(
            path=str(dest),
            database=database,
            revision=revision,
            rows=rows,
            files=files,
            bytes=size,
            artifact_root=store.uri,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        (work / MANIFEST).write_text(json.dumps(asdict(report), indent=2) + "\n")
        if dest.exists():
            dest.rmdir()  # empty, checked above
        os.replace(work, dest)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    finally:
        engine.dispose()
    report.seconds = round(time.monotonic() - started, 3)
    return report


def _dump_database(settings: Settings, engine: Engine, work: Path) -> tuple[str, str | None]:
    revision = current_revision(engine)
    if revision is None:
        raise BackupError(
            f"{_shown(settings)} holds no Naiad schema; is NAIAD_HOME (or NAIAD_DATABASE_URL) "
            "the server's?"
        )
    path = sqlite_path(engine)
    if path is not None:
        # One step (pages=-1) holds a read snapshot for the copy; in WAL mode the server's
        # writes go on meanwhile and are simply not in it.
        source = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        target = sqlite3.connect(work / SQLITE_FILE)
        try:
            source.backup(target, pages=-1)
        finally:
            target.close()
            source.close()
        return "sqlite", revision
    if engine.dialect.name != "postgresql":
        raise BackupError(f"Backing up a {engine.dialect.name} database is not supported.")
    dump = work / PGDUMP_FILE
    _pg_tool(
        "pg_dump", ["--format=custom", "--no-owner", "--no-privileges", f"--file={dump}"], settings
    )
    return "postgresql", revision


def _shown(settings: Settings) -> str:
    """The database for a message: its file, or its URL without the password."""
    if settings.database_url is None:
        return str(settings.layout.database)
    parts = urlsplit(settings.database_url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{parts.path}"


def _snapshot_engine(work: Path, database: str, settings: Settings) -> Engine:
    """An engine on what was just dumped: the SQLite copy itself, or (for PostgreSQL) the
    live database, whose counts are then a moment later than the dump's."""
    if database == "sqlite":
        return make_engine(f"sqlite:///{work / SQLITE_FILE}")
    return make_engine(settings.db_url)


def _counts(engine: Engine) -> dict[str, int]:
    try:
        present = set(inspect(engine).get_table_names())
        with engine.connect() as connection:
            return {
                table: int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
                for table in COUNTED
                if table in present
            }
    finally:
        engine.dispose()


def _copy_artifacts(
    store: ArtifactStore, into: Path, checksums: Path, progress: Progress
) -> tuple[int, int]:
    listed = store.list("", recursive=True)
    total = sum(info.size or 0 for info in listed)
    done = files = 0
    progress("artifacts", 0, total)
    with open(checksums, "w") as sums:
        for info in listed:
            target = into / info.path
            target.parent.mkdir(parents=True, exist_ok=True)
            digest = hashlib.sha256()
            try:
                with store.open(info.path) as src, open(target, "wb") as out:
                    while chunk := src.read(CHUNK_SIZE):
                        digest.update(chunk)
                        out.write(chunk)
                        done += len(chunk)
                        progress("artifacts", done, total)
            except FileNotFoundError:
                target.unlink(missing_ok=True)  # deleted since it was listed: not in the backup
                continue
            sums.write(f"{digest.hexdigest()}  {info.path}\n")
            files += 1
    return files, done


# -- restore -----------------------------------------------------------------------------


def read_manifest(source: Path) -> Report:
    """The backup's manifest, or a sentence saying why ``source`` is not a usable backup."""
    manifest = source / MANIFEST
    if not source.is_dir():
        raise InvalidInput(f"{source} is not a directory made by `naiad backup`.")
    if not manifest.is_file():
        raise InvalidInput(
            f"{source} has no {MANIFEST}: it is not a backup, or one that never finished "
            "(a backup is renamed into place only once complete)."
        )
    try:
        data = json.loads(manifest.read_text())
        report = Report(**data)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"{manifest} is not a Naiad backup manifest: {exc}") from None
    if report.format > FORMAT:
        raise InvalidInput(
            f"{source} was written by Naiad {report.naiad_version} in backup format "
            f"{report.format}; this Naiad ({__version__}) reads format {FORMAT} and older. "
            "Restore it with a newer Naiad."
        )
    return report


def restore(settings: Settings, source: Path, progress: Progress | None = None) -> Report:
    """Put a backup into this (fresh) home: verify every file first, then the database,
    then the artifacts, then migrate an older schema to this Naiad's."""
    started, progress = time.monotonic(), progress or _quiet
    source = source.expanduser().absolute()
    report = read_manifest(source)
    sums = _verify(source, progress)
    settings.home.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:  # refused while a server runs here; and none starts here meanwhile
        lock = lock_home(settings.layout)
    except HomeInUse:
        raise Conflict(
            f"A Naiad server runs on {settings.home}; restore into a fresh home (a new "
            "NAIAD_HOME), never into one in use."
        ) from None
    engine = make_engine(settings.db_url)
    try:
        store = open_artifact_store(
            settings.artifacts_root, s3_endpoint_url=settings.s3_endpoint_url
        )
        _check_empty(engine, store)
        _load_database(settings, engine, source, report.database)
        total = sum((source / ARTIFACTS / p).stat().st_size for p in sums)
        done = 0
        progress("artifacts", 0, total)
        for path in sums:
            with open(source / ARTIFACTS / path, "rb") as f:
                done += store.put_stream(path, f)
            progress("artifacts", done, total)
        engine.dispose()
        engine = make_engine(settings.db_url)
        upgraded_from = current_revision(engine)
        migrate(engine)
        _move_root(engine, report.artifact_root, store.uri)
        token = settings.layout.token_file
        if (source / TOKEN).is_file() and not token.exists():
            shutil.copyfile(source / TOKEN, token)
            os.chmod(token, 0o600)
        rows = _counts(engine)
    finally:
        engine.dispose()
        os.close(lock)
    return Report(
        path=str(source),
        database=report.database,
        revision=current_revision_of(settings),
        rows=rows,
        files=len(sums),
        bytes=done,
        artifact_root=store.uri,
        created_at=report.created_at,
        seconds=round(time.monotonic() - started, 3),
        upgraded_from=upgraded_from if upgraded_from != report.revision else None,
        extra={"backup_revision": report.revision},
    )


def current_revision_of(settings: Settings) -> str | None:
    engine = make_engine(settings.db_url)
    try:
        return current_revision(engine)
    finally:
        engine.dispose()


def _verify(source: Path, progress: Progress) -> list[str]:
    """Every file the checksums name, present and unchanged; the paths, in order."""
    listing = source / CHECKSUMS
    if not listing.is_file():
        raise InvalidInput(f"{source} has no {CHECKSUMS}; it is not a complete backup.")
    entries: list[tuple[str, str]] = []
    for number, line in enumerate(listing.read_text().splitlines(), 1):
        digest, sep, path = line.partition("  ")
        if not sep or len(digest) != 64 or not path or ".." in Path(path).parts:
            raise InvalidInput(f"{listing}, line {number}, is not '<sha256>  <path>': {line!r}")
        entries.append((digest, path))
    root = source / ARTIFACTS
    total = 0
    for _digest, path in entries:
        try:
            total += (root / path).stat().st_size
        except FileNotFoundError:
            raise InvalidInput(
                f"The backup lacks {ARTIFACTS}/{path}, which {CHECKSUMS} lists; nothing was "
                "restored."
            ) from None
    done = 0
    progress("verifying", 0, total)
    for digest, path in entries:
        actual = hashlib.sha256()
        with open(root / path, "rb") as f:
            while chunk := f.read(CHUNK_SIZE):
                actual.update(chunk)
                done += len(chunk)
                progress("verifying", done, total)
        if actual.hexdigest() != digest:
            raise InvalidInput(
                f"{ARTIFACTS}/{path} in the backup does not match its checksum (damaged or "
                "changed since the backup); nothing was restored."
            )
    return [path for _digest, path in entries]


def _check_empty(engine: Engine, store: ArtifactStore) -> None:
    tables = [t for t in inspect(engine).get_table_names() if t != "alembic_version"]
    if tables:
        where = sqlite_path(engine) or "the database NAIAD_DATABASE_URL names"
        raise Conflict(
            f"{where} already holds Naiad's tables; restore into a fresh home (a new "
            "NAIAD_HOME) or an empty database, so that nothing stored there is overwritten."
        )
    if store.list(""):
        raise Conflict(
            f"The artifact store {store.uri} is not empty; restore into an empty one (a new "
            "NAIAD_HOME, or a new NAIAD_ARTIFACT_URI prefix)."
        )


def _load_database(settings: Settings, engine: Engine, source: Path, database: str) -> None:
    path = sqlite_path(engine)
    kind = "sqlite" if path is not None else engine.dialect.name
    if kind != database:
        raise InvalidInput(
            f"The backup holds a {database} database and this home uses {kind}; restore it "
            f"with the same kind of database (NAIAD_DATABASE_URL)."
        )
    if path is not None:
        engine.dispose()
        for leftover in (
            path,
            path.with_name(path.name + "-wal"),
            path.with_name(path.name + "-shm"),
        ):
            leftover.unlink(missing_ok=True)  # an empty database a server once created
        tmp = path.with_name(f".{path.name}.restoring")
        shutil.copyfile(source / SQLITE_FILE, tmp)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
        return
    dump = str(source / PGDUMP_FILE)
    _pg_tool("pg_restore", ["--no-owner", "--no-privileges", "--exit-on-error", dump], settings)


def _move_root(engine: Engine, old: str, new: str) -> None:
    """Runs name their files by full URI: point those of the old store at the new one."""
    if old == new:
        return
    old_prefix, new_prefix = old.rstrip("/") + "/", new.rstrip("/") + "/"
    with engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE runs SET artifact_uri = :new || substr(artifact_uri, :cut) "
                "WHERE substr(artifact_uri, 1, :length) = :old"
            ),
            {
                "new": new_prefix,
                "old": old_prefix,
                "cut": len(old_prefix) + 1,
                "length": len(old_prefix),
            },
        )


# -- PostgreSQL's own tools --------------------------------------------------------------


def _pg_tool(tool: str, args: list[str], settings: Settings) -> None:
    """Run ``pg_dump`` or ``pg_restore`` on the settings' database; its password goes in
    the environment (PGPASSWORD), never on a command line others can read in ``ps``."""
    found = shutil.which(tool)
    if found is None:
        raise BackupError(
            f"{tool} is not on PATH; install PostgreSQL's client tools (Debian: "
            "apt-get install postgresql-client, of the server's major version or newer)."
        )
    parts = urlsplit(settings.database_url or "")
    env = dict(os.environ)
    if parts.password is not None:
        env["PGPASSWORD"] = unquote(parts.password)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}@" if parts.username else ""
    url = urlunsplit(("postgresql", f"{user}{host}", parts.path, parts.query, ""))
    done = subprocess.run(
        [found, *args, f"--dbname={url}"], capture_output=True, text=True, env=env, check=False
    )
    if done.returncode != 0:
        why = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise BackupError(f"{tool} failed: {why or f'exit code {done.returncode}'}")
