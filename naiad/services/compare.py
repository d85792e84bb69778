"""Side-by-side comparison of runs: the params that differ and each run's latest metrics."""

from sqlalchemy.orm import Session

from naiad.core import principals
from naiad.core.errors import InvalidInput
from naiad.schemas.runs import RunComparison
from naiad.store import runs

MAX_COMPARE = 100


def compare(session: Session, run_ids: list[str]) -> RunComparison:
    if not 1 <= len(run_ids) <= MAX_COMPARE:
        raise InvalidInput(f"Compare takes 1 to {MAX_COMPARE} run ids; got {len(run_ids)}.")
    found = runs.get_many(session, list(dict.fromkeys(run_ids)))
    for run in found:
        principals.require(run.project, "viewer", f"Reading run {run.id}")
    param_keys = sorted({k for run in found for k in run.params})
    metric_keys = sorted({k for run in found for k in run.metrics})
    params = {k: [run.params.get(k) for run in found] for k in param_keys}
    metrics = {
        k: [run.metrics[k].value if k in run.metrics else None for run in found]
        for k in metric_keys
    }
    differing = [
        k
        for k, values in params.items()
        if len({repr(v) for v in values}) > 1 or any(k not in run.params for run in found)
    ]
    return RunComparison(runs=found, params=params, metrics=metrics, differing_params=differing)
