"""CloudWatch Logs, as far as SageMaker's tools read it: a training job's log is the stream
``<job>/algo-1-<start>`` of the group ``/aws/sagemaker/TrainingJobs``, so the SageMaker
Python SDK's ``fit(logs=True)`` and ``aws logs`` print it as they would on AWS.

Naiad's job log has no time per line, so each line's timestamp is the job's start in
milliseconds plus the line's index: stable across reads and increasing, which is what the
SDK's reader (a ``startTime`` plus how many events at that time it has seen) relies on.
"""

from typing import Any

from naiad.core.errors import NotFound
from naiad.server.compat.awsjson import AwsError, AwsJsonApp, Context, Registry, send_error
from naiad.server.compat.gateway import AwsService
from naiad.server.compat.sagemaker.training import KIND as TRAINING_JOB
from naiad.server.state import AppState
from naiad.services import jobs as job_service
from naiad.store import aws_resources, jobs
from naiad.store.tables import JobRow

registry = Registry("logs", "Logs_20140328")
TRAINING_GROUP = "/aws/sagemaker/TrainingJobs"
MAX_LOG_BYTES = 64 * 1024 * 1024  # read per call; a longer log is served from its start
PAGE_EVENTS = 10_000  # CloudWatch's own most events per GetLogEvents answer


def logs_service(state: AppState) -> AwsService:
    return AwsService(app=AwsJsonApp(state, registry), send_error=send_error)


def _missing(what: str) -> AwsError:
    return AwsError("ResourceNotFoundException", f"The specified {what} does not exist.")


def _group(params: dict[str, Any]) -> str:
    group = params.get("logGroupName") or params.get("logGroupIdentifier", "")
    if group.rstrip("/") != TRAINING_GROUP:
        raise _missing("log group")
    return TRAINING_GROUP


def _start_ms(job: JobRow) -> int:
    return int((job.started_at or job.created_at).timestamp() * 1000)


def _stream_name(name: str, job: JobRow) -> str:
    return f"{name}/algo-1-{_start_ms(job) // 1000}"


def _jobs(ctx: Context, prefix: str) -> list[tuple[str, JobRow]]:
    """(SageMaker name, job row) of every training job whose stream starts with ``prefix``."""
    out = []
    for row in aws_resources.listed(ctx.session, TRAINING_JOB):
        if not row.ref or not (row.name + "/").startswith(prefix[: len(row.name) + 1]):
            continue  # cheap: a stream's name starts with its job's
        try:
            job = jobs.get_row(ctx.session, row.ref)
        except NotFound:
            continue
        if job.started_at is not None and _stream_name(row.name, job).startswith(prefix):
            out.append((row.name, job))
    return out


def _lines(ctx: Context, job: JobRow) -> list[str]:
    chunk = job_service.read_log(job, ctx.state.executor, 0, MAX_LOG_BYTES, None)
    return chunk.text.splitlines()


@registry.operation("DescribeLogStreams")
def describe_log_streams(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    _group(params)
    found = sorted(_jobs(ctx, params.get("logStreamNamePrefix", "")), key=lambda p: p[0])
    if params.get("descending"):
        found.reverse()
    limit = params.get("limit", 50)
    start = _token(params.get("nextToken"), "s/") or 0
    streams = []
    for name, job in found[start : start + limit]:
        first = _start_ms(job)
        last = int((job.ended_at.timestamp() * 1000) if job.ended_at else first)
        streams.append(
            {
                "logStreamName": _stream_name(name, job),
                "creationTime": first,
                "firstEventTimestamp": first,
                "lastEventTimestamp": last,
                "lastIngestionTime": last,
            }
        )
    more = start + limit < len(found)
    return {"logStreams": streams, "nextToken": f"s/{start + limit}" if more else None}


def _events(ctx: Context, name: str, job: JobRow, params: dict[str, Any]) -> list[dict]:
    base = _start_ms(job)
    lines = _lines(ctx, job)
    first = max(0, int(params.get("startTime", 0)) - base)
    end = int(params["endTime"]) - base if "endTime" in params else len(lines)
    return [
        {"timestamp": base + i, "message": lines[i], "ingestionTime": base + i}
        for i in range(first, min(end, len(lines)))
    ]


def _token(token: str | None, prefix: str) -> int | None:
    if not token:
        return None
    if not token.startswith(prefix) or not token[len(prefix) :].isdigit():
        raise AwsError("InvalidParameterException", "The specified nextToken is invalid.")
    return int(token[len(prefix) :])


@registry.operation("GetLogEvents")
def get_log_events(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    _group(params)
    wanted = params["logStreamName"]
    matches = [(n, j) for n, j in _jobs(ctx, wanted) if _stream_name(n, j) == wanted]
    if not matches:
        raise _missing("log stream")
    name, job = matches[0]
    events = _events(ctx, name, job, params)
    limit = min(params.get("limit", PAGE_EVENTS), PAGE_EVENTS)
    token = params.get("nextToken")
    forward = _token(token, "f/") if token and token.startswith("f/") else None
    backward = _token(token, "b/") if token and token.startswith("b/") else None
    if forward is None and backward is None and not params.get("startFromHead"):
        backward = len(events)  # the newest page first, as CloudWatch does
    if backward is not None:
        start = max(0, backward - limit)
        page, end = events[start:backward], backward
    else:
        start = forward or 0
        page = events[start : start + limit]
        end = start + len(page)
    return {"events": page, "nextForwardToken": f"f/{end}", "nextBackwardToken": f"b/{start}"}


@registry.operation("FilterLogEvents")
def filter_log_events(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Events of the group's streams in order, keeping lines that hold every term of a
    plain ``filterPattern`` (CloudWatch's pattern syntax beyond words is not supported)."""
    _group(params)
    names = set(params.get("logStreamNames", []))
    terms = [t.strip('"') for t in params.get("filterPattern", "").split()]
    found = []
    for name, job in _jobs(ctx, params.get("logStreamNamePrefix", "")):
        stream = _stream_name(name, job)
        if names and stream not in names:
            continue
        for event in _events(ctx, name, job, params):
            if all(t in event["message"] for t in terms):
                found.append(
                    {**event, "logStreamName": stream, "eventId": f"{stream}/{event['timestamp']}"}
                )
    found.sort(key=lambda e: e["timestamp"])
    start = _token(params.get("nextToken"), "n/") or 0
    limit = min(params.get("limit", PAGE_EVENTS), PAGE_EVENTS)
    page = found[start : start + limit]
    more = start + limit < len(found)
    return {"events": page, "nextToken": f"n/{start + limit}" if more else None}
