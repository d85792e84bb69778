"""User wire models: who may sign in, with which role; a password travels only inward."""

from typing import Literal

from pydantic import BaseModel, Field

from naiad.schemas.common import Text, Timestamp, Wire

RoleName = Literal["viewer", "editor", "admin"]
Password = Text  # checked for length by the store; never answered, never logged


class UserCreate(Wire):
    name: str = Field(max_length=63, description="Lowercase letters, digits, '.', '_', '-'.")
    role: RoleName = Field(default="viewer", description="viewer, editor or admin.")
    password: Password | None = Field(
        default=None,
        max_length=1024,
        description="8 or more characters; without one the user signs in only with keys.",
    )


class UserUpdate(Wire):
    role: RoleName | None = None
    disabled: bool | None = Field(
        default=None, description="A disabled user's keys and sessions are refused at once."
    )
    password: Password | None = Field(default=None, max_length=1024)


class PasswordChange(Wire):
    current: Password = Field(max_length=1024)
    new: Password = Field(max_length=1024)


class User(BaseModel):
    name: str
    role: RoleName
    disabled: bool
    has_password: bool
    created_at: Timestamp
    created_by: str | None


class Me(BaseModel):
    """Who the credentials of this request act for."""

    name: str = Field(description="A user's name, or admin for the admin token.")
    role: RoleName
    read_only: bool = Field(description="A read-only key: a viewer, whatever the role.")
    user: bool = Field(description="False for the admin token (the home's owner).")
    projects: dict[str, RoleName] = Field(
        default_factory=dict,
        description="Roles in projects besides default (an admin holds admin in every one).",
    )


class Login(Wire):
    user: str = Field(max_length=63)
    password: Password = Field(max_length=1024)
    description: Text = Field(default="", max_length=200)
    expires_in_days: float | None = Field(
        default=90, gt=0, le=3650, description="The key lasts this long; None: until revoked."
    )
    read_only: bool = False


class LoginIssued(BaseModel):
    """A key issued by signing in: ``token`` is what NAIAD_TOKEN (or the credentials file)
    holds; the same key signs AWS requests as access key id and secret."""

    user: str
    role: RoleName
    token: str
    access_key_id: str
    secret_access_key: str
    expires_at: Timestamp | None
