"""Typed dependencies for routes: the state, one transaction per request, the auth check."""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from naiad.core.errors import Unauthorized
from naiad.server.auth import bearer, token_matches
from naiad.server.state import AppState
from naiad.settings import Settings
from naiad.store.artifacts import ArtifactStore


def get_state(request: Request) -> AppState:
    return request.app.state.naiad


StateDep = Annotated[AppState, Depends(get_state)]


def get_session(state: StateDep) -> Iterator[Session]:
    """Commit when the route returns, before the response is sent; roll back on any error."""
    with state.sessions() as session, session.begin():
        yield session


SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def get_settings(state: StateDep) -> Settings:
    return state.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_artifacts(state: StateDep) -> ArtifactStore:
    return state.artifacts


ArtifactsDep = Annotated[ArtifactStore, Depends(get_artifacts)]


def require_token(request: Request, state: StateDep) -> None:
    if state.token is None:
        return
    presented = bearer(request.headers.get("authorization")) or request.cookies.get("naiad_token")
    if not token_matches(presented, state.token):
        raise Unauthorized(
            "This call needs the server's token: send 'Authorization: Bearer <token>'. "
            "The token is in the admin_token file under the Naiad home."
        )
