"""Named connections: create or replace, list, read (masked or whole), delete."""

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from naiad.core.errors import Conflict, NotFound
from naiad.schemas.connections import Connection, ConnectionCreate, ConnectionCredentials
from naiad.store.tables import ConnectionRow

_SETTINGS = ("url", "endpoint_url", "region", "access_key_id", "secret_access_key")


def create(session: Session, body: ConnectionCreate, replace: bool = False) -> ConnectionRow:
    row = session.get(ConnectionRow, body.name)
    settings = {key: getattr(body, key) for key in _SETTINGS if getattr(body, key)}
    if row is not None and not replace:
        raise Conflict(
            f"A connection named {body.name!r} exists; pass replace (`--replace` on the "
            "command line) to change its settings."
        )
    if row is None:
        row = ConnectionRow(name=body.name, kind=body.kind, settings=settings)
        session.add(row)
    row.kind, row.settings, row.description = body.kind, settings, body.description
    session.flush()
    return row


def get(session: Session, name: str) -> ConnectionRow:
    row = session.get(ConnectionRow, name)
    if row is None:
        have = ", ".join(r.name for r in listed(session)[:20]) or "none"
        raise NotFound(
            f"No connection named {name!r} (the server has: {have}); create it with "
            "`naiad connections create`."
        )
    return row


def listed(session: Session) -> list[ConnectionRow]:
    return list(session.scalars(select(ConnectionRow).order_by(ConnectionRow.name)))


def delete(session: Session, name: str) -> None:
    session.delete(get(session, name))
    session.flush()


def masked_url(url: str | None) -> str | None:
    """The URL with its password as ***, as SQLAlchemy renders it for logs."""
    if not url:
        return url
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not parseable: show nothing of it
        return "***"


def shown(row: ConnectionRow) -> Connection:
    s: dict[str, Any] = row.settings
    return Connection(
        name=row.name,
        kind=row.kind,
        url=masked_url(s.get("url")),
        endpoint_url=s.get("endpoint_url"),
        region=s.get("region"),
        access_key_id=s.get("access_key_id"),
        has_secret=bool(s.get("secret_access_key") or _password(s.get("url"))),
        description=row.description,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _password(url: str | None) -> str | None:
    if not url:
        return None
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).password
    except Exception:
        return None


def credentials(row: ConnectionRow) -> ConnectionCredentials:
    return ConnectionCredentials(name=row.name, kind=row.kind, **row.settings)
