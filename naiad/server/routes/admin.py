"""/api/v1/admin: keeping the server's disk in check (`naiad gc`)."""

from fastapi import APIRouter

from naiad.schemas.maintenance import GcRequest, GcResult
from naiad.server.deps import StateDep
from naiad.services.maintenance import collect_garbage

router = APIRouter(prefix="/admin", tags=["admin"])


@router.post("/gc")
def gc(body: GcRequest, state: StateDep) -> GcResult:
    """Free space: finished jobs' work directories older than ``older_than_days``, spooled
    batches the server already has, files of deleted runs, the database's write-ahead log,
    and with ``vacuum`` the database's free pages. Works on a full disk."""
    return collect_garbage(
        state.engine,
        state.sessions,
        state.artifacts,
        state.executor,
        state.settings,
        older_than_days=body.older_than_days,
        vacuum_db=body.vacuum,
    )
