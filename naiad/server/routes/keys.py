"""/api/v1/keys: keys for Naiad's API and the AWS-compatible APIs (SageMaker, S3) on this URL.

A user manages their own keys; an admin manages everyone's. An issued key's secret is
answered once, when it is created; listing never shows it, and the server stores none
(``core.api_keys``). The admin's pair is not stored either: it is derived from the admin
token (see ``compat.keys``).
"""

from datetime import timedelta

from fastapi import APIRouter, Request, Response, status

from naiad.core import api_keys
from naiad.core.errors import Conflict, Forbidden, NotFound
from naiad.schemas.keys import AccessKey, AccessKeyCreate, AccessKeyIssued, AdminKey
from naiad.server.compat.keys import admin_pair
from naiad.server.deps import SessionDep, StateDep, principal_of
from naiad.server.permissions import refusal
from naiad.store import access_keys, users
from naiad.store.tables import AccessKeyRow, utcnow

router = APIRouter(prefix="/keys", tags=["keys"])

NO_AUTH = (
    "This server runs without authentication (NAIAD_AUTH=false), so it has no keys: its "
    "AWS-compatible APIs accept a request signed with any access key and secret."
)


def listed(row: AccessKeyRow) -> AccessKey:
    return AccessKey(
        access_key_id=row.access_key_id,
        description=row.description,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        user=row.user_name,
        read_only=row.read_only,
        expires_at=row.expires_at,
    )


def issued(row: AccessKeyRow, key: bytes) -> AccessKeyIssued:
    secret = access_keys.secret(row, key)
    return AccessKeyIssued(
        **listed(row).model_dump(),
        secret_access_key=secret,
        token=api_keys.bearer(row.access_key_id, secret),
    )


@router.post("", status_code=status.HTTP_201_CREATED)
def create_key(
    body: AccessKeyCreate, session: SessionDep, state: StateDep, request: Request
) -> AccessKeyIssued:
    """Issue a key; the answer holds its secret and Bearer token, never shown again.

    Without ``user`` the key is the caller's own (the admin token's: a key that acts as
    the admin). A read-only key issues only read-only keys.
    """
    if state.key_key is None:
        raise Conflict(NO_AUTH)
    me = principal_of(request)
    owner = body.user if body.user is not None else (me.name if me.is_user else None)
    if owner != (me.name if me.is_user else None) and not me.server_admin:
        raise refusal(me, "admin", "Issuing a key for another user")
    if me.read_only and not body.read_only:
        raise Forbidden("A read-only key issues only read-only keys; send read_only: true.")
    if owner is not None:
        users.get(session, owner)
    expires = None if body.expires_in_days is None else utcnow() + timedelta(body.expires_in_days)
    row = access_keys.issue(session, owner, body.description, body.read_only, expires)
    return issued(row, state.key_key)


@router.get("")
def list_keys(session: SessionDep, request: Request, user: str | None = None) -> list[AccessKey]:
    """Keys, oldest first, without their secrets: a user's own; an admin's view is every
    key (or ``user``'s). The admin token's derived pair is not listed."""
    me = principal_of(request)
    if me.is_user and not me.server_admin:
        if user not in (None, me.name):
            raise refusal(me, "admin", "Listing another user's keys")
        user = me.name
    return [listed(row) for row in access_keys.listed(session, user)]


@router.get("/admin")
def admin_key(state: StateDep) -> AdminKey:
    """The admin's pair, derived from the admin token; 409 on a server without auth."""
    if state.token is None:
        raise Conflict(NO_AUTH)
    key_id, secret = admin_pair(state.token)
    return AdminKey(access_key_id=key_id, secret_access_key=secret)


@router.delete("/{access_key_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_key(
    access_key_id: str, session: SessionDep, state: StateDep, request: Request
) -> Response:
    """Revoke a key: requests it signs are refused from now on."""
    if state.token is not None and access_key_id == admin_pair(state.token)[0]:
        raise Conflict(
            "The admin's access key is derived from the admin token and cannot be deleted; "
            "it changes only with the token (delete admin_token under the Naiad home and "
            "restart the server)."
        )
    me = principal_of(request)
    row = access_keys.find(session, access_key_id)
    if row is not None and me.is_user and row.user_name != me.name and not me.server_admin:
        row = None  # another's key: say nothing of whether it exists
    if row is None or row.kind != "key":
        raise NotFound(f"No access key {access_key_id!r}; list yours with `naiad keys ls`.")
    access_keys.revoke(session, access_key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
