"""The soak benchmark, shortened to a minute for CI: mixed traffic with the server and a
replica SIGKILLed on a schedule loses no point and no request, and the server's memory
and open files stay flat (`make bench-soak` runs the hour)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.faults, pytest.mark.slow]

BENCH = Path(__file__).resolve().parents[2] / "bench" / "soak.py"


def test_a_minute_of_soak_with_faults_loses_nothing(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    done = subprocess.run(
        [sys.executable, str(BENCH), "--minutes", "1", "--fault-every", "15", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    assert report["faults"] == {"server SIGKILL": 2, "replica SIGKILL": 1}
    points = report["points"]
    assert points["logged"] > 10_000 and points["stored"] == points["logged"]
    assert points["lost"] == 0 and points["stored_twice"] == 0
    assert report["requests_lost"] == 0
    assert report["requests"]["serving"]["ok"] > 1000 and report["requests"]["api"]["ok"] > 500
    assert report["footprint_flat"], report["footprint"]
