"""The storage shape. Wire shapes live in naiad.schemas; this module is only tables.

Metrics are stored as columnar chunks (one row per metric per batch, numpy bytes),
so a million-point series is a few rows to read, not a million.
"""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    DDL,
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from naiad.core.principals import creator, project
from naiad.schemas.endpoints import EndpointSpec
from naiad.schemas.jobs import JobSpec
from naiad.schemas.tuning import TuningSpec
from naiad.store.types import PydanticJSON


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class ExperimentRow(Base):
    __tablename__ = "experiments"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(200), nullable=True, default=creator)
    project: Mapped[str] = mapped_column(String(63), default=project, index=True)


class RunRow(Base):
    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    experiment_id: Mapped[str] = mapped_column(
        ForeignKey("experiments.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), index=True)
    status_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    start_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    end_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    artifact_uri: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(
        String(200), nullable=True, default=creator, index=True
    )


class ParamRow(Base):
    """One hyperparameter; ``number`` holds numeric values so search sorts them as numbers."""

    __tablename__ = "run_params"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)  # JSON text of the value
    number: Mapped[float | None] = mapped_column(Float, nullable=True)
    __table_args__ = (Index("ix_run_params_key_number", "key", "number"),)


class TagRow(Base):
    __tablename__ = "run_tags"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class LatestMetricRow(Base):
    """The newest point (highest step) of each metric and its extremes, for tables and search."""

    __tablename__ = "run_metrics_latest"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    step: Mapped[int] = mapped_column(BigInteger)
    timestamp: Mapped[float] = mapped_column(Float)
    # NULL stands for NaN: SQLite cannot store NaN in a REAL column.
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    min: Mapped[float | None] = mapped_column(Float, nullable=True)
    max: Mapped[float | None] = mapped_column(Float, nullable=True)
    count: Mapped[int] = mapped_column(BigInteger)
    __table_args__ = (Index("ix_run_metrics_latest_key_value", "key", "value"),)


class MetricBatchRow(Base):
    """Batch ids already stored for a run: the primary key makes a retried batch a no-op."""

    __tablename__ = "metric_batches"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    batch_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    points: Mapped[int] = mapped_column(Integer)


class MetricChunkRow(Base):
    __tablename__ = "metric_chunks"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(250))
    count: Mapped[int] = mapped_column(Integer)
    steps: Mapped[bytes] = mapped_column(LargeBinary)  # int64, little-endian
    timestamps: Mapped[bytes] = mapped_column(LargeBinary)  # float64 seconds
    values: Mapped[bytes] = mapped_column(LargeBinary)  # float64
    __table_args__ = (Index("ix_metric_chunks_run_key", "run_id", "key", "id"),)


class JobRow(Base):
    """A training job: its request (``spec``), where it stands, and its run."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    status_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    spec: Mapped[JobSpec] = mapped_column(PydanticJSON(JobSpec))
    priority: Mapped[int] = mapped_column(Integer, default=0)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    stop_requested: Mapped[bool] = mapped_column(default=False)
    # Why it was asked to stop, when not by a person (a tuning job's early stopping).
    stop_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The executor's opaque handle (JobHandle.to_json()), set when the job was started.
    handle: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_by: Mapped[str | None] = mapped_column(String(200), nullable=True, default=creator)
    project: Mapped[str] = mapped_column(String(63), default=project, index=True)


class JobTransitionRow(Base):
    """Every status change of a job, with when and why: the job's timeline."""

    __tablename__ = "job_transitions"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class JobEventRow(Base):
    """An elastic job's resize, as its supervisor recorded it (``seq``: its number there,
    so a resize read twice is stored once)."""

    __tablename__ = "job_events"
    __table_args__ = (UniqueConstraint("job_id", "seq"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    from_workers: Mapped[int] = mapped_column(Integer)
    to_workers: Mapped[int] = mapped_column(Integer)
    step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    reason: Mapped[str] = mapped_column(Text)


class TuningJobRow(Base):
    """A hyperparameter search: its request (``spec``) and where it stands; its trials
    are ``TuningTrialRow`` rows, from which the search is rebuilt at every turn."""

    __tablename__ = "tuning_jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(32), unique=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    status_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    spec: Mapped[TuningSpec] = mapped_column(PydanticJSON(TuningSpec))
    stop_requested: Mapped[bool] = mapped_column(default=False)
    # While Stopping: the status it takes once its running trials have stopped.
    ends_as: Mapped[str | None] = mapped_column(String(16), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    project: Mapped[str] = mapped_column(String(63), default=project, index=True)
    created_by: Mapped[str | None] = mapped_column(String(200), nullable=True, default=creator)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class TuningTrialRow(Base):
    """One trial: what the strategy chose, its training job, and what the search knows of
    it (Optuna's view: outcome, value, intermediate values, the sampler's attributes)."""

    __tablename__ = "tuning_trials"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tuning_job_id: Mapped[str] = mapped_column(
        ForeignKey("tuning_jobs.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)
    # A deleted job (its run deleted) leaves the trial counted, with what it reached.
    job_id: Mapped[str | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL"), nullable=True, index=True
    )
    params: Mapped[dict] = mapped_column(JSON)
    outcome: Mapped[str] = mapped_column(String(16))
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    # The objective at each step the run logged it: [[step, value], ...].
    intermediate: Mapped[list] = mapped_column(JSON, default=list)
    # Optuna's system attributes (a grid point's id, a pruner's rungs, CMA-ES's state).
    attrs: Mapped[dict] = mapped_column(JSON, default=dict)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    __table_args__ = (UniqueConstraint("tuning_job_id", "number", name="uq_tuning_trials_number"),)


class ModelRow(Base):
    __tablename__ = "models"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(200), nullable=True, default=creator)
    project: Mapped[str] = mapped_column(String(63), default=project, index=True)


class ModelVersionRow(Base):
    """One registered version: its manifest (format, signature), files and lineage."""

    __tablename__ = "model_versions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    manifest: Mapped[dict] = mapped_column(JSON)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    artifact_uri: Mapped[str] = mapped_column(Text)
    lineage: Mapped[dict] = mapped_column(JSON)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    __table_args__ = (UniqueConstraint("model_id", "version", name="uq_model_versions_version"),)


class ModelAliasRow(Base):
    """An alias points at one version; moving it is one UPDATE, so readers never see a gap."""

    __tablename__ = "model_aliases"

    model_id: Mapped[str] = mapped_column(
        ForeignKey("models.id", ondelete="CASCADE"), primary_key=True
    )
    alias: Mapped[str] = mapped_column(String(63), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class EvaluationRow(Base):
    """An evaluation job of a version; the results are its run's metrics and artifacts."""

    __tablename__ = "evaluations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    version_id: Mapped[str] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), index=True
    )
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    input: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class EndpointRow(Base):
    """A served model: its requested variants and batching (``spec``) and where it stands."""

    __tablename__ = "endpoints"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    status_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    spec: Mapped[EndpointSpec] = mapped_column(PydanticJSON(EndpointSpec))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(200), nullable=True, default=creator)
    project: Mapped[str] = mapped_column(String(63), default=project, index=True)


class EndpointTransitionRow(Base):
    __tablename__ = "endpoint_transitions"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    endpoint_id: Mapped[str] = mapped_column(
        ForeignKey("endpoints.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class EndpointScalingRow(Base):
    """An autoscaling decision the keeper took on its own: which variant, from how many
    replicas to how many, and why. Kept apart from the status timeline: the status does not
    change, and an endpoint that follows its load makes many of these."""

    __tablename__ = "endpoint_scaling_events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    endpoint_id: Mapped[str] = mapped_column(
        ForeignKey("endpoints.id", ondelete="CASCADE"), index=True
    )
    variant: Mapped[str] = mapped_column(String(63))
    from_replicas: Mapped[int] = mapped_column(Integer)
    to_replicas: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class EndpointMinuteRow(Base):
    """One minute of a variant's traffic, summed over its replicas: the history that
    outlives the server's memory. Counts are per histogram bucket (``*_le`` the bounds),
    so minutes add up into any coarser step with true percentiles."""

    __tablename__ = "endpoint_minutes"

    endpoint_id: Mapped[str] = mapped_column(
        ForeignKey("endpoints.id", ondelete="CASCADE"), primary_key=True
    )
    variant: Mapped[str] = mapped_column(String(63), primary_key=True)
    minute: Mapped[int] = mapped_column(BigInteger, primary_key=True, index=True)
    seconds: Mapped[float] = mapped_column(Float)  # observed within the minute
    requests: Mapped[int] = mapped_column(Integer)
    errors: Mapped[int] = mapped_column(Integer)  # 5xx
    client_errors: Mapped[int] = mapped_column(Integer)  # 4xx
    latency_le: Mapped[list] = mapped_column(JSON)
    latency: Mapped[list] = mapped_column(JSON)
    batch_le: Mapped[list] = mapped_column(JSON)
    batches: Mapped[list] = mapped_column(JSON)
    rows: Mapped[int] = mapped_column(BigInteger)
    batch_count: Mapped[int] = mapped_column(Integer)
    queue_depth: Mapped[int] = mapped_column(Integer)  # the most seen waiting


class UserRow(Base):
    """A person who signs in: a role, and an argon2 hash of the password (never the password;
    None for a user who has no password, e.g. one who signs in only with keys)."""

    __tablename__ = "users"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    password_hash: Mapped[str | None] = mapped_column(String(200), nullable=True)
    role: Mapped[str] = mapped_column(String(16))
    disabled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(200), nullable=True, default=creator)


class ProjectRow(Base):
    """A project groups experiments (and their runs), jobs, tuning jobs, models and endpoints;
    a user's role in one is a ``ProjectMemberRow`` (in ``default``, their own ``role``)."""

    __tablename__ = "projects"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(200), nullable=True, default=creator)


class ProjectMemberRow(Base):
    __tablename__ = "project_members"

    project: Mapped[str] = mapped_column(
        ForeignKey("projects.name", ondelete="CASCADE"), primary_key=True
    )
    user_name: Mapped[str] = mapped_column(
        ForeignKey("users.name", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[str] = mapped_column(String(16))


class AccessKeyRow(Base):
    """A key: a user's (Bearer for Naiad's API and an access key pair for the AWS-compatible
    APIs), or a console session (``kind`` "session"). A user's key stores no secret: it is
    derived from the id (``core.api_keys``). ``secret`` is kept only for keys issued before
    users existed, which act as the admin."""

    __tablename__ = "access_keys"

    access_key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    secret: Mapped[str | None] = mapped_column(String(64), nullable=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    user_name: Mapped[str | None] = mapped_column(
        ForeignKey("users.name", ondelete="CASCADE"), nullable=True, index=True
    )
    read_only: Mapped[bool] = mapped_column(default=False)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    kind: Mapped[str] = mapped_column(String(16), default="key")


class ConnectionRow(Base):
    """A named connection's settings and secrets (see ``schemas.connections``); kept as
    given, since a database driver needs the password itself, like an access key's secret."""

    __tablename__ = "connections"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class NotebookRow(Base):
    """A managed notebook server: what the user asked for and how it stands. Its process,
    files and JupyterLab token live in ``$NAIAD_HOME/notebooks/<name>/``."""

    __tablename__ = "notebooks"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    status_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    source_uri: Mapped[str | None] = mapped_column(Text, nullable=True)
    requirements: Mapped[str | None] = mapped_column(Text, nullable=True)
    idle_timeout_s: Mapped[int | None] = mapped_column(Integer, nullable=True)
    description: Mapped[str] = mapped_column(Text, default="")
    restarts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_activity_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )


class AwsResourceRow(Base):
    """A SageMaker object as its API knows it: the request that made it, its tags, and
    ``ref``, the Naiad object it is (a job, a model version, an endpoint), if any. The
    Naiad object holds the state; this row holds what only the SageMaker API shows."""

    __tablename__ = "aws_resources"

    kind: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(120), primary_key=True)
    request: Mapped[dict] = mapped_column(JSON)
    tags: Mapped[dict] = mapped_column(JSON, default=dict)
    ref: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, index=True
    )
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# PostgreSQL would compress these columns and read them back slowly; they are
# float arrays that barely compress. Migration 0003 does the same on older stores.
CHUNK_STORAGE = [
    f'ALTER TABLE metric_chunks ALTER COLUMN "{column}" SET STORAGE EXTERNAL'
    for column in ("steps", "timestamps", "values")
]
for _statement in CHUNK_STORAGE:
    event.listen(
        MetricChunkRow.__table__,
        "after_create",
        DDL(_statement).execute_if(dialect="postgresql"),
    )


class AuditEventRow(Base):
    """One write someone made: who (``actor``), what, when, from where, and its answer."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(200), index=True)
    action: Mapped[str] = mapped_column(String(200))
    path: Mapped[str] = mapped_column(Text)
    status: Mapped[int] = mapped_column(Integer)
    client: Mapped[str] = mapped_column(String(64))
