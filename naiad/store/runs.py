"""Run CRUD and search. Params, tags and latest metrics live in their own tables so
search can filter and sort by any of them on SQLite and PostgreSQL alike."""

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased

from naiad.core.errors import Conflict, InvalidInput, NotFound
from naiad.core.ids import new_id, run_name
from naiad.core.names import MAX_PARAM_VALUE, MAX_TAG_VALUE, check_key, check_text
from naiad.core.query import Clause, OrderBy, parse_filter, parse_order_by
from naiad.core.status import Status, check_transition
from naiad.schemas.common import ParamValue
from naiad.schemas.metrics import encode_value
from naiad.schemas.runs import MetricSummary, Run, RunCreate, RunSearch, RunUpdate
from naiad.store import experiments
from naiad.store.tables import (
    ExperimentRow,
    JobRow,
    LatestMetricRow,
    ParamRow,
    RunRow,
    TagRow,
    utcnow,
)


def _nan(value: float | None) -> float | str:
    return encode_value(math.nan if value is None else value)


def _hydrate(session: Session, rows: Sequence[tuple[RunRow, str, str]]) -> list[Run]:
    """Load params, tags and metrics for many runs in three queries, not 3 per run
    (``rows``: each run with its experiment's name and project)."""
    ids = [row.id for row, _, _ in rows]
    params: dict[str, dict[str, ParamValue]] = defaultdict(dict)
    tags: dict[str, dict[str, str]] = defaultdict(dict)
    metrics: dict[str, dict[str, MetricSummary]] = defaultdict(dict)
    if ids:
        for p in session.scalars(select(ParamRow).where(ParamRow.run_id.in_(ids))):
            params[p.run_id][p.key] = json.loads(p.value)
        for t in session.scalars(select(TagRow).where(TagRow.run_id.in_(ids))):
            tags[t.run_id][t.key] = t.value
        for m in session.scalars(select(LatestMetricRow).where(LatestMetricRow.run_id.in_(ids))):
            metrics[m.run_id][m.key] = MetricSummary(
                value=_nan(m.value),
                step=m.step,
                timestamp=m.timestamp,
                min=_nan(m.min),
                max=_nan(m.max),
                count=m.count,
            )
    return [
        Run(
            id=row.id,
            name=row.name,
            experiment_id=row.experiment_id,
            experiment=experiment,
            status=row.status,
            status_reason=row.status_reason,
            start_time=row.start_time,
            end_time=row.end_time,
            params=params[row.id],
            tags=tags[row.id],
            metrics=metrics[row.id],
            artifact_uri=row.artifact_uri,
            created_by=row.created_by,
            project=project,
        )
        for row, experiment, project in rows
    ]


def get_row(session: Session, run_id: str) -> RunRow:
    row = session.get(RunRow, run_id)
    if row is None:
        raise NotFound(f"No run with id {run_id!r}; list runs with `naiad runs ls`.")
    return row


def get(session: Session, run_id: str) -> Run:
    row = get_row(session, run_id)
    experiment = session.get(ExperimentRow, row.experiment_id)
    name, project = (experiment.name, experiment.project) if experiment else ("", "default")
    return _hydrate(session, [(row, name, project)])[0]


def get_many(session: Session, run_ids: list[str]) -> list[Run]:
    query = (
        select(RunRow, ExperimentRow.name, ExperimentRow.project)
        .join(ExperimentRow, ExperimentRow.id == RunRow.experiment_id)
        .where(RunRow.id.in_(run_ids))
    )
    found = {run.id: run for run in _hydrate(session, session.execute(query).all())}
    missing = [run_id for run_id in run_ids if run_id not in found]
    if missing:
        raise NotFound(f"No run with id {', '.join(map(repr, missing))}.")
    return [found[run_id] for run_id in run_ids]


def create(session: Session, body: RunCreate, artifact_root: str) -> Run:
    experiment = experiments.get_or_create(session, body.experiment)
    run_id = new_id()
    row = RunRow(
        id=run_id,
        experiment_id=experiment.id,
        name=body.name or run_name(),
        status=Status.RUNNING.value,
        start_time=utcnow(),
        artifact_uri=f"{artifact_root.rstrip('/')}/runs/{run_id}/artifacts",
    )
    session.add(row)
    session.flush()
    log_params(session, run_id, body.params)
    set_tags(session, run_id, body.tags)
    return get(session, run_id)


def update(session: Session, run_id: str, body: RunUpdate) -> Run:
    row = get_row(session, run_id)
    if body.name is not None:
        row.name = body.name
    if body.status is not None:
        new = Status(body.status)
        check_transition(Status(row.status), new)
        if new != row.status:
            row.status = new.value
            row.end_time = utcnow() if new.terminal else None
    if body.status_reason is not None:
        row.status_reason = body.status_reason
    session.flush()
    return get(session, run_id)


def _param_number(value: ParamValue) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):  # not a number, or an int beyond any float
        return None
    return number if math.isfinite(number) else None


def log_params(session: Session, run_id: str, params: dict[str, ParamValue]) -> None:
    """Params are write-once, as in MLflow: the same value again is fine, a new one a conflict."""
    if not params:
        return
    get_row(session, run_id)
    for key in params:  # before any query: a key the database cannot even compare is refused
        check_key(key, "Param key")
    existing = {
        p.key: p
        for p in session.scalars(
            select(ParamRow).where(ParamRow.run_id == run_id, ParamRow.key.in_(list(params)))
        )
    }
    for key, value in params.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidInput(
                f"Param {key!r} is {value}, which JSON cannot carry as a number; a param is a "
                "finite number, a string, true/false or null. Send it as the string "
                f"{json.dumps(str(value))} if you mean it."
            )
        if isinstance(value, str):
            check_text(value, f"Param {key!r}")
        text = json.dumps(value)
        if len(text) > MAX_PARAM_VALUE:
            raise InvalidInput(
                f"Param {key!r} is {len(text)} characters; the limit is {MAX_PARAM_VALUE}. "
                "Log large configs as an artifact instead."
            )
        if key in existing:
            if existing[key].value != text:
                raise Conflict(
                    f"Param {key!r} is already {existing[key].value} on this run and params "
                    f"cannot change; log {text} under another key or start a new run."
                )
            continue
        session.add(ParamRow(run_id=run_id, key=key, value=text, number=_param_number(value)))
    session.flush()


def set_tags(session: Session, run_id: str, tags: dict[str, str]) -> None:
    if not tags:
        return
    get_row(session, run_id)
    for key, value in tags.items():
        check_key(key, "Tag key")
        if len(value) > MAX_TAG_VALUE:
            raise InvalidInput(f"Tag {key!r} is longer than {MAX_TAG_VALUE} characters.")
        session.merge(TagRow(run_id=run_id, key=key, value=value))
    session.flush()


def _clause_sql(clause: Clause) -> ColumnElement[bool]:
    ops = {
        "=": lambda c, v: c == v,
        "!=": lambda c, v: c != v,
        "<": lambda c, v: c < v,
        "<=": lambda c, v: c <= v,
        ">": lambda c, v: c > v,
        ">=": lambda c, v: c >= v,
        "like": lambda c, v: c.like(v),
    }
    compare = ops[clause.op]
    if clause.kind == "attributes":
        column = getattr(RunRow, clause.key)
        return compare(column, clause.value)
    if clause.kind == "metrics":
        return exists().where(
            LatestMetricRow.run_id == RunRow.id,
            LatestMetricRow.key == clause.key,
            compare(LatestMetricRow.value, clause.value),
        )
    if clause.kind == "params":
        target: InstrumentedAttribute[Any] | ColumnElement[Any]
        value: str | float | datetime
        if isinstance(clause.value, float):
            target, value = ParamRow.number, clause.value
        else:
            target, value = ParamRow.value, json.dumps(clause.value)
            if clause.op == "like":
                target, value = func.trim(ParamRow.value, '"'), clause.value
        return exists().where(
            ParamRow.run_id == RunRow.id, ParamRow.key == clause.key, compare(target, value)
        )
    return exists().where(
        TagRow.run_id == RunRow.id, TagRow.key == clause.key, compare(TagRow.value, clause.value)
    )


def _apply_order(query: Select, orders: Iterable[OrderBy]) -> Select:
    for i, order in enumerate(orders):
        if order.kind == "attributes":
            column = getattr(RunRow, order.key)
        elif order.kind == "metrics":
            metric = aliased(LatestMetricRow, name=f"order_m{i}")
            query = query.outerjoin(
                metric, and_(metric.run_id == RunRow.id, metric.key == order.key)
            )
            column = metric.value
        elif order.kind == "params":
            param = aliased(ParamRow, name=f"order_p{i}")
            query = query.outerjoin(param, and_(param.run_id == RunRow.id, param.key == order.key))
            query = query.order_by(param.number.is_(None))
            query = query.order_by(param.number.desc() if order.descending else param.number)
            column = param.value
        else:
            tag = aliased(TagRow, name=f"order_t{i}")
            query = query.outerjoin(tag, and_(tag.run_id == RunRow.id, tag.key == order.key))
            column = tag.value
        query = query.order_by(column.is_(None))  # runs without the field go last
        query = query.order_by(column.desc() if order.descending else column.asc())
    return query.order_by(RunRow.start_time.desc(), RunRow.id)


def search(
    session: Session, body: RunSearch, projects: set[str] | None = None
) -> tuple[list[Run], int]:
    """Runs matching the filter, sorted, one page of them, and how many match in all."""
    clauses = parse_filter(body.filter)
    orders = parse_order_by(body.order_by)
    base = select(RunRow.id).join(ExperimentRow, ExperimentRow.id == RunRow.experiment_id)
    if body.experiment:
        base = base.where(RunRow.experiment_id == experiments.get_row(session, body.experiment).id)
    if body.created_by:
        base = base.where(RunRow.created_by == body.created_by)
    if projects is not None:
        base = base.where(ExperimentRow.project.in_(projects))
    for clause in clauses:
        base = base.where(_clause_sql(clause))
    total = session.scalar(select(func.count()).select_from(base.subquery())) or 0
    query = _apply_order(
        select(RunRow, ExperimentRow.name, ExperimentRow.project).join(
            ExperimentRow, ExperimentRow.id == RunRow.experiment_id
        ),
        orders,
    ).where(RunRow.id.in_(base))
    rows = session.execute(query.offset(body.offset).limit(body.limit)).all()
    return _hydrate(session, rows), total


def delete(session: Session, run_id: str) -> JobRow | None:
    """Delete the run, its params, tags and metrics, and the job it belongs to, if any.

    A job still queued or running is refused: its processes would go on writing to a
    run that is gone. Returns the deleted job row, whose files the caller removes.
    """
    row = get_row(session, run_id)
    job = session.scalar(select(JobRow).where(JobRow.run_id == run_id))
    if job is not None and not Status(job.status).terminal:
        raise Conflict(
            f"Run {run_id} belongs to training job {job.name!r}, which is {job.status}; "
            f"stop it first (`naiad jobs stop {job.name}`) and delete the run once it has ended."
        )
    session.delete(row)
    session.flush()
    return job
