"""`naiad server` refuses unsafe or broken configuration with one sentence."""

import os
import subprocess
import sys
from pathlib import Path


def serve(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "naiad.cli.main", "server", *args],
        env={**os.environ, "NAIAD_HOME": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_refuses_network_bind_without_auth(tmp_path: Path) -> None:
    out = serve(tmp_path, "--host", "0.0.0.0", NAIAD_AUTH="false")
    assert out.returncode == 1
    assert "Refusing to listen on 0.0.0.0 with auth off" in out.stderr
    assert "Traceback" not in out.stderr


def test_bad_setting_is_one_sentence(tmp_path: Path) -> None:
    out = serve(tmp_path, NAIAD_MAX_BATCH_POINTS="lots")
    assert out.returncode == 1
    assert "NAIAD_MAX_BATCH_POINTS" in out.stderr and "Traceback" not in out.stderr


def test_help_names_the_defaults(tmp_path: Path) -> None:
    out = serve(tmp_path, "--help", COLUMNS="200")
    assert out.returncode == 0
    assert "NAIAD_HOST, else 127.0.0.1" in out.stdout and "NAIAD_PORT, else 8765" in out.stdout


def test_a_network_bind_warns_that_the_api_is_plain_http() -> None:
    from naiad.server.run import plain_http_warning
    from naiad.settings import Settings

    assert plain_http_warning(Settings(host="127.0.0.1")) is None
    warning = plain_http_warning(Settings(host="0.0.0.0"))
    assert warning is not None and "plain HTTP" in warning
