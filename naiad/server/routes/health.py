"""Liveness: the one route that needs no token, so supervisors and load balancers can poll it."""

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from naiad import __version__
from naiad.server.deps import StateDep

router = APIRouter(tags=["health"])


@router.get("/health")
def health(state: StateDep) -> JSONResponse:
    """``warm_start``: whether the next job would start with torch already imported.

    ``home``: the random id of the Naiad home this server keeps, so a client finds its own
    server rather than another user's on the same port. 503 once the home is lost.
    """
    warm = state.executor.warm_ready()
    body: dict[str, str | bool] = {
        "status": "ok",
        "version": __version__,
        "warm_start": warm,
        "home": state.home.id,
    }
    lost = state.home.lost()
    if lost is not None:
        body.update(status="home_lost", message=lost)
        return JSONResponse(body, status_code=503)
    return JSONResponse(body)
