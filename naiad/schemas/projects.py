"""Project wire models: a project groups experiments (with their runs), jobs, tuning jobs,
models and endpoints; a user's role is held per project."""

from pydantic import BaseModel, Field

from naiad.schemas.common import Text, Timestamp, Wire
from naiad.schemas.users import RoleName


class ProjectCreate(Wire):
    name: str = Field(max_length=63, description="Lowercase letters, digits, '.', '_', '-'.")
    description: Text = Field(default="", max_length=2000)


class Project(BaseModel):
    name: str
    description: str
    created_at: Timestamp | None = Field(default=None, description="None for default.")
    created_by: str | None = None
    role: RoleName | None = Field(default=None, description="Your role in it.")


class MemberSet(Wire):
    role: RoleName


class Member(BaseModel):
    user: str
    role: RoleName
