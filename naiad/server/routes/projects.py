"""/api/v1/projects: projects and who holds which role in each (admins manage them; anyone
lists those they have a role in). Requests pick their project with ``X-Naiad-Project``."""

from fastapi import APIRouter, Request, Response, status

from naiad.schemas.projects import Member, MemberSet, Project, ProjectCreate
from naiad.server.deps import SessionDep, principal_of
from naiad.store import projects
from naiad.store.tables import ProjectRow

router = APIRouter(prefix="/projects", tags=["projects"])


def _shown(row: ProjectRow, request: Request) -> Project:
    return Project(
        name=row.name,
        description=row.description,
        created_at=row.created_at,
        created_by=row.created_by,
        role=principal_of(request).role_in(row.name),
    )


@router.get("")
def list_projects(session: SessionDep, request: Request) -> list[Project]:
    """The projects you hold a role in (an admin: all), default first."""
    visible = principal_of(request).visible()
    return [_shown(row, request) for row in projects.listed(session, visible)]


@router.post("", status_code=status.HTTP_201_CREATED)
def create_project(body: ProjectCreate, session: SessionDep, request: Request) -> Project:
    return _shown(projects.create(session, body.name, body.description), request)


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
def delete_project(name: str, session: SessionDep) -> Response:
    """Delete an empty project (409 while it holds anything)."""
    projects.delete(session, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{name}/members")
def list_members(name: str, session: SessionDep) -> list[Member]:
    projects.get(session, name)
    return [Member(user=m.user_name, role=m.role) for m in projects.members(session, name)]  # type: ignore[arg-type]


@router.put("/{name}/members/{user}")
def set_member(name: str, user: str, body: MemberSet, session: SessionDep) -> Member:
    """Give ``user`` ``role`` in the project (or change it); at once for their keys."""
    row = projects.set_member(session, name, user, body.role)
    return Member(user=row.user_name, role=body.role)


@router.delete("/{name}/members/{user}", status_code=status.HTTP_204_NO_CONTENT)
def remove_member(name: str, user: str, session: SessionDep) -> Response:
    projects.remove_member(session, name, user)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
