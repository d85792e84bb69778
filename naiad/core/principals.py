"""Who is making a request: the admin token's holder, a user (by key or console session), or
a job (by its own token); their role in each project; and the project the request works in.

A user's ``role`` is theirs in the ``default`` project (an ``admin`` there administers the
server, every project included); ``projects`` adds their roles in other projects.

The server's access layer names the principal and the project (the ``X-Naiad-Project``
header) once per request, in context variables: what the request creates records them
(``created_by``, ``project``) without any route or store function passing them along.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Literal

from naiad.core.errors import Forbidden

Role = Literal["viewer", "editor", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "editor", "admin")  # each may do what the ones before may
ADMIN = "admin"  # the admin token's holder (and keys issued before users existed)
DEFAULT_PROJECT = "default"
PROJECT_HEADER = "x-naiad-project"


@dataclass(frozen=True)
class Principal:
    name: str  # a user's name, "admin", or "job:NAME"
    role: Role
    read_only: bool = False  # a read-only key: a viewer, whatever its user's role
    key: str | None = None  # the access key id it signed with, if any
    projects: tuple[tuple[str, Role], ...] = ()  # roles in projects besides "default"

    @property
    def is_user(self) -> bool:
        return self.name != ADMIN and not self.name.startswith("job:")

    @property
    def sees_all(self) -> bool:
        """The admin token, or a server admin: every project is theirs."""
        return self.name == ADMIN or (self.is_user and self.role == "admin")

    def role_in(self, project: str) -> Role | None:
        """This principal's role in ``project`` (a read-only key's is viewer at most)."""
        if self.sees_all:
            role: Role | None = "admin"
        elif project == DEFAULT_PROJECT:
            role = self.role
        else:
            role = dict(self.projects).get(project)
        return "viewer" if role is not None and self.read_only else role

    def may(self, role: Role) -> bool:
        """Whether this principal holds ``role`` or a stronger one in some project."""
        best = max([self.role, *(r for _, r in self.projects)], key=ROLES.index)
        mine = "viewer" if self.read_only else best
        return ROLES.index(mine) >= ROLES.index(role)

    @property
    def server_admin(self) -> bool:
        """An admin of the default project, who administers the server: users, keys, the
        audit log, every project (an admin of another project is not one)."""
        return self.may_in(DEFAULT_PROJECT, "admin")

    def may_in(self, project: str, role: Role) -> bool:
        held = self.role_in(project)
        return held is not None and ROLES.index(held) >= ROLES.index(role)

    def visible(self) -> set[str] | None:
        """The projects whose objects this principal may read; None for all."""
        if self.sees_all:
            return None
        return {DEFAULT_PROJECT, *(p for p, _ in self.projects)}


ADMIN_PRINCIPAL = Principal(ADMIN, "admin")

_current: ContextVar[Principal | None] = ContextVar("naiad_principal", default=None)
_project: ContextVar[str] = ContextVar("naiad_project", default=DEFAULT_PROJECT)


def current() -> Principal | None:
    return _current.get()


def creator() -> str | None:
    """The name a row made now records as its creator: None outside a request."""
    principal = _current.get()
    return None if principal is None else principal.name


def project() -> str:
    """The project this request works in: where what it creates goes."""
    return _project.get()


def set_current(principal: Principal | None, project: str = DEFAULT_PROJECT) -> None:
    """Name the principal and project for the rest of this request's context (the access
    layer's call)."""
    _current.set(principal)
    _project.set(project)


def require(project: str, role: Role, what: str) -> None:
    """Refuse ``what`` unless this request's principal holds ``role`` in ``project`` (a
    check for what a request names in its body, such as a run's experiment)."""
    principal = _current.get()
    if principal is not None and not principal.may_in(project, role):
        raise project_refusal(principal, project, role, what)


def project_refusal(principal: Principal, project: str, role: Role, what: str) -> Forbidden:
    held = principal.role_in(project)
    has = f"whose role there is {held}" if held else "who has no role there"
    return Forbidden(
        f"{what} needs the {role} role in project {project!r}; this request comes from "
        f"{principal.name!r}, {has} (an admin grants it: `naiad projects add-member "
        f"{project} {principal.name} --role {role}`)."
    )


@contextmanager
def acting(name: str | None, in_project: str = DEFAULT_PROJECT) -> Iterator[None]:
    """Record ``name`` as the creator, and ``in_project`` as the project, of what is made
    inside (the controller acting for the one who asked, e.g. a tuning job's trials)."""
    token = _current.set(None if name is None else Principal(name, "admin"))
    where = _project.set(in_project)
    try:
        yield
    finally:
        _current.reset(token)
        _project.reset(where)
