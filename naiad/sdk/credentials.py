"""The credentials file: a key per server URL, written by `naiad login`, read by the SDK
and CLI when neither arguments nor NAIAD_URL/NAIAD_TOKEN name one.

``credentials.json`` in the Naiad home, 0600: ``{"default": URL, "servers": {URL:
{"user": NAME, "token": KEY}}}``; the last login is the default server.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from naiad.core.home import HomeLayout, default_home


def path() -> Path:
    return HomeLayout(default_home()).credentials_file


def load() -> dict[str, Any]:
    try:
        data = json.loads(path().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def entry(url: str) -> dict[str, str] | None:
    servers = load().get("servers")
    found = servers.get(url.rstrip("/")) if isinstance(servers, dict) else None
    return found if isinstance(found, dict) else None


def default_url() -> str | None:
    url = load().get("default")
    return url if isinstance(url, str) else None


def save(url: str, user: str, token: str) -> Path:
    """Store ``token`` for ``url`` and make it the default server (owner-only file)."""
    data = load()
    url = url.rstrip("/")
    data.setdefault("servers", {})[url] = {"user": user, "token": token}
    data["default"] = url
    _write(data)
    return path()


def forget(url: str) -> bool:
    """Drop ``url``'s key; whether there was one."""
    data = load()
    url = url.rstrip("/")
    if url not in data.get("servers", {}):
        return False
    del data["servers"][url]
    if data.get("default") == url:
        data.pop("default")
    _write(data)
    return True


def _write(data: dict[str, Any]) -> None:
    target = path()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
    os.replace(tmp, target)
