"""client.keys: keys for Naiad's API (``issued.token``, a Bearer token) that are also access
key pairs for the AWS-compatible APIs Naiad answers on its own URL.

issued = client.keys.create(description="ci", read_only=True, expires_in_days=30)
sagemaker = boto3.client("sagemaker", **client.keys.boto3_kwargs(key=issued))
client.keys.delete(issued.access_key_id)        # refused at once
"""

from __future__ import annotations

from typing import Any

from naiad.schemas.keys import AccessKey, AccessKeyIssued, AdminKey
from naiad.sdk.http import Transport

DEFAULT_REGION = "us-east-1"


class AccessKeys:
    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def create(
        self,
        description: str = "",
        read_only: bool = False,
        expires_in_days: float | None = None,
        user: str | None = None,
    ) -> AccessKeyIssued:
        """Issue a key (your own; an admin may name another ``user``); keep its ``token``
        and ``secret_access_key``, the server never shows them again."""
        body = {
            "description": description,
            "read_only": read_only,
            "expires_in_days": expires_in_days,
            "user": user,
        }
        return AccessKeyIssued.model_validate(self._t.request("POST", "/keys", json=body))

    def list(self, user: str | None = None) -> list[AccessKey]:
        """Keys, oldest first, without their secrets: yours (an admin sees everyone's, or
        ``user``'s)."""
        params = {"user": user} if user else None
        return [AccessKey.model_validate(k) for k in self._t.request("GET", "/keys", params=params)]

    def delete(self, access_key_id: str) -> None:
        """Revoke a key (NotFound for one the server never issued)."""
        self._t.request("DELETE", f"/keys/{access_key_id}")

    def admin(self) -> AdminKey:
        """The admin's pair, derived from the server's token (Conflict when it runs without
        auth, where any pair is accepted)."""
        return AdminKey.model_validate(self._t.request("GET", "/keys/admin"))

    def boto3_kwargs(
        self, region: str = DEFAULT_REGION, key: AccessKeyIssued | AdminKey | None = None
    ) -> dict[str, Any]:
        """Keyword arguments for ``boto3.client(service, **...)``: this server's URL, a
        region, and a pair (``key``, by default the admin's)."""
        pair = key or self.admin()
        return {
            "endpoint_url": self._t.url,
            "region_name": region,
            "aws_access_key_id": pair.access_key_id,
            "aws_secret_access_key": pair.secret_access_key,
        }
