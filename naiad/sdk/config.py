"""Where the SDK finds the server and its key: arguments, then NAIAD_URL/NAIAD_TOKEN, then the
credentials file (`naiad login`), then what a local server wrote in the Naiad home."""

import json
import os
from dataclasses import dataclass

from naiad.core.home import HomeLayout, default_home
from naiad.sdk import credentials

DEFAULT_URL = "http://127.0.0.1:8765"


@dataclass(frozen=True)
class Target:
    url: str
    token: str | None


def resolve(url: str | None = None, token: str | None = None) -> Target:
    """Explicit arguments win, then the environment, then the files under the Naiad home."""
    home = HomeLayout(default_home())
    url = url or os.environ.get("NAIAD_URL") or credentials.default_url()
    if not url:
        try:
            url = json.loads(home.server_file.read_text())["url"]
        except (OSError, ValueError, KeyError):  # none running yet: where one would listen
            port = os.environ.get("NAIAD_PORT")
            url = f"http://127.0.0.1:{port}" if port else DEFAULT_URL
    token = token or os.environ.get("NAIAD_TOKEN")
    if not token:
        token = (credentials.entry(url) or {}).get("token")
    if not token:
        try:
            token = home.token_file.read_text().strip() or None
        except OSError:
            token = None
    return Target(url=url.rstrip("/"), token=token)
