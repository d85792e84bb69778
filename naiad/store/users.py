"""Users: create, find, list, change, delete; passwords hashed with argon2id (argon2-cffi).

A password is never stored, logged or answered: only its argon2 hash, whose parameters
travel inside it, so a later library default still checks an older hash.
"""

import re

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from naiad.core.errors import Conflict, InvalidInput, NotFound
from naiad.core.principals import ADMIN, ROLES
from naiad.store.tables import UserRow

MIN_PASSWORD = 8
MAX_PASSWORD = 1024  # argon2 takes any length; a bound keeps a login from being a CPU sink
RESERVED = frozenset({ADMIN, "anonymous", "console", "root", "me", "oidc"})
_NAME = re.compile(r"[a-z0-9][a-z0-9_.\-]{0,62}")
_hasher = PasswordHasher()


def check_user_name(name: str) -> str:
    if not _NAME.fullmatch(name) or ".." in name:
        raise InvalidInput(
            f"User name {name!r} is not valid: use 1-63 lowercase letters, digits, '.', '_' "
            "or '-', starting with a letter or digit."
        )
    if name in RESERVED:
        raise InvalidInput(f"User name {name!r} is reserved; choose another.")
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidInput(f"Role {role!r} is not one of {', '.join(ROLES)}.")
    return role


def check_password(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidInput(
            f"A password needs {MIN_PASSWORD} to {MAX_PASSWORD} characters; this one has "
            f"{len(password)}."
        )
    return password


def hash_password(password: str) -> str:
    return _hasher.hash(check_password(password))


def create(session: Session, name: str, role: str, password: str | None) -> UserRow:
    check_user_name(name)
    check_role(role)
    if session.get(UserRow, name) is not None:
        raise Conflict(f"User {name!r} already exists; change it with `naiad users update`.")
    row = UserRow(
        name=name,
        role=role,
        password_hash=None if password is None else hash_password(password),
        disabled=False,
    )
    session.add(row)
    session.flush()
    return row


def sign_in_external(session: Session, name: str, role: str) -> UserRow | str:
    """The user an identity provider vouched for, made on first sign-in and given the role
    their groups give now; or why they may not sign in. A user with a password here is
    another person who happens to have the name, so they are never taken over."""
    row = session.get(UserRow, name)
    if row is None:
        row = create(session, name, role, None)
    elif row.password_hash is not None:
        return (
            f"A user named {name!r} already signs in with a password on this server, so "
            "the identity provider's user of that name cannot; an admin can rename one."
        )
    elif row.disabled:
        return f"User {name!r} is disabled on this server; ask an admin."
    row.role = check_role(role)
    session.flush()
    return row


def find(session: Session, name: str) -> UserRow | None:
    return session.get(UserRow, name)


def get(session: Session, name: str) -> UserRow:
    row = session.get(UserRow, name)
    if row is None:
        raise NotFound(f"No user {name!r}; list them with `naiad users ls`.")
    return row


def any_exist(session: Session) -> bool:
    return session.scalar(select(UserRow.name).limit(1)) is not None


def listed(session: Session) -> list[UserRow]:
    return list(session.scalars(select(UserRow).order_by(UserRow.name)))


def delete(session: Session, name: str) -> None:
    """Delete the user and their keys; what they created keeps their name as creator."""
    session.delete(get(session, name))
    session.flush()


def authenticate(session: Session, name: str, password: str) -> UserRow | None:
    """The enabled user whose password this is; None otherwise (which part was wrong is
    not told, so a guesser learns nothing about which names exist)."""
    row = session.get(UserRow, name) if _NAME.fullmatch(name) else None
    if row is None or row.password_hash is None or len(password) > MAX_PASSWORD:
        _hasher.hash("spend the same time as a real check")
        return None
    try:
        _hasher.verify(row.password_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    if row.disabled:
        return None
    if _hasher.check_needs_rehash(row.password_hash):
        row.password_hash = _hasher.hash(password)
    return row
