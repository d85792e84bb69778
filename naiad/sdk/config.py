"""Where the SDK finds the server: NAIAD_URL/NAIAD_TOKEN, else what a local server wrote."""

import json
import os
from dataclasses import dataclass
from pathlib import Path

from naiad.core.home import SERVER_FILE, TOKEN_FILE

DEFAULT_URL = "http://127.0.0.1:8765"


def naiad_home() -> Path:
    return Path(os.environ.get("NAIAD_HOME") or Path.home() / ".naiad").expanduser()


@dataclass(frozen=True)
class Target:
    url: str
    token: str | None


def resolve(url: str | None = None, token: str | None = None) -> Target:
    """Explicit arguments win, then the environment, then the files under the Naiad home."""
    home = naiad_home()
    url = url or os.environ.get("NAIAD_URL")
    if not url:
        server_file = home / SERVER_FILE
        try:
            url = json.loads(server_file.read_text())["url"]
        except (OSError, ValueError, KeyError):  # none running yet: where one would listen
            port = os.environ.get("NAIAD_PORT")
            url = f"http://127.0.0.1:{port}" if port else DEFAULT_URL
    token = token or os.environ.get("NAIAD_TOKEN")
    if not token:
        try:
            token = (home / TOKEN_FILE).read_text().strip() or None
        except OSError:
            token = None
    return Target(url=url.rstrip("/"), token=token)
