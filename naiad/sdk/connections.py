"""client.connections: named credentials for SQL and DynamoDB input channels.

client.connections.create("warehouse", kind="sql", url="postgresql://u:p@db:5432/dw")
client.training_jobs.create(..., inputs={"train": "sql://warehouse"},
                            channels={"train": {"query": "SELECT * FROM digits"}})
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from naiad.schemas.connections import (
    Connection,
    ConnectionCheck,
    ConnectionCredentials,
)
from naiad.sdk.http import Transport


class Connections:
    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def create(
        self,
        name: str,
        kind: str,
        url: str | None = None,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        description: str = "",
        replace: bool = False,
    ) -> Connection:
        """Store a connection (Conflict if the name is taken, unless ``replace``)."""
        body = {
            "name": name,
            "kind": kind,
            "url": url,
            "endpoint_url": endpoint_url,
            "region": region,
            "access_key_id": access_key_id,
            "secret_access_key": secret_access_key,
            "description": description,
        }
        params: dict[str, Any] = {"replace": "true"} if replace else {}
        answer = self._t.request(
            "POST", "/connections", json={k: v for k, v in body.items() if v}, params=params
        )
        return Connection.model_validate(answer)

    def list(self) -> list[Connection]:
        return [Connection.model_validate(c) for c in self._t.request("GET", "/connections")]

    def get(self, name: str) -> Connection:
        """The connection with its secrets masked."""
        return Connection.model_validate(self._t.request("GET", f"/connections/{quote(name)}"))

    def credentials(self, name: str) -> ConnectionCredentials:
        """The connection whole, secrets included (what a job opens its channel with)."""
        answer = self._t.request("GET", f"/connections/{quote(name)}/credentials")
        return ConnectionCredentials.model_validate(answer)

    def check(self, name: str) -> ConnectionCheck:
        """Reach the service once with the stored credentials."""
        answer = self._t.request("POST", f"/connections/{quote(name)}/check")
        return ConnectionCheck.model_validate(answer)

    def delete(self, name: str) -> None:
        self._t.request("DELETE", f"/connections/{quote(name)}")
