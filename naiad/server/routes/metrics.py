"""/api/v1/runs/{run_id}/metrics: batched ingest, whole and downsampled reads.

The numpy-backed modules are imported on first use (and warmed in the background
when the server starts) so that a cold start does not wait for numpy.
"""

from typing import Annotated

from fastapi import APIRouter, Query, Response

from naiad.schemas.metrics import BatchResult, MetricBatch, MetricHistory
from naiad.server.deps import SessionDep, StateDep
from naiad.store.db import transaction

router = APIRouter(prefix="/runs/{run_id}/metrics", tags=["metrics"])


@router.post("")
def log_metrics(run_id: str, batch: MetricBatch, state: StateDep) -> BatchResult:
    """Commits and lets go of its connection before returning: under a fan-in of hundreds
    of ranks, a connection held while the response waits for a worker thread (as a
    session dependency's would be) lets the pool and the threads wait on each other."""
    from naiad.store import metrics

    with transaction(state.sessions) as session:
        return metrics.log_batch(session, run_id, batch, state.settings.max_batch_points)


@router.get("")
def metric_keys(run_id: str, session: SessionDep) -> list[str]:
    from naiad.store import metrics

    return metrics.keys(session, run_id)


@router.get("/{key:path}", response_model=MetricHistory)
def metric_history(
    run_id: str,
    key: str,
    session: SessionDep,
    max_points: Annotated[
        int | None,
        Query(ge=1, le=100_000, description="Downsample to this many buckets (min/max kept)."),
    ] = None,
) -> Response:
    from naiad.services.metric_reads import history_json

    return Response(history_json(session, run_id, key, max_points), media_type="application/json")
