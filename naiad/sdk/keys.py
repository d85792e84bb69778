"""client.keys: access key pairs for the AWS-compatible APIs Naiad answers on its own URL.

issued = client.keys.create(description="ci")   # issued.secret_access_key: shown this once
sagemaker = boto3.client("sagemaker", **client.keys.boto3_kwargs())   # the admin's pair
client.keys.delete(issued.access_key_id)        # refused within seconds
"""

from __future__ import annotations

from typing import Any

from naiad.schemas.keys import AccessKey, AccessKeyIssued, AdminKey
from naiad.sdk.http import Transport

DEFAULT_REGION = "us-east-1"


class AccessKeys:
    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def create(self, description: str = "") -> AccessKeyIssued:
        """Issue a pair; keep its ``secret_access_key``, the server never shows it again."""
        body = {"description": description}
        return AccessKeyIssued.model_validate(self._t.request("POST", "/keys", json=body))

    def list(self) -> list[AccessKey]:
        """Issued keys, oldest first, without their secrets."""
        return [AccessKey.model_validate(k) for k in self._t.request("GET", "/keys")]

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
