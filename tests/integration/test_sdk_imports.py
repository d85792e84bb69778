"""What ``import naiad`` and the SDK load when they run.

The import contracts in pyproject.toml (``lint-imports``) check Naiad's own import
statements: the client side never imports the server side, SQLAlchemy, FastAPI or torch.
They cannot see what a third-party package loads in turn, so this checks the modules
actually loaded in a fresh interpreter.
"""

import subprocess
import sys


def test_sdk_loads_no_server_library_and_no_torch() -> None:
    code = (
        "import sys, naiad\n"
        "naiad.Client; naiad.start_run\n"
        "import naiad.sdk.run, naiad.cli.main\n"
        "bad = [m for m in ('sqlalchemy', 'fastapi', 'alembic', 'uvicorn', 'torch')"
        " if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_a_jobs_metric_logging_loads_no_numpy() -> None:
    """A script that only logs metrics starts without numpy: every trial of a tuning job,
    and every cold-started job, pays for what the SDK imports."""
    code = (
        "import sys\n"
        "from naiad import runtime\n"
        "import naiad.sdk.run\n"
        "print('numpy' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
