"""Access key pairs for the AWS-compatible APIs: issue, list, find, revoke."""

import secrets
import string

from sqlalchemy import select
from sqlalchemy.orm import Session

from naiad.core.errors import NotFound
from naiad.store.tables import AccessKeyRow, utcnow

_ID_ALPHABET = string.ascii_uppercase + string.digits


def issue(session: Session, description: str = "") -> AccessKeyRow:
    """A new pair: an id shaped like AWS's (20 characters, ``NK`` first) and a 40-character
    secret, as boto3 and the AWS config files expect them."""
    row = AccessKeyRow(
        access_key_id="NK" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(18)),
        secret=secrets.token_urlsafe(30)[:40],
        description=description,
    )
    session.add(row)
    session.flush()
    return row


def listed(session: Session) -> list[AccessKeyRow]:
    return list(session.scalars(select(AccessKeyRow).order_by(AccessKeyRow.created_at)))


def find(session: Session, access_key_id: str) -> AccessKeyRow | None:
    return session.get(AccessKeyRow, access_key_id)


def touch(session: Session, row: AccessKeyRow) -> None:
    """Record a use of the key (its caller keeps this to about once a minute)."""
    row.last_used_at = utcnow()


def revoke(session: Session, access_key_id: str) -> None:
    row = find(session, access_key_id)
    if row is None:
        raise NotFound(f"No access key {access_key_id!r}; list them with `naiad keys ls`.")
    session.delete(row)
    session.flush()
