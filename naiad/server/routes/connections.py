"""/api/v1/connections: named credentials for SQL and DynamoDB input channels.

Listing and showing mask the secrets; ``/credentials`` answers them whole, to the admin,
and to a job's supervisor and processes for the connections its channels name (with the
job's own token).
"""

from fastapi import APIRouter, Request, Response, status

from naiad.core.errors import Forbidden
from naiad.schemas.connections import (
    Connection,
    ConnectionCheck,
    ConnectionCreate,
    ConnectionCredentials,
)
from naiad.server.deps import SessionDep, job_claims
from naiad.services.jobs import connections_of
from naiad.store import connections, jobs

router = APIRouter(prefix="/connections", tags=["connections"])


@router.post("", status_code=status.HTTP_201_CREATED)
def create_connection(
    body: ConnectionCreate, session: SessionDep, replace: bool = False
) -> Connection:
    """Store a connection (409 if the name is taken, unless ``replace``)."""
    return connections.shown(connections.create(session, body, replace))


@router.get("")
def list_connections(session: SessionDep) -> list[Connection]:
    return [connections.shown(row) for row in connections.listed(session)]


@router.get("/{name}")
def get_connection(name: str, session: SessionDep) -> Connection:
    return connections.shown(connections.get(session, name))


@router.get("/{name}/credentials")
def get_credentials(name: str, session: SessionDep, request: Request) -> ConnectionCredentials:
    """The connection whole, secrets included: what a job opens its channel with."""
    claims = job_claims(request)
    if claims is not None and name not in connections_of(jobs.get_row(session, claims.job).spec):
        raise Forbidden(
            f"The token of job {claims.job!r} reads only the connections its channels name; "
            f"{name!r} is not one of them."
        )
    return connections.credentials(connections.get(session, name))


@router.post("/{name}/check")
def check(name: str, session: SessionDep) -> ConnectionCheck:
    """Reach the service once with the stored credentials; says what answered or why not."""
    from naiad.data.sources import DataSourceError, check_connection  # pyarrow: lazily

    row = connections.get(session, name)
    creds = connections.credentials(row).model_dump()
    try:
        message = check_connection(name, row.kind, creds)
    except DataSourceError as exc:
        return ConnectionCheck(ok=False, message=exc.message)
    return ConnectionCheck(ok=True, message=message)


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
def delete_connection(name: str, session: SessionDep) -> Response:
    """Forget a connection; jobs that name it fail at staging with its name."""
    connections.delete(session, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
