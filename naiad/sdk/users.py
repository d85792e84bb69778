"""client.users: who may sign in to a shared server, and with which role (admins manage
them; anyone asks ``me``).

client.users.create("ana", role="editor", password="s3cret-enough")
client.users.update("ana", role="viewer")     # or disabled=True: her keys stop at once
client.users.me()                              # Me(name='ana', role='viewer', ...)
token = login("http://team:8765", "ana", "s3cret-enough").token   # a key for NAIAD_TOKEN
"""

from __future__ import annotations

from typing import Any

from naiad.schemas.users import LoginIssued, Me, User
from naiad.sdk.http import Transport


class Users:
    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def create(self, name: str, role: str = "viewer", password: str | None = None) -> User:
        body = {"name": name, "role": role, "password": password}
        return User.model_validate(self._t.request("POST", "/users", json=body))

    def list(self) -> list[User]:
        return [User.model_validate(u) for u in self._t.request("GET", "/users")]

    def get(self, name: str) -> User:
        return User.model_validate(self._t.request("GET", f"/users/{name}"))

    def update(
        self,
        name: str,
        role: str | None = None,
        disabled: bool | None = None,
        password: str | None = None,
    ) -> User:
        """Change what is given; a disabled user's keys and sessions are refused at once."""
        body: dict[str, Any] = {"role": role, "disabled": disabled, "password": password}
        body = {k: v for k, v in body.items() if v is not None}
        return User.model_validate(self._t.request("PATCH", f"/users/{name}", json=body))

    def delete(self, name: str) -> None:
        """Delete a user and their keys (what they created keeps their name)."""
        self._t.request("DELETE", f"/users/{name}")

    def me(self) -> Me:
        """Whom this client's key acts for, and its role."""
        return Me.model_validate(self._t.request("GET", "/users/me"))

    def change_password(self, current: str, new: str) -> None:
        self._t.request("PATCH", "/users/me", json={"current": current, "new": new})


def login(
    url: str,
    user: str,
    password: str,
    description: str = "",
    expires_in_days: float | None = 90,
    read_only: bool = False,
) -> LoginIssued:
    """Trade a password for a new key on the server at ``url`` (no key needed first)."""
    body = {
        "user": user,
        "password": password,
        "description": description,
        "expires_in_days": expires_in_days,
        "read_only": read_only,
    }
    transport = Transport(url.rstrip("/"), None)
    try:
        return LoginIssued.model_validate(transport.request("POST", "/login", json=body))
    finally:
        transport.close()
