"""PostgreSQL restarted while runs log (the cluster CI runs, with pg_ctlcluster): the server
reconnects on its own, the points the SDK buffered meanwhile arrive, nothing is lost or
stored twice, calls made while it is down are answered 503 (never 500), and the server
takes new writes at once."""

import subprocess
import time
from pathlib import Path

import pytest

import naiad
from naiad.testing import postgres
from naiad.testing.live import LiveServer
from tests.conftest import need
from tests.faults.loggers import Loggers

pytestmark = [pytest.mark.faults, pytest.mark.postgres, pytest.mark.slow]

RUNS, POINTS = 5, 3000


def test_a_postgres_restart_mid_ingest_loses_nothing(tmp_path: Path) -> None:
    admin = postgres.admin_url()
    ctl = postgres.cluster_ctl(admin)
    need(admin is not None, f"PostgreSQL ({postgres.ENV})")
    need(ctl is not None, "a PostgreSQL cluster that pg_ctlcluster restarts (port 5432)")
    assert admin is not None and ctl is not None
    with postgres.scratch_database(admin) as database:
        server = LiveServer(home=tmp_path / "home", env={"NAIAD_DATABASE_URL": database})
        server.start()
        try:
            client = naiad.Client(url=server.url, token=server.token)
            loggers = Loggers(client, "pg", RUNS, POINTS, pause_s=0.05)
            loggers.start()
            time.sleep(0.5)
            restart = subprocess.run(
                [*ctl, "restart", "-m", "fast"], capture_output=True, text=True
            )
            assert restart.returncode == 0, restart.stderr
            loggers.finish()
            loggers.assert_stored_once()
            assert client.experiments.create("after-the-restart").name == "after-the-restart"
            log = server.home.joinpath("server.log").read_text()
            assert "unhandled error" not in log  # a 503 while it was down, never a 500
        finally:
            server.stop()
