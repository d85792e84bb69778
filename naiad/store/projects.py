"""Projects and their members. ``default`` always exists and needs no row: everyone has a
role in it (their own ``role``), so a server without projects works as before them."""

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from naiad.core.errors import Conflict, InvalidInput, NotFound
from naiad.core.principals import DEFAULT_PROJECT, Role
from naiad.store import users
from naiad.store.tables import (
    EndpointRow,
    ExperimentRow,
    JobRow,
    ModelRow,
    ProjectMemberRow,
    ProjectRow,
    TuningJobRow,
)

_HOLDING = (ExperimentRow, JobRow, TuningJobRow, ModelRow, EndpointRow)


def exists(session: Session, name: str) -> bool:
    return name == DEFAULT_PROJECT or session.get(ProjectRow, name) is not None


def get(session: Session, name: str) -> ProjectRow:
    row = session.get(ProjectRow, name)
    if row is None and name == DEFAULT_PROJECT:
        return ProjectRow(name=DEFAULT_PROJECT, description="Everyone's", created_by=None)
    if row is None:
        raise NotFound(f"No project {name!r}; list them with `naiad projects ls`.")
    return row


def create(session: Session, name: str, description: str) -> ProjectRow:
    if not _valid(name):
        raise InvalidInput(
            f"Project name {name!r} is not valid: use 1-63 lowercase letters, digits, '.', "
            "'_' or '-', starting with a letter or digit."
        )
    if exists(session, name):
        raise Conflict(f"Project {name!r} already exists.")
    row = ProjectRow(name=name, description=description)
    session.add(row)
    session.flush()
    return row


def _valid(name: str) -> bool:
    try:
        users.check_user_name(name)
    except InvalidInput:
        return False
    return True


def listed(session: Session, visible: set[str] | None) -> list[ProjectRow]:
    rows = {r.name: r for r in session.scalars(select(ProjectRow))}
    rows.setdefault(DEFAULT_PROJECT, get(session, DEFAULT_PROJECT))
    shown = [r for n, r in rows.items() if visible is None or n in visible]
    return sorted(shown, key=lambda r: (r.name != DEFAULT_PROJECT, r.name))


def delete(session: Session, name: str) -> None:
    """Delete an empty project (its members go with it)."""
    if name == DEFAULT_PROJECT:
        raise Conflict("The default project cannot be deleted.")
    row = get(session, name)
    for table in _HOLDING:
        count = session.scalar(select(func.count()).where(table.project == name)) or 0
        if count:
            raise Conflict(
                f"Project {name!r} still holds {count} {table.__tablename__.replace('_', ' ')}; "
                "delete or move them first."
            )
    session.delete(row)
    session.flush()


def members(session: Session, name: str) -> list[ProjectMemberRow]:
    query = select(ProjectMemberRow).where(ProjectMemberRow.project == name)
    return list(session.scalars(query.order_by(ProjectMemberRow.user_name)))


def set_member(session: Session, name: str, user: str, role: str) -> ProjectMemberRow:
    if name == DEFAULT_PROJECT:
        raise InvalidInput(
            "A user's role in the default project is their own role: "
            f"`naiad users update {user} --role {role}`."
        )
    get(session, name)
    users.get(session, user)
    users.check_role(role)
    row = session.get(ProjectMemberRow, (name, user))
    if row is None:
        row = ProjectMemberRow(project=name, user_name=user, role=role)
        session.add(row)
    row.role = role
    session.flush()
    return row


def remove_member(session: Session, name: str, user: str) -> None:
    row = session.get(ProjectMemberRow, (name, user))
    if row is None:
        raise NotFound(f"User {user!r} has no role in project {name!r}.")
    session.delete(row)
    session.flush()


def roles_of(session: Session, user: str) -> tuple[tuple[str, Role], ...]:
    """The user's roles in projects besides ``default``."""
    query = select(ProjectMemberRow.project, ProjectMemberRow.role)
    rows = session.execute(query.where(ProjectMemberRow.user_name == user)).all()
    return tuple((project, role) for project, role in rows)  # type: ignore[misc]
