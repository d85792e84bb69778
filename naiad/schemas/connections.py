"""Named connections: the credentials a SQL or DynamoDB input channel reads with.

A job names a connection (``sql://NAME``, or ``connection: NAME`` for DynamoDB) and never
holds its secrets: they stay on the server, are shown masked, and reach only a job's
own processes when they open the channel.
"""

import re
from typing import Literal, Self

from pydantic import BaseModel, Field, field_validator, model_validator

from naiad.schemas.common import Text, Timestamp, Wire

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")


class ConnectionCreate(Wire):
    name: str = Field(description="Unique; letters, digits, '-' and '_', up to 63.")
    kind: Literal["sql", "dynamodb"] = Field(
        description="sql: a database URL (SQLAlchemy's form); dynamodb: an endpoint and keys."
    )
    url: str | None = Field(
        default=None,
        max_length=2048,
        description="For sql: e.g. postgresql://user:password@host:5432/db (the password "
        "is stored, never shown).",
    )
    endpoint_url: str | None = Field(
        default=None, max_length=2048, description="For dynamodb: any compatible service."
    )
    region: str | None = Field(default=None, max_length=64)
    access_key_id: str | None = Field(default=None, max_length=256)
    secret_access_key: str | None = Field(default=None, max_length=256)
    description: Text = Field(default="", max_length=500)

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not _NAME.fullmatch(name):
            raise ValueError(
                f"connection name {name[:80]!r} is not valid: use up to 63 letters, digits, "
                "'-' or '_', starting with a letter or digit"
            )
        return name

    @model_validator(mode="after")
    def _fields_of_kind(self) -> Self:
        if self.kind == "sql":
            if not self.url:
                raise ValueError("a sql connection needs url, e.g. postgresql://u:p@host/db")
            if "://" not in self.url:
                raise ValueError("url is not a database URL (dialect://user:password@host/db)")
            extra = [
                f
                for f in ("endpoint_url", "access_key_id", "secret_access_key")
                if getattr(self, f)
            ]
            if extra:
                raise ValueError(f"{', '.join(extra)} belong to a dynamodb connection, not sql")
        else:
            if self.url:
                raise ValueError("url belongs to a sql connection; give endpoint_url for dynamodb")
            if bool(self.access_key_id) != bool(self.secret_access_key):
                raise ValueError("give access_key_id and secret_access_key together, or neither")
        return self


class Connection(BaseModel):
    """A connection as listed and shown: its secrets masked."""

    name: str
    kind: str
    url: str | None = Field(default=None, description="With the password shown as ***.")
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    has_secret: bool = Field(description="Whether a password or secret key is stored.")
    description: str = ""
    created_at: Timestamp
    updated_at: Timestamp


class ConnectionCredentials(BaseModel):
    """Everything a reader needs, secrets included: what a job's processes fetch."""

    name: str
    kind: str
    url: str | None = None
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None


class ConnectionCheck(BaseModel):
    ok: bool
    message: str
