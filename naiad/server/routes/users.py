"""/api/v1/users: who may sign in and with which role (admins), ``/users/me`` (anyone: who
am I, change my password), and /api/v1/login, which trades a password for a key.

The home's admin token keeps working beside users: it is the machine owner's and scripts'.
"""

from datetime import timedelta

from fastapi import APIRouter, Request, Response, status

from naiad.core.errors import Conflict, Forbidden, Unauthorized
from naiad.core.principals import ROLES
from naiad.schemas.keys import AccessKeyIssued
from naiad.schemas.users import Login, LoginIssued, Me, PasswordChange, User, UserCreate, UserUpdate
from naiad.server.audit import note_actor
from naiad.server.deps import SessionDep, StateDep, principal_of
from naiad.server.routes.keys import NO_AUTH, issued
from naiad.store import access_keys, users
from naiad.store.tables import UserRow, utcnow

router = APIRouter(tags=["users"])
login_router = APIRouter(tags=["users"])  # public: outside the token check

WRONG_PASSWORD = "That user name and password do not match an enabled user on this server."


def shown(row: UserRow) -> User:
    return User(
        name=row.name,
        role=row.role,  # type: ignore[arg-type]  # checked on write
        disabled=row.disabled,
        has_password=row.password_hash is not None,
        created_at=row.created_at,
        created_by=row.created_by,
    )


@router.post("/users", status_code=status.HTTP_201_CREATED)
def create_user(body: UserCreate, session: SessionDep) -> User:
    """Add a user (409 if the name is taken)."""
    return shown(users.create(session, body.name, body.role, body.password))


@router.get("/users")
def list_users(session: SessionDep) -> list[User]:
    return [shown(row) for row in users.listed(session)]


@router.get("/users/me")
def me(request: Request) -> Me:
    """Who this request's credentials act for, and their role (the console asks this)."""
    who = principal_of(request)
    return Me(
        name=who.name,
        role=who.role,
        read_only=who.read_only,
        user=who.is_user,
        projects=dict(who.projects),
    )


@router.patch("/users/me", status_code=status.HTTP_204_NO_CONTENT)
def change_my_password(body: PasswordChange, session: SessionDep, request: Request) -> Response:
    """Change your own password (the current one is asked again)."""
    who = principal_of(request)
    if not who.is_user:
        raise Conflict("The admin token has no password; users change theirs here.")
    if who.read_only:
        raise Forbidden("A read-only key cannot change its user's password.")
    if users.authenticate(session, who.name, body.current) is None:
        raise Forbidden("The current password is not right; nothing was changed.")
    users.get(session, who.name).password_hash = users.hash_password(body.new)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/users/{name}")
def get_user(name: str, session: SessionDep) -> User:
    return shown(users.get(session, name))


@router.patch("/users/{name}")
def update_user(name: str, body: UserUpdate, session: SessionDep, request: Request) -> User:
    """Change a user's role, password, or whether they may sign in."""
    row = users.get(session, name)
    who = principal_of(request)
    if who.name == name and (body.disabled or (body.role and body.role != "admin")):
        raise Conflict("You cannot disable yourself or give up your own admin role; ask another "
                       "admin, or use the admin token.")  # fmt: skip
    if body.role is not None:
        row.role = users.check_role(body.role)
    if body.disabled is not None:
        row.disabled = body.disabled
    if body.password is not None:
        row.password_hash = users.hash_password(body.password)
    session.flush()
    return shown(row)


@router.delete("/users/{name}", status_code=status.HTTP_204_NO_CONTENT)
def delete_user(name: str, session: SessionDep, request: Request) -> Response:
    """Delete a user and every key of theirs; what they created keeps their name."""
    if principal_of(request).name == name:
        raise Conflict("You cannot delete yourself; ask another admin, or use the admin token.")
    users.delete(session, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@login_router.post("/login", status_code=status.HTTP_201_CREATED)
def login(body: Login, session: SessionDep, state: StateDep, request: Request) -> LoginIssued:
    """Trade a user's password for a new key (what `naiad login` stores)."""
    if state.key_key is None:
        raise Conflict(NO_AUTH)
    address = request.client.host if request.client else ""
    row = state.sign_ins.attempt(
        body.user, address, lambda: users.authenticate(session, body.user, body.password)
    )
    if row is None:
        raise Unauthorized(WRONG_PASSWORD)
    note_actor(request.scope, f"user:{row.name}")
    days = body.expires_in_days
    expires = None if days is None else utcnow() + timedelta(days)
    description = body.description or "naiad login"
    key = access_keys.issue(session, row.name, description, body.read_only, expires)
    answer: AccessKeyIssued = issued(key, state.key_key)
    return LoginIssued(
        user=row.name,
        role=row.role if row.role in ROLES else "viewer",
        token=answer.token,
        access_key_id=answer.access_key_id,
        secret_access_key=answer.secret_access_key,
        expires_at=answer.expires_at,
    )
