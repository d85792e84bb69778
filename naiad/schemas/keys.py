"""Access key wire models: the pairs that sign requests to the AWS-compatible APIs (SigV4).

A secret travels twice at most: once when a key is issued (``AccessKeyIssued``), and on
request for the admin's pair (``AdminKey``), which is derived from the admin token.
"""

from pydantic import BaseModel, Field

from naiad.schemas.common import Text, Timestamp, Wire


class AccessKeyCreate(Wire):
    description: Text = Field(
        default="", max_length=200, description="Who or what uses the key, for `naiad keys ls`."
    )


class AccessKey(BaseModel):
    """An issued key as listed: never its secret."""

    access_key_id: str
    description: str
    created_at: Timestamp
    last_used_at: Timestamp | None = Field(
        default=None, description="The last signed request, to the minute; None if never used."
    )


class AccessKeyIssued(AccessKey):
    """A key just issued, with the secret: shown this once, never again."""

    secret_access_key: str


class AdminKey(BaseModel):
    """The admin's pair, derived from the admin token: the same while the token is."""

    access_key_id: str
    secret_access_key: str
