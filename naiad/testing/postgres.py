"""A throwaway PostgreSQL database for a test session, from NAIAD_TEST_POSTGRES_URL."""

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, make_url, text

from naiad.store.tables import Base

ENV = "NAIAD_TEST_POSTGRES_URL"


def admin_url() -> str | None:
    return os.environ.get(ENV)


def cluster_ctl(url: str | None = None) -> list[str] | None:
    """``pg_ctlcluster VERSION NAME`` for this machine's cluster that serves ``url`` (by its
    port; 5432 without a URL or a port), with Debian's tools as CI has them, to restart it
    with; None without one."""
    if shutil.which("pg_lsclusters") is None or shutil.which("pg_ctlcluster") is None:
        return None
    wanted = str(make_url(url).port or 5432) if url else "5432"
    listed = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True, check=False)
    for line in listed.stdout.splitlines():
        version, name, port, *_ = line.split()
        if port == wanted:
            return ["pg_ctlcluster", "--skip-systemctl-redirect", version, name]
    return None


def _psycopg(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


@contextmanager
def scratch_database(url: str) -> Iterator[str]:
    """Create a uniquely named database, yield its URL, drop it afterwards."""
    name = f"naiad_test_{uuid.uuid4().hex[:12]}"
    # pre-ping: the admin connection outlives a restart of the cluster (tests/faults)
    admin = create_engine(_psycopg(url), isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    base, _, _ = url.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def truncate_all(url: str) -> None:
    """Empty every Naiad table (fast reset between tests sharing one database)."""
    engine = create_engine(_psycopg(url))
    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as c:
        exists = c.execute(text("SELECT to_regclass('public.runs')")).scalar()
        if exists:
            c.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    engine.dispose()
