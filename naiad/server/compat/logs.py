"""CloudWatch Logs, as far as SageMaker's tools read it: a training job's log is the stream
``<job>/algo-1-<start>`` of the group ``/aws/sagemaker/TrainingJobs``, and an endpoint's
replicas' logs are the streams ``<variant>/<key>-<n>`` of ``/aws/sagemaker/Endpoints/NAME``,
so the SageMaker Python SDK's ``fit(logs=True)`` and ``deploy(wait=True)``, and ``aws logs``,
read them as they would on AWS.

Naiad's job and replica logs have no time per line, so each line's timestamp is the
stream's start in milliseconds plus the line's index: stable across reads and increasing,
which is what the SDK's reader (a ``startTime`` plus how many events at that time it has
seen) relies on.
"""

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from naiad.core.errors import NotFound
from naiad.server.compat.awsjson import AwsError, AwsJsonApp, Context, Registry, send_error
from naiad.server.compat.gateway import AwsService
from naiad.server.compat.sagemaker.hosting import ENDPOINT
from naiad.server.compat.sagemaker.training import KIND as TRAINING_JOB
from naiad.server.managed.process import first_start
from naiad.server.state import AppState
from naiad.services import jobs as job_service
from naiad.store import aws_resources, endpoints, jobs
from naiad.store.tables import JobRow

registry = Registry("logs", "Logs_20140328")
TRAINING_GROUP = "/aws/sagemaker/TrainingJobs"
ENDPOINT_GROUP = "/aws/sagemaker/Endpoints/"
MAX_LOG_BYTES = 64 * 1024 * 1024  # read per call; a longer log is served from its start
PAGE_EVENTS = 10_000  # CloudWatch's own most events per GetLogEvents answer


def logs_service(state: AppState) -> AwsService:
    return AwsService(app=AwsJsonApp(state, registry), send_error=send_error)


def _missing(what: str) -> AwsError:
    return AwsError("ResourceNotFoundException", f"The specified {what} does not exist.")


@dataclass
class Stream:
    name: str
    first_ms: int
    last_ms: int
    lines: Callable[[], list[str]]


def _streams(ctx: Context, params: dict[str, Any]) -> list[Stream]:
    """The streams of the request's group whose names start with its prefix."""
    group = (params.get("logGroupName") or params.get("logGroupIdentifier", "")).rstrip("/")
    prefix = params.get("logStreamNamePrefix", "")
    if group == TRAINING_GROUP:
        return _job_streams(ctx, prefix)
    if group.startswith(ENDPOINT_GROUP):
        return _endpoint_streams(ctx, group.removeprefix(ENDPOINT_GROUP), prefix)
    raise _missing("log group")


# -- training jobs -------------------------------------------------------------------------


def _start_ms(job: JobRow) -> int:
    return int((job.started_at or job.created_at).timestamp() * 1000)


def _job_streams(ctx: Context, prefix: str) -> list[Stream]:
    """A stream for every training job whose stream name starts with ``prefix``."""
    out = []
    for row in aws_resources.listed(ctx.session, TRAINING_JOB):
        if not row.ref or not (row.name + "/").startswith(prefix[: len(row.name) + 1]):
            continue  # cheap: a stream's name starts with its job's
        try:
            job = jobs.get_row(ctx.session, row.ref)
        except NotFound:
            continue
        first = _start_ms(job)
        name = f"{row.name}/algo-1-{first // 1000}"
        if job.started_at is not None and name.startswith(prefix):
            last = int(job.ended_at.timestamp() * 1000) if job.ended_at else first
            out.append(Stream(name, first, last, _job_lines(ctx, job)))
    return out


def _job_lines(ctx: Context, job: JobRow) -> Callable[[], list[str]]:
    def read() -> list[str]:
        chunk = job_service.read_log(job, ctx.state.executor, 0, MAX_LOG_BYTES, None)
        return chunk.text.splitlines()

    return read


# -- endpoints -----------------------------------------------------------------------------


def _endpoint_streams(ctx: Context, name: str, prefix: str) -> list[Stream]:
    """A stream ``<variant>/<replica>`` for each replica of the endpoint on this machine;
    the group exists while the SageMaker endpoint does."""
    from naiad.server.controller.endpoints import EndpointKeeper

    row = aws_resources.find(ctx.session, ENDPOINT, name)
    naiad = endpoints.find_row(ctx.session, row.ref or name.lower()) if row else None
    keeper = ctx.state.services.get(EndpointKeeper)
    if naiad is None or keeper is None:
        raise _missing("log group")
    spec = naiad.spec
    variants = {v.key: v.name for v in spec.variants}
    if spec.pending is not None:
        variants.update({v.key: v.name for v in spec.pending.variants})
    out = []
    for (key, index), text in sorted(keeper.replica_logs(naiad.name, MAX_LOG_BYTES).items()):
        stream = f"{variants.get(key, key)}/{key}-{index}"
        started = first_start(text)
        if started is None or not stream.startswith(prefix):
            continue
        lines = text.splitlines()
        first = int(started * 1000)
        out.append(Stream(stream, first, first + len(lines), functools.partial(list, lines)))
    return out


# -- the operations ------------------------------------------------------------------------


@registry.operation("DescribeLogStreams")
def describe_log_streams(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    found = sorted(_streams(ctx, params), key=lambda s: s.name)
    if params.get("descending"):
        found.reverse()
    limit = params.get("limit", 50)
    start = _token(params.get("nextToken"), "s/") or 0
    streams = [
        {
            "logStreamName": s.name,
            "creationTime": s.first_ms,
            "firstEventTimestamp": s.first_ms,
            "lastEventTimestamp": s.last_ms,
            "lastIngestionTime": s.last_ms,
        }
        for s in found[start : start + limit]
    ]
    more = start + limit < len(found)
    return {"logStreams": streams, "nextToken": f"s/{start + limit}" if more else None}


def _events(stream: Stream, params: dict[str, Any]) -> list[dict]:
    base = stream.first_ms
    lines = stream.lines()
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
    wanted = params["logStreamName"]
    matches = [
        s for s in _streams(ctx, {**params, "logStreamNamePrefix": wanted}) if s.name == wanted
    ]
    if not matches:
        raise _missing("log stream")
    events = _events(matches[0], params)
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
    names = set(params.get("logStreamNames", []))
    terms = [t.strip('"') for t in params.get("filterPattern", "").split()]
    found = []
    for stream in _streams(ctx, params):
        if names and stream.name not in names:
            continue
        for event in _events(stream, params):
            if all(t in event["message"] for t in terms):
                found.append(
                    {
                        **event,
                        "logStreamName": stream.name,
                        "eventId": f"{stream.name}/{event['timestamp']}",
                    }
                )
    found.sort(key=lambda e: e["timestamp"])
    start = _token(params.get("nextToken"), "n/") or 0
    limit = min(params.get("limit", PAGE_EVENTS), PAGE_EVENTS)
    page = found[start : start + limit]
    more = start + limit < len(found)
    return {"events": page, "nextToken": f"n/{start + limit}" if more else None}
