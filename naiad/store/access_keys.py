"""Keys: users' API keys (which are also access key pairs for the AWS-compatible APIs),
console sessions, and the pairs issued before users existed. Issue, list, find, revoke.

A user's key stores no secret (``core.api_keys`` derives it from the id). Whether a key
still works is judged on every request from its row: revoked (deleted), expired, or its
user disabled or deleted, it is refused at once.
"""

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from naiad.core import api_keys
from naiad.core.errors import NotFound
from naiad.core.principals import ADMIN_PRINCIPAL, Principal, Role
from naiad.store import projects
from naiad.store.tables import AccessKeyRow, UserRow, utcnow

SESSION = "session"  # a console sign-in: listed apart, revoked by signing out


def issue(
    session: Session,
    user: str | None,
    description: str = "",
    read_only: bool = False,
    expires_at: datetime | None = None,
    kind: str = "key",
) -> AccessKeyRow:
    row = AccessKeyRow(
        access_key_id=api_keys.new_id(),
        secret=None,
        description=description,
        user_name=user,
        read_only=read_only,
        expires_at=expires_at,
        kind=kind,
    )
    session.add(row)
    session.flush()
    return row


def listed(session: Session, user: str | None = None, kind: str = "key") -> list[AccessKeyRow]:
    """Keys of ``kind``, oldest first: one user's, or everyone's when ``user`` is None."""
    query = select(AccessKeyRow).where(AccessKeyRow.kind == kind)
    if user is not None:
        query = query.where(AccessKeyRow.user_name == user)
    return list(session.scalars(query.order_by(AccessKeyRow.created_at)))


def drop_expired(session: Session, user: str) -> None:
    """Delete the user's keys and sessions that have expired (they only fill the table)."""
    query = delete(AccessKeyRow).where(
        AccessKeyRow.user_name == user, AccessKeyRow.expires_at <= utcnow()
    )
    session.execute(query)


def find(session: Session, access_key_id: str) -> AccessKeyRow | None:
    return session.get(AccessKeyRow, access_key_id)


def secret(row: AccessKeyRow, key: bytes) -> str:
    """The key's secret: derived, or as stored for a pair issued before users existed."""
    return row.secret or api_keys.secret_of(key, row.access_key_id)


def principal(session: Session, row: AccessKeyRow, now: datetime) -> Principal | None:
    """Whom the key acts for, or None when it no longer works (expired, user disabled)."""
    if row.expires_at is not None and _aware(row.expires_at) <= now:
        return None
    if row.user_name is None:  # the admin's own (``naiad keys create`` with the admin token)
        return ADMIN_PRINCIPAL
    user = session.get(UserRow, row.user_name)
    if user is None or user.disabled:
        return None
    role: Role = user.role  # type: ignore[assignment]  # checked on write
    return Principal(
        user.name,
        role,
        read_only=row.read_only,
        key=row.access_key_id,
        projects=projects.roles_of(session, user.name),
    )


def _aware(when: datetime) -> datetime:
    """SQLite hands timestamps back without their zone; they were written in UTC."""
    return when if when.tzinfo is not None else when.replace(tzinfo=utcnow().tzinfo)


def touch(session: Session, row: AccessKeyRow) -> None:
    """Record a use of the key (its caller keeps this to about once a minute)."""
    row.last_used_at = utcnow()


def revoke(session: Session, access_key_id: str) -> None:
    row = find(session, access_key_id)
    if row is None:
        raise NotFound(f"No access key {access_key_id!r}; list them with `naiad keys ls`.")
    session.delete(row)
    session.flush()
