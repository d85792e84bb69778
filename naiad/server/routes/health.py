"""Liveness: the one route that needs no token, so supervisors and load balancers can poll it."""

from fastapi import APIRouter

from naiad import __version__
from naiad.server.deps import StateDep

router = APIRouter(tags=["health"])


@router.get("/health")
def health(state: StateDep) -> dict[str, str | bool]:
    """``warm_start``: whether the next job would start with torch already imported."""
    scheduler = state.scheduler
    warm = scheduler is not None and scheduler.executor.warm_ready()
    return {"status": "ok", "version": __version__, "warm_start": warm}
