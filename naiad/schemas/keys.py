"""Key wire models. One key is a Bearer token for Naiad's API and an access key pair for
the AWS-compatible APIs (SigV4). Its secret travels once, when it is issued
(``AccessKeyIssued``); the admin's pair on request (``AdminKey``), derived from the admin
token.
"""

from pydantic import BaseModel, Field

from naiad.schemas.common import Text, Timestamp, Wire


class AccessKeyCreate(Wire):
    description: Text = Field(
        default="", max_length=200, description="Who or what uses the key, for `naiad keys ls`."
    )
    read_only: bool = Field(default=False, description="The key only reads, whatever the role.")
    expires_in_days: float | None = Field(
        default=None, gt=0, le=3650, description="The key stops working after this long."
    )
    user: str | None = Field(
        default=None,
        max_length=63,
        description="Whose key (an admin's choice); by default the caller's own.",
    )


class AccessKey(BaseModel):
    """An issued key as listed: never its secret."""

    access_key_id: str
    description: str
    created_at: Timestamp
    last_used_at: Timestamp | None = Field(
        default=None, description="The last signed request, to the minute; None if never used."
    )
    user: str | None = Field(default=None, description="Whose key; None: the admin's own.")
    read_only: bool = False
    expires_at: Timestamp | None = None


class AccessKeyIssued(AccessKey):
    """A key just issued, with the secret: shown this once, never again."""

    secret_access_key: str
    token: str = Field(description="The Bearer token for Naiad's API (NAIAD_TOKEN).")


class AdminKey(BaseModel):
    """The admin's pair, derived from the admin token: the same while the token is."""

    access_key_id: str
    secret_access_key: str
