"""Liveness: the one route that needs no token, so supervisors and load balancers can poll it."""

from fastapi import APIRouter

from naiad import __version__

router = APIRouter(tags=["health"])


@router.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok", "version": __version__}
