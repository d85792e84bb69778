"""Tuning job rows and their trials. Status moves go through ``transition`` only."""

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from naiad.core.errors import Conflict, NotFound
from naiad.core.ids import new_id
from naiad.core.status import Status, check_transition
from naiad.schemas.tuning import Trial, TrialCounts, TuningJob, TuningJobCreate
from naiad.store.tables import JobRow, TuningJobRow, TuningTrialRow, utcnow

ACTIVE = (Status.PENDING.value, Status.RUNNING.value, Status.STOPPING.value)


def get_row(session: Session, name: str) -> TuningJobRow:
    row = session.scalar(select(TuningJobRow).where(TuningJobRow.name == name))
    if row is None:
        raise NotFound(f"No tuning job named {name!r}; list them with `naiad tuning ls`.")
    return row


def create(session: Session, body: TuningJobCreate) -> TuningJobRow:
    if session.scalar(select(TuningJobRow.id).where(TuningJobRow.name == body.name)) is not None:
        raise Conflict(
            f"A tuning job named {body.name!r} already exists; tuning job names are unique, "
            "pick another (e.g. add a suffix like -2)."
        )
    row = TuningJobRow(id=new_id(), name=body.name, status=Status.PENDING.value, spec=body.spec())
    session.add(row)
    session.flush()
    return row


def transition(session: Session, row: TuningJobRow, status: Status, reason: str | None) -> bool:
    if row.status == status.value:
        return False
    check_transition(Status(row.status), status, "tuning job")
    row.status = status.value
    row.status_reason = reason
    if status.terminal:
        row.ended_at = utcnow()
    session.flush()
    return True


def list_all(
    session: Session,
    status: str | None = None,
    limit: int = 200,
    projects: set[str] | None = None,
) -> list[TuningJobRow]:
    query = select(TuningJobRow).order_by(TuningJobRow.created_at.desc()).limit(limit)
    if projects is not None:
        query = query.where(TuningJobRow.project.in_(projects))
    if status:
        query = query.where(TuningJobRow.status == status)
    return list(session.scalars(query))


def active(session: Session) -> list[TuningJobRow]:
    query = select(TuningJobRow).where(TuningJobRow.status.in_(ACTIVE))
    return list(session.scalars(query.order_by(TuningJobRow.created_at)))


def trials(session: Session, tuning_job_id: str) -> list[tuple[TuningTrialRow, JobRow | None]]:
    """The trials in number order, each with its training job (None once deleted)."""
    query = (
        select(TuningTrialRow, JobRow)
        .outerjoin(JobRow, JobRow.id == TuningTrialRow.job_id)
        .where(TuningTrialRow.tuning_job_id == tuning_job_id)
        .order_by(TuningTrialRow.number)
    )
    return [(t, j) for t, j in session.execute(query).all()]


def trial_of_job(session: Session, job_id: str) -> tuple[TuningTrialRow, TuningJobRow] | None:
    """The trial a training job runs, if it is one."""
    query = (
        select(TuningTrialRow, TuningJobRow)
        .join(TuningJobRow, TuningJobRow.id == TuningTrialRow.tuning_job_id)
        .where(TuningTrialRow.job_id == job_id)
    )
    found = session.execute(query).first()
    return None if found is None else (found[0], found[1])


def trial_schema(trial: TuningTrialRow, job: JobRow | None) -> Trial:
    last = trial.intermediate[-1][0] if trial.intermediate else None
    return Trial(
        number=trial.number,
        job=job.name if job is not None else None,
        run_id=job.run_id if job is not None else None,
        outcome=trial.outcome,  # type: ignore[arg-type]
        status=job.status if job is not None else None,
        reason=trial.reason,
        params=trial.params,
        value=trial.value,
        last_step=None if last is None else int(last),
        created_at=trial.created_at,
        ended_at=trial.ended_at,
    )


def best(
    row: TuningJobRow, pairs: Sequence[tuple[TuningTrialRow, JobRow | None]]
) -> tuple[TuningTrialRow, JobRow | None] | None:
    """The completed trial with the best objective (the first of equals)."""
    done = [(t, j) for t, j in pairs if t.outcome == "complete" and t.value is not None]
    if not done:
        return None
    sign = _sign(row)
    return min(done, key=lambda p: (sign * (p[0].value or 0.0), p[0].number))


def _sign(row: TuningJobRow) -> float:
    """-1 when larger is better: the best trial is then the smallest ``sign * value``."""
    return -1.0 if row.spec.objective.direction == "maximize" else 1.0


def by_objective(row: TuningJobRow, trials: list[Trial]) -> list[Trial]:
    """Best objective first, completed trials before the rest (a pruned trial's value is
    partial), then by number."""
    sign = _sign(row)
    order = [(t.outcome != "complete", sign * (t.value or 0.0), t.number) for t in trials]
    return [t for _, t in sorted(zip(order, trials, strict=True), key=lambda p: p[0])]


def to_schema(session: Session, row: TuningJobRow) -> TuningJob:
    pairs = trials(session, row.id)
    counts = TrialCounts()
    for trial, _job in pairs:
        setattr(counts, trial.outcome, getattr(counts, trial.outcome) + 1)
    top = best(row, pairs)
    return TuningJob(
        **row.spec.model_dump(),
        name=row.name,
        status=row.status,
        status_reason=row.status_reason,
        counts=counts,
        best=None if top is None else trial_schema(*top),
        created_at=row.created_at,
        ended_at=row.ended_at,
        project=row.project,
        created_by=row.created_by,
    )
