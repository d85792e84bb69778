"""Import direction: the client side never loads the server side."""

import subprocess
import sys


def test_sdk_does_not_load_server_libraries() -> None:
    code = (
        "import sys, naiad\n"
        "naiad.Client; naiad.start_run\n"
        "import naiad.sdk.run, naiad.cli.main\n"
        "bad = [m for m in ('sqlalchemy', 'fastapi', 'alembic', 'uvicorn', 'naiad.store',"
        " 'naiad.server', 'naiad.services', 'torch') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
