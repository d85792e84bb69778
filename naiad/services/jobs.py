"""Training jobs: validate and queue a submission; turn what executors see into statuses."""

import logging
import re
import shutil
import tarfile
import zlib
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.orm import Session

from naiad.core import job_tokens, principals
from naiad.core.errors import InvalidInput
from naiad.core.names import check_key
from naiad.core.status import Status
from naiad.data import connection_name
from naiad.executors.base import (
    SANDBOX_TOOL,
    ExecState,
    Executor,
    JobHandle,
    LaunchSpec,
    LogChunk,
    Phase,
)
from naiad.schemas.jobs import JOBS_EXPERIMENT, JobCreate, JobSpec, JobTemplate
from naiad.schemas.runs import RunCreate, RunUpdate
from naiad.settings import Settings
from naiad.store import jobs, runs
from naiad.store.artifacts import ArtifactStore, buckets, safe_path
from naiad.store.tables import ConnectionRow, JobRow

log = logging.getLogger(__name__)

CHANNEL_SCHEMES = ("file://", "s3://", "sql://", "dynamodb://")
_JOB_NAME_RULE = "1-63 lower-case letters, digits or '-', starting with a letter or digit"


_JOB_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")  # ASCII only: "³" is a digit to isdigit()


def _check_name(name: str) -> None:
    if not _JOB_NAME.fullmatch(name):
        raise InvalidInput(f"Job name {name!r} is not valid: use {_JOB_NAME_RULE}.")


def _check_inputs(inputs: dict[str, str]) -> None:
    for channel, uri in inputs.items():
        check_key(channel, "Channel name")
        if "/" in channel or " " in channel:
            raise InvalidInput(f"Channel name {channel!r} cannot contain '/' or spaces.")
        if uri.startswith("s3://"):
            buckets.split(uri)  # a bucket and a key that stay inside it
        elif uri.startswith(("sql://", "dynamodb://")):
            continue  # a connection or table: reached at staging, before the script starts
        elif uri.startswith("file://"):
            if not Path(uri[len("file://") :]).exists():
                raise InvalidInput(f"Channel {channel!r}: {uri} does not exist on the server.")
        elif "://" in uri or uri.startswith("/"):
            raise InvalidInput(
                f"Channel {channel!r} has URI {uri!r}: use one of {', '.join(CHANNEL_SCHEMES)} "
                "or a path in the server's artifact store (a local path becomes file:// when "
                "given to the CLI)."
            )
        else:
            safe_path(uri)  # a folder of the server's store, e.g. a bucket of its S3 API


def _check_checkpoint_uri(uri: str | None) -> None:
    """A folder in the server's store, or an ``s3://bucket/prefix`` URI."""
    if uri is None:
        return
    if uri.startswith("s3://"):
        if buckets.split(uri)[1]:
            return
    elif "://" not in uri and not uri.startswith("/"):
        try:
            safe_path(uri)
            return
        except InvalidInput:
            pass
    raise InvalidInput(
        f"checkpoint_uri {uri!r} is not a place Naiad can keep checkpoints: give a path in "
        "the server's artifact store (like 'checkpoints/digits') or an s3://bucket/prefix "
        "URI (a folder in the bucket, not the bucket itself)."
    )


def _check_resources(body: JobTemplate, slots: int, nodes: int | None) -> None:
    """A job holds a slot for every process on every node (host) it spans."""
    if nodes is not None and body.nodes > nodes:
        raise InvalidInput(
            f"The job asks for {body.nodes} nodes but this server's executor runs a job on "
            f"at most {nodes}; ask for at most {nodes} nodes."
        )
    if body.nodes == 1:
        if body.processes_per_node > slots:
            raise InvalidInput(
                f"The job asks for {body.processes_per_node} processes per node but the "
                f"executor has {slots} slots; ask for at most {slots}."
            )
        return
    need = body.nodes * body.processes_per_node
    if need > slots:
        raise InvalidInput(
            f"The job asks for {body.nodes} nodes x {body.processes_per_node} processes per "
            f"node = {need} processes, but the executor has {slots} slots (one per process, "
            f"on every node); ask for at most {slots} in all."
        )


def check_source(store: ArtifactStore, source_uri: str) -> None:
    """A snapshot uploaded with PUT /sources: readable, plain files only (a notebook's)."""
    _check_source(store, source_uri, None)


def _check_source(store: ArtifactStore, source_uri: str, entrypoint: str | None) -> None:
    path = safe_path(source_uri)
    if not path.startswith("sources/") or not store.exists(path):
        raise InvalidInput(
            f"Source {source_uri!r} was not uploaded; upload the directory with PUT "
            "/api/v1/sources first (the SDK and CLI do this for you)."
        )
    try:
        with store.open(path) as handle, tarfile.open(fileobj=handle, mode="r:gz") as tar:
            members = tar.getmembers()
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise InvalidInput(
            f"The source snapshot {source_uri!r} is not a readable .tar.gz ({exc}); make it "
            "with `tar czf` (or let the SDK and CLI upload the directory)."
        ) from None
    for member in members:
        if member.issym() or member.islnk():
            raise InvalidInput(
                f"The source snapshot has a link, {member.name} -> {member.linkname}; a snapshot "
                "holds plain files only (the SDK and CLI refuse symlinks before uploading)."
            )
    names = {m.name.removeprefix("./") for m in members if m.isfile()}
    if entrypoint is not None and safe_path(entrypoint) not in names:
        shown = ", ".join(sorted(n for n in names if n.endswith(".py"))[:10]) or "no .py files"
        raise InvalidInput(
            f"Entrypoint {entrypoint!r} is not in the source directory (it has: {shown})."
        )


def check(body: JobTemplate, store: ArtifactStore, slots: int, nodes: int | None = None) -> None:
    """Check everything that can be checked now, so a job does not fail minutes later.

    ``slots`` and ``nodes`` are the executor's (``nodes``: the most hosts it runs a job
    on; None: as many as its slots allow, as the local executor emulates them).
    """
    _check_inputs(body.inputs)
    _check_checkpoint_uri(body.checkpoint_uri)
    _check_resources(body, slots, nodes)
    if body.source_uri is not None:  # a command job's code may come in a channel instead
        _check_source(store, body.source_uri, body.entrypoint)


def _check_connections(session: Session, body: JobTemplate) -> None:
    """Every connection a table channel names exists now (it is read at staging)."""
    for channel, uri in sorted(body.inputs.items()):
        options = body.channels.get(channel)
        name = connection_name(uri, options.model_dump() if options else {})
        if name and session.get(ConnectionRow, name) is None:
            raise InvalidInput(
                f"Channel {channel!r} names connection {name!r}, which the server does not "
                "have; create it with `naiad connections create` (see `naiad connections ls`)."
            )


def submit(
    session: Session,
    body: JobCreate,
    store: ArtifactStore,
    slots: int,
    nodes: int | None = None,
    output_uri: str | None = None,
    tags: dict[str, str] | None = None,
) -> JobRow:
    """Check the job (``check``) and queue it with its run.

    ``output_uri``: where model.tar.gz and output.tar.gz go (``jobs/NAME/output`` unless
    given, as SageMaker's ``S3OutputPath`` gives it); ``tags``: more tags for its run.
    """
    _check_name(body.name)
    project = principals.project()
    if body.experiment == JOBS_EXPERIMENT and project != principals.DEFAULT_PROJECT:
        body = body.model_copy(update={"experiment": f"{project}-{JOBS_EXPERIMENT}"})
    check(body, store, slots, nodes)
    _check_connections(session, body)
    run = runs.create(
        session,
        RunCreate(
            experiment=body.experiment,
            name=body.name,
            params=body.hyperparameters,
            tags={"naiad.job": body.name, **(tags or {})},
        ),
        store.uri,
    )
    return jobs.create(session, body, run.id, output_uri=output_uri or f"jobs/{body.name}/output")


def rerun(
    session: Session,
    row: JobRow,
    store: ArtifactStore,
    slots: int,
    nodes: int | None = None,
    name: str | None = None,
) -> JobRow:
    """Queue a new job with ``row``'s request (source, command, inputs, resources): to retry
    one that failed or was stopped, or to run a finished one again. Its name is ``name``,
    or the first free ``NAME-rN`` (N from 2)."""
    if name is None:
        stem = re.sub(r"-r\d+$", "", row.name)[:57]
        taken = jobs.names_starting(session, f"{stem}-r")
        name = next(f"{stem}-r{n}" for n in range(2, 10_000) if f"{stem}-r{n}" not in taken)
    fields = row.spec.model_dump(exclude={"output_uri"})
    body = JobCreate.model_validate({**fields, "name": name, "priority": row.priority})
    return submit(session, body, store, slots, nodes)


def jobs_root(settings: Settings) -> Path:
    """The folder of the local executor's job directories, one per job name."""
    return settings.layout.jobs


# A job token outlives any queue and every attempt; it is void as soon as the job ends.
TOKEN_QUEUE_S = 7 * 86400
TOKEN_UNLIMITED_S = 30 * 86400


def job_token(row: JobRow, key: bytes) -> str:
    """The job's own token (``core.job_tokens``): the same on every call for one job."""
    spec = row.spec
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
    running = TOKEN_UNLIMITED_S
    if spec.max_runtime_s is not None:
        running = spec.max_runtime_s * (spec.max_retries + 1)
    expires = int(created.timestamp()) + TOKEN_QUEUE_S + running
    return job_tokens.mint(key, row.name, row.run_id, expires)


def connections_of(spec: JobTemplate | JobSpec) -> set[str]:
    """The named connections the job's table channels read."""
    names = set()
    for channel, uri in spec.inputs.items():
        options = spec.channels.get(channel)
        name = connection_name(uri, options.model_dump() if options else {})
        if name:
            names.add(name)
    return names


def launch_spec(
    row: JobRow, settings: Settings, job_key: bytes | None, artifact_root: str
) -> LaunchSpec:
    """``job_key``: what signs the job's token (None when the server runs without auth)."""
    spec = row.spec
    return LaunchSpec(
        job_name=row.name,
        run_id=row.run_id,
        work_dir=jobs_root(settings) / row.name,
        source_uri=spec.source_uri,
        entrypoint=spec.entrypoint,
        command=list(spec.command) if spec.command is not None else None,
        opt_ml_channels=list(spec.opt_ml_channels),
        hyperparameters=dict(spec.hyperparameters),
        inputs=dict(spec.inputs),
        output_uri=spec.output_uri,
        nodes=spec.nodes,
        max_nodes=spec.max_nodes,
        rejoin_s=settings.elastic_rejoin_s,
        processes_per_node=spec.processes_per_node,
        framework=spec.framework,
        gpus=spec.gpus,
        memory_mb=spec.memory_mb,
        max_retries=spec.max_retries,
        max_runtime_s=spec.max_runtime_s,
        metric_definitions=[d.model_dump() for d in spec.metric_definitions],
        environment=dict(spec.environment),
        channels={name: options.model_dump() for name, options in spec.channels.items()},
        checkpoint_uri=spec.checkpoint_uri,
        server_url=settings.url,
        token=None if job_key is None else job_token(row, job_key),
        artifact_root=artifact_root,
        s3_endpoint_url=settings.s3_endpoint_url,
        sandbox=str(settings.home) if sandboxed(row, settings) else None,
    )


def sandboxed(row: JobRow, settings: Settings) -> bool:
    """Whether the job's processes run with the home out of their reach: a user's job (the
    code of someone other than the machine's owner) where bubblewrap is installed, or every
    job with NAIAD_JOB_SANDBOX=on; only on the local executor, where the home is."""
    if settings.executor != "local" or settings.job_sandbox == "off":
        return False
    if settings.job_sandbox == "on":
        return True
    if row.created_by in (None, principals.ADMIN):
        return False
    if shutil.which(SANDBOX_TOOL) is None:
        log.warning(
            "job %s of user %r runs without the sandbox, with the server's home in its "
            "reach: bubblewrap (bwrap) is not installed. Install it (apt-get install "
            "bubblewrap), or set NAIAD_JOB_SANDBOX=off to accept this.",
            row.name,
            row.created_by,
        )
        return False
    return True


_ENDS = {
    Phase.SUCCEEDED: Status.COMPLETED,
    Phase.FAILED: Status.FAILED,
    Phase.STOPPED: Status.STOPPED,
    Phase.LOST: Status.FAILED,
}


def handle(row: JobRow, executor: Executor) -> JobHandle | None:
    """What the executor returned when it started the job (None if it never did)."""
    if row.handle:
        return JobHandle.from_json(row.handle)
    # A row from before handles were stored; a job not started yet has nothing to find
    # (a folder of that name would be a deleted namesake's).
    return executor.find(row.name) if Status(row.status).terminal else None


def collect_spooled_metrics(
    session: Session, row: JobRow, executor: Executor, max_points: int
) -> int:
    """Store the metric batches a job's processes could not send (the server was away).

    Batch ids make this safe to repeat; returns how many batches were new.
    """
    from naiad.store import metrics  # numpy: loaded when first needed, not at server start

    job = handle(row, executor)
    if job is None:
        return 0
    stored, taken = 0, []
    for batch in executor.collect_metrics(job, row.run_id):
        stored += not metrics.log_batch(session, row.run_id, batch, max_points).duplicate
        taken.append(batch.batch_id)
    if taken:  # the spool files go only once the points are committed
        event.listen(
            session,
            "after_commit",
            lambda _: executor.drop_metrics(job, row.run_id, taken),
            once=True,
        )
    return stored


def read_log(
    row: JobRow, executor: Executor, offset: int, limit: int, rank: int | None
) -> LogChunk:
    """Whole lines of the job's log from ``offset``; nothing before the job started."""
    job = handle(row, executor)
    if job is None:
        return LogChunk(text="", offset=offset, eof=True)
    return executor.read_log(job, offset, limit, rank)


def apply_state(session: Session, row: JobRow, state: ExecState) -> None:
    """Move the job (and its run) to where the executor says it is."""
    row.attempt = max(row.attempt, state.attempt)
    jobs.add_events(session, row, state.events)
    target = _ENDS.get(state.phase)
    started = state.phase == Phase.RUNNING or (target is not None and state.started_at is not None)
    if started and row.status in (Status.PENDING, Status.STARTING):
        # A job that ended between two ticks still ran: its timeline says when.
        at = None if state.started_at is None else datetime.fromtimestamp(state.started_at, UTC)
        jobs.transition(session, row, Status.RUNNING, f"Attempt {state.attempt} started.", at)
    if target is None:
        return
    reason: str | None = None
    if target == Status.STOPPED and row.stop_reason:
        reason = row.stop_reason  # why it was asked to stop says more than that it did
    reason = (
        reason
        or state.reason
        or {
            Status.COMPLETED: "Training finished.",
            Status.FAILED: "The job failed.",
            Status.STOPPED: "Stopped.",
        }[target]
    )
    end(session, row, target, reason)


def end(session: Session, row: JobRow, status: Status, reason: str) -> None:
    """End the job and its run together, with the same reason."""
    if jobs.transition(session, row, status, reason):
        run = runs.get_row(session, row.run_id)
        if not Status(run.status).terminal:
            update = RunUpdate.model_validate({"status": status.value, "status_reason": reason})
            runs.update(session, row.run_id, update)
