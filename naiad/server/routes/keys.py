"""/api/v1/keys: access key pairs for the AWS-compatible APIs (SageMaker, S3) on this URL.

An issued key's secret is answered once, when it is created; listing never shows it. The
admin's pair is not stored: it is derived from the admin token (see ``compat.keys``).
"""

from fastapi import APIRouter, Response, status

from naiad.core.errors import Conflict
from naiad.schemas.keys import AccessKey, AccessKeyCreate, AccessKeyIssued, AdminKey
from naiad.server.compat.keys import admin_pair
from naiad.server.deps import SessionDep, StateDep
from naiad.store import access_keys
from naiad.store.tables import AccessKeyRow

router = APIRouter(prefix="/keys", tags=["keys"])

NO_AUTH = (
    "This server runs without authentication (NAIAD_AUTH=false), so it has no admin key: "
    "its AWS-compatible APIs accept a request signed with any access key and secret."
)


def _listed(row: AccessKeyRow) -> AccessKey:
    return AccessKey(
        access_key_id=row.access_key_id,
        description=row.description,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
    )


@router.post("", status_code=status.HTTP_201_CREATED)
def create_key(body: AccessKeyCreate, session: SessionDep) -> AccessKeyIssued:
    """Issue a pair; the answer holds its secret, which is never shown again."""
    row = access_keys.issue(session, body.description)
    return AccessKeyIssued(**_listed(row).model_dump(), secret_access_key=row.secret)


@router.get("")
def list_keys(session: SessionDep) -> list[AccessKey]:
    """Issued keys, oldest first, without their secrets (the admin's pair is not listed)."""
    return [_listed(row) for row in access_keys.listed(session)]


@router.get("/admin")
def admin_key(state: StateDep) -> AdminKey:
    """The admin's pair, derived from the admin token; 409 on a server without auth."""
    if state.token is None:
        raise Conflict(NO_AUTH)
    key_id, secret = admin_pair(state.token)
    return AdminKey(access_key_id=key_id, secret_access_key=secret)


@router.delete("/{access_key_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_key(access_key_id: str, session: SessionDep, state: StateDep) -> Response:
    """Revoke a key: requests it signs are refused within seconds."""
    if state.token is not None and access_key_id == admin_pair(state.token)[0]:
        raise Conflict(
            "The admin's access key is derived from the admin token and cannot be deleted; "
            "it changes only with the token (delete admin_token under the Naiad home and "
            "restart the server)."
        )
    access_keys.revoke(session, access_key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
