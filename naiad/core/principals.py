"""Who is making a request: the admin token's holder, a user (by key or console session), or
a job (by its own token); and their role.

The server's access layer names the principal once per request; what the request creates
records its ``name`` as creator (``created_by``) through ``acting``, a context variable,
so no route or store function has to pass it along.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Literal

Role = Literal["viewer", "editor", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "editor", "admin")  # each may do what the ones before may
ADMIN = "admin"  # the admin token's holder (and keys issued before users existed)


@dataclass(frozen=True)
class Principal:
    name: str  # a user's name, "admin", or "job:NAME"
    role: Role
    read_only: bool = False  # a read-only key: a viewer, whatever its user's role
    key: str | None = None  # the access key id it signed with, if any

    @property
    def is_user(self) -> bool:
        return self.name != ADMIN and not self.name.startswith("job:")

    def may(self, role: Role) -> bool:
        """Whether this principal holds ``role`` or a stronger one."""
        mine = "viewer" if self.read_only else self.role
        return ROLES.index(mine) >= ROLES.index(role)


ADMIN_PRINCIPAL = Principal(ADMIN, "admin")

_current: ContextVar[Principal | None] = ContextVar("naiad_principal", default=None)


def current() -> Principal | None:
    return _current.get()


def creator() -> str | None:
    """The name a row made now records as its creator: None outside a request."""
    principal = _current.get()
    return None if principal is None else principal.name


def set_current(principal: Principal | None) -> None:
    """Name the principal for the rest of this request's context (the access layer's call)."""
    _current.set(principal)


@contextmanager
def acting(name: str | None) -> Iterator[None]:
    """Record ``name`` as the creator of what is made inside (the controller acting for the
    one who asked, e.g. a tuning job's trials)."""
    token = _current.set(None if name is None else Principal(name, "admin"))
    try:
        yield
    finally:
        _current.reset(token)
