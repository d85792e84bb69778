"""Properties of the whole REST API under bad input, on SQLite and PostgreSQL.

Hypothesis sends arbitrary JSON bodies, query strings, path segments, metric batches,
keys, names and artifact paths to every route. What must hold:

- never a 5xx and never a stack trace; every 4xx is JSON with an ``error`` code and a
  ``message`` sentence saying what to fix;
- a request is applied whole or not at all: after a refusal, everything stored before
  reads back exactly as it was, and no file lands outside the artifact store;
- NaN and +/-Infinity metric values are data: stored, read back and charted as such.

Fixtures are function-scoped, so the examples of one test share a store; every property
is written to hold whatever earlier examples left behind.
"""

import json
import math
import os
import re
import string
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote

import anyio
import httpx
import numpy  # noqa: F401  # imported whole before create_app's lifespan warms it in a thread
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, assume, given, note
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from naiad.settings import Settings

API = "/api/v1"
I64_MIN, I64_MAX = -(2**63), 2**63 - 1
MAX_POINTS = 24  # the tight server's max_batch_points
MAX_BYTES = 16_384  # its max_request_bytes
MAX_ARTIFACT = 4_096  # its max_artifact_bytes


def examples(n: int):  # type: ignore[no-untyped-def]
    return hypothesis_settings(
        max_examples=n,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


# --- checks


def is_sentence(message: object) -> bool:
    return (
        isinstance(message, str)
        and len(message.split()) >= 3
        and message[0].isupper()
        and message.rstrip().endswith(".")
    )


def checked(response: httpx.Response) -> httpx.Response:
    """Below 500, no stack trace, and a 4xx is JSON with a code and a sentence."""
    where = f"{response.request.method} {response.request.url}"
    text = response.text
    assert response.status_code < 500, f"{where} -> {response.status_code}: {text[:500]}"
    assert "Traceback" not in text and 'File "' not in text, f"{where} leaked a stack trace"
    if response.status_code >= 400:
        assert response.headers.get("content-type", "").startswith("application/json"), where
        body = response.json()
        assert isinstance(body.get("error"), str) and body["error"], f"{where}: {body}"
        assert is_sentence(body.get("message")), f"{where}: not a sentence: {body}"
    return response


def refused(response: httpx.Response) -> bool:
    return 400 <= response.status_code < 500


def send(client: TestClient, method: str, url: str, body: object = None, **kw) -> httpx.Response:  # type: ignore[no-untyped-def]
    """Send ``body`` as Python's json writes it: NaN and Infinity as bare tokens."""
    if body is not None:
        kw["content"] = json.dumps(body).encode()
        kw["headers"] = {"content-type": "application/json", **kw.get("headers", {})}
    return checked(client.request(method, url, **kw))


def raw_request(client: TestClient, method: str, target: str, body: bytes = b"") -> httpx.Response:
    """Send ``target`` byte for byte, as ``curl --path-as-is`` does.

    httpx resolves ``..`` segments before sending, so a traversal would never reach the
    server through it; this calls the ASGI app with the path as a hostile client sends it.
    """
    raw_path, _, query = target.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": unquote(raw_path),
        "raw_path": raw_path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            (b"authorization", client.headers["authorization"].encode()),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("testclient", 50000),
        "server": ("testserver", 80),
    }
    messages: list[dict] = []

    async def call() -> None:
        delivered = False

        async def receive() -> dict:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            await anyio.sleep_forever()
            raise AssertionError  # unreachable

        async def send(message: dict) -> None:
            messages.append(message)

        await client.app(scope, receive, send)

    anyio.run(call)
    start = next(m for m in messages if m["type"] == "http.response.start")
    content = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    headers = [(k.decode(), v.decode()) for k, v in start["headers"]]
    request = httpx.Request(method, "http://testserver/" + quote(target, safe=""))
    return checked(
        httpx.Response(start["status"], headers=headers, content=content, request=request)
    )


def snapshot(client: TestClient, histories: bool = True) -> dict:
    """Everything the API shows: experiments, runs (params, tags, metric summaries), series."""
    experiments = send(client, "GET", f"{API}/experiments").json()
    runs = send(client, "GET", f"{API}/runs", params={"limit": 1000}).json()["items"]
    series = {}
    if histories:
        for run in runs:
            for key in run["metrics"]:
                url = f"{API}/runs/{run['id']}/metrics/{quote(key)}"
                series[f"{run['id']}/{key}"] = send(client, "GET", url).json()
    return {
        "experiments": sorted(experiments, key=lambda e: e["id"]),
        "runs": sorted(runs, key=lambda r: r["id"]),
        "series": series,
    }


def files_under(root: Path) -> dict[str, bytes | None]:
    """Every file below ``root``; the database's own files are listed without content."""
    out: dict[str, bytes | None] = {}
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            full = Path(dirpath) / name
            rel = str(full.relative_to(root))
            out[rel] = None if name.startswith(("naiad.db", "admin_token")) else full.read_bytes()
    return out


# --- fixtures


@pytest.fixture
def target(api: TestClient) -> dict[str, str]:
    """An experiment and a run with a param, a tag and a metric, for routes that need one."""
    run = send(
        api,
        "POST",
        f"{API}/runs",
        {"experiment": "fuzz", "params": {"lr": 0.1}, "tags": {"t": "v"}},
    )
    assert run.status_code == 201, run.text
    rid = run.json()["id"]
    batch = {
        "batch_id": "seed",
        "metrics": {"loss": {"steps": [0], "timestamps": [1.0], "values": [1.0]}},
    }
    assert send(api, "POST", f"{API}/runs/{rid}/metrics", batch).status_code == 200
    return {"exp": "fuzz", "run": rid}


@pytest.fixture
def tight(settings: Settings) -> Iterator[tuple[TestClient, Settings]]:
    """A server with small limits, so oversized batches and bodies are cheap to make."""
    from naiad.server.app import create_app

    limits = settings.model_copy(
        update={
            "max_batch_points": MAX_POINTS,
            "max_request_bytes": MAX_BYTES,
            "max_artifact_bytes": MAX_ARTIFACT,
        }
    )
    app = create_app(limits)
    with TestClient(app, headers={"authorization": f"Bearer {app.state.naiad.token}"}) as client:
        yield client, limits
    app.state.naiad.engine.dispose()


# --- strategies

SPECIAL = [
    "",
    " ",
    ".",
    "..",
    "../",
    "..\\",
    "/",
    "//",
    "%2e%2e",
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udfff",
    "\n",
    "\u2028",
    "NaN",
    "Infinity",
    "-Infinity",
    "null",
    "💧",
    "x" * 300,
    "Default",
    "Running",
    "Completed",
]
texts = st.one_of(
    st.text(max_size=12),
    st.sampled_from(SPECIAL),
    st.text(st.characters(categories=["Cs", "Cc"]), min_size=1, max_size=3),
)
numbers = st.one_of(
    st.integers(),
    st.integers(min_value=2**63, max_value=2**70),
    st.floats(),
    st.sampled_from([10**400, -(10**30), 2**63, -(2**63) - 1]),
)
json_values = st.recursive(
    st.none() | st.booleans() | numbers | texts,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(texts, kids, max_size=4),
    max_leaves=10,
)
FIELDS = [
    "name",
    "description",
    "tags",
    "experiment",
    "params",
    "status",
    "status_reason",
    "filter",
    "order_by",
    "offset",
    "limit",
    "batch_id",
    "metrics",
]
columns_like = st.dictionaries(
    st.sampled_from(["steps", "timestamps", "values"]) | texts,
    st.lists(st.one_of(numbers, texts, st.none()), max_size=4) | json_values,
    max_size=4,
)
shaped_bodies = st.one_of(
    st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=5),
    st.fixed_dictionaries(
        {
            "batch_id": texts | json_values,
            "metrics": st.dictionaries(texts, columns_like, max_size=3),
        }
    ),
    st.fixed_dictionaries({"params": st.dictionaries(texts, json_values, max_size=3)}),
    st.fixed_dictionaries({"tags": st.dictionaries(texts, json_values, max_size=3)}),
)
payloads = st.one_of(
    st.one_of(json_values, shaped_bodies).map(lambda body: json.dumps(body).encode()),
    st.binary(max_size=40),
    st.sampled_from([b"", b"{", b"[" * 100_000, b'{"name": "a"' + b"}" * 3, b"\xff\xfe"]),
)

FIELD_NAMES = [
    "metrics.loss",
    "metrics.`a b`",
    "params.lr",
    "params.opt",
    "tags.t",
    "start_time",
    "end_time",
    "created_at",
    "status",
    "name",
    "attributes.status",
    "attributes.start_time",
    "attributes.nope",
    "loss",
    "metric.loss",
]
OPERATORS = ["=", "!=", "<", "<=", ">", ">=", "like", "LIKE", ">>", "=="]
OPERANDS = [
    "1",
    "-5",
    "0.5",
    "1e999",
    "nan",
    "inf",
    "'adam'",
    '"adam"',
    "'%a%'",
    "'2024-01-01'",
    "'2024-01-01T00:00:00+02:00'",
    "'yesterday'",
    "1700000000",
    "adam",
    "'a\x00'",
    "''",
]
clauses = st.builds(
    lambda f, o, v: f"{f} {o} {v}",
    st.sampled_from(FIELD_NAMES),
    st.sampled_from(OPERATORS),
    st.sampled_from(OPERANDS) | texts,
)
filters = st.lists(clauses, min_size=1, max_size=3).map(" and ".join)
orderings = st.builds(
    lambda f, d: f + d,
    st.sampled_from(FIELD_NAMES) | texts,
    st.sampled_from(["", " DESC", " asc", " up"]),
)
query_values = st.one_of(
    texts,
    filters,
    orderings,
    st.integers().map(str),
    st.sampled_from(["1" + "0" * 25, "-1", "0", "1e3", "true", "maybe", "100000", "100001"]),
)
queries = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "experiment",
                "filter",
                "order_by",
                "offset",
                "limit",
                "run_id",
                "max_points",
                "path",
                "recursive",
            ]
        )
        | st.text(max_size=4),
        query_values,
    ),
    max_size=5,
)

word = st.text(string.ascii_letters + string.digits, min_size=1, max_size=8)
good_keys = st.from_regex(
    r"[A-Za-z0-9_][A-Za-z0-9_\-:]{0,12}(/[A-Za-z0-9_\-:]{1,6})?", fullmatch=True
)
good_names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_\-]{0,15}", fullmatch=True)
bad_keys = st.one_of(
    st.builds(lambda a, b: f"{a}..{b}", word, word),
    st.builds(lambda a, b: f"{a}/../{b}", word, word),
    word.map(lambda w: "/" + w),
    word.map(lambda w: "../" + w),
    st.builds(lambda a, b: f"{a}//{b}", word, word),
    st.builds(
        lambda a, c, b: f"{a}{c}{b}", word, st.characters(categories=["Cc", "Cs", "Cf"]), word
    ),
    word.map(lambda w: w + "\n"),  # a regex's "$" matches before a trailing newline
    st.text(string.ascii_letters, min_size=251, max_size=400),
    st.sampled_from(["", "..", "-x", ".hidden", "a\\b", "x\x00", "\ud800"]),
    st.text("äöü€💧", min_size=1, max_size=4),
)
bad_names = st.one_of(
    bad_keys,
    st.builds(lambda a, b: f"{a}/{b}", word, word),
    st.builds(lambda a, b: f"{a} {b}", word, word),
    word.map(lambda w: "_" + w),
    st.text(string.ascii_letters, min_size=201, max_size=260),
)

finite = st.floats(allow_nan=False, allow_infinity=False)
safe_text = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=20
)
param_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([10**400, -(2**63), 2**64]),
    finite,
    safe_text,
)


# --- the metric model

GOOD_METRIC_KEYS = ["loss", "acc", "train/loss", "gpu 0:util"]
SCHEMA, STORE = "schema", "store"  # where a bad batch is caught: pydantic or the store


@dataclass
class Batch:
    body: dict
    points: int
    problems: list[str]
    expected: dict[str, list[tuple[int, float, float]]]  # key -> points, when stored

    @property
    def clean(self) -> bool:
        return not self.problems


@st.composite
def metric_batches(draw: st.DrawFn, max_points: int) -> Batch:
    problems: list[str] = []
    # Most batches are clean, so that stored series grow and repeat steps; one part in
    # ten carries each kind of trouble.
    bad_id = draw(st.integers(0, 9)) == 0
    batch_id = draw(
        st.sampled_from(["", "a b", "x" * 65, "é", "../b", "a\x00"])
        if bad_id
        else st.sampled_from([f"b{i}" for i in range(6)]) | st.uuids().map(lambda u: u.hex)
    )
    if not re.fullmatch(r"[A-Za-z0-9_\-]{1,64}", batch_id):
        problems.append(SCHEMA)
    keys = draw(st.lists(st.sampled_from(GOOD_METRIC_KEYS), max_size=3, unique=True))
    if draw(st.integers(0, 9)) == 0:
        keys.append(draw(bad_keys.filter(lambda k: "\ud800" not in k)))
    metrics: dict[str, dict] = {}
    expected: dict[str, list[tuple[int, float, float]]] = {}
    points = 0
    oversize = draw(st.integers(0, 9)) == 0
    if oversize:
        keys = [*keys, "big"] if "big" not in keys else keys
    for key in keys:
        if key not in [*GOOD_METRIC_KEYS, "big"]:
            problems.append(STORE)
        n = max_points + draw(st.integers(1, 3)) if key == "big" else draw(st.integers(0, 8))
        steps = draw(
            st.lists(st.integers(-3, 12) | st.integers(I64_MIN, I64_MAX), min_size=n, max_size=n)
        )
        stamps = draw(st.lists(st.floats(0, 4e9) | finite, min_size=n, max_size=n))
        pairs = draw(
            st.lists(
                st.one_of(
                    finite.map(lambda v: (v, v)),
                    st.integers(-(10**15), 10**15).map(lambda i: (i, float(i))),
                    st.sampled_from(
                        [
                            ("NaN", math.nan),
                            ("Infinity", math.inf),
                            ("-Infinity", -math.inf),
                            (math.nan, math.nan),
                            (math.inf, math.inf),
                            (-math.inf, -math.inf),
                        ]
                    ),
                ),
                min_size=n,
                max_size=n,
            )
        )
        sent_values = [p[0] for p in pairs]
        expected[key] = list(zip(steps, stamps, [p[1] for p in pairs], strict=True))
        fault = draw(
            st.sampled_from([None] * 24 + ["length", "step", "range", "ts", "nonfinite", "value"])
        )
        if fault == "length":
            column = draw(st.sampled_from([steps, stamps, sent_values]))
            if column and draw(st.booleans()):
                column.pop()
            else:
                column.append(1)
            problems.append(SCHEMA)
        elif fault and n:
            i = draw(st.integers(0, n - 1))
            if fault == "step":
                steps[i] = draw(st.sampled_from([1.5, "x", None, [], {}, "1e3"]))
                problems.append(SCHEMA)
            elif fault == "range":
                steps[i] = draw(
                    st.integers(min_value=2**63)
                    | st.integers(max_value=-(2**63) - 1)
                    | st.just(10**400)
                )
                problems.append(STORE)
            elif fault == "ts":
                stamps[i] = draw(st.sampled_from(["abc", None, [], {}]))
                problems.append(SCHEMA)
            elif fault == "nonfinite":
                stamps[i] = draw(
                    st.sampled_from(["NaN", "Infinity", math.inf, math.nan, -math.inf])
                )
                problems.append(STORE)
            else:
                sent_values[i] = draw(st.sampled_from(["abc", None, [], {}, "", "1,5", 10**400]))
                problems.append(SCHEMA)
        metrics[key] = {"steps": steps, "timestamps": stamps, "values": sent_values}
        points += len(sent_values)
    if points > max_points:
        problems.append("size")
    return Batch({"batch_id": batch_id, "metrics": metrics}, points, problems, expected)


def encode(value: float) -> float | str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


@dataclass
class MetricModel:
    """What one run's metrics must read back as: points in arrival order, per key."""

    points: dict[str, list[tuple[int, float, float]]] = field(default_factory=dict)
    batch_ids: set[str] = field(default_factory=set)

    def post(self, client: TestClient, run_id: str, batch: Batch) -> None:
        note(f"batch {batch.body['batch_id']!r}: {batch.points} points, problems {batch.problems}")
        response = send(client, "POST", f"{API}/runs/{run_id}/metrics", batch.body)
        batch_id = batch.body["batch_id"]
        known = batch_id in self.batch_ids
        if batch.clean and known:
            assert response.status_code == 200 and response.json()["duplicate"] is True
            return
        if batch.clean:
            assert response.status_code == 200, response.text
            assert response.json() == {
                "batch_id": batch_id,
                "points": batch.points,
                "duplicate": False,
            }
            self.batch_ids.add(batch_id)
            for key, pts in batch.expected.items():
                if pts:
                    self.points.setdefault(key, []).extend(pts)
            return
        # Refused, or (a retried id) recognised as stored before: either way nothing new.
        if response.status_code == 200:
            assert known and SCHEMA not in batch.problems and response.json()["duplicate"] is True
        else:
            assert refused(response), response.text
            if not batch.clean:
                assert response.status_code in (400, 413, 422), response.text

    def verify(self, client: TestClient, run_id: str, run: dict | None = None) -> None:
        """Every series, whole and downsampled, and the run's summaries, equal the model."""
        keys = send(client, "GET", f"{API}/runs/{run_id}/metrics").json()
        assert sorted(keys) == sorted(self.points)
        run = run or send(client, "GET", f"{API}/runs/{run_id}").json()
        assert sorted(run["metrics"]) == sorted(self.points)
        for key, pts in self.points.items():
            # A series holds one point per step, the latest arrival winning (a retried job
            # logs steps again); the summary counts and bounds every point ever logged.
            latest = {p[0]: p for p in pts}
            series = [latest[step] for step in sorted(latest)]
            url = f"{API}/runs/{run_id}/metrics/{quote(key)}"
            whole = send(client, "GET", url).json()
            assert whole["total_points"] == len(series) and whole["downsampled"] is False
            assert whole["steps"] == [p[0] for p in series]
            assert whole["timestamps"] == [p[1] for p in series]
            assert whole["values"] == [encode(p[2]) for p in series]
            last = series[-1]
            logged = [p[2] for p in pts if not math.isnan(p[2])]
            assert run["metrics"][key] == {
                "value": encode(last[2]),
                "step": last[0],
                "timestamp": last[1],
                "min": encode(min(logged)) if logged else "NaN",
                "max": encode(max(logged)) if logged else "NaN",
                "count": len(pts),
            }
            if len(series) > 2:  # the chart's view: every point counted, extremes kept
                small = send(client, "GET", url, params={"max_points": 2}).json()
                assert small["downsampled"] is True and small["total_points"] == len(series)
                assert 1 <= len(small["steps"]) <= 2 and small["steps"][0] == series[0][0]
                assert sum(small["count"]) == len(series)
                real = [p[2] for p in series if not math.isnan(p[2])]
                highs = [v for v in small["max"] if v != "NaN"]
                lows = [v for v in small["min"] if v != "NaN"]
                as_float = lambda v: float(v) if isinstance(v, str) else v  # noqa: E731
                assert max(map(as_float, highs), default=None) == (max(real) if real else None)
                assert min(map(as_float, lows), default=None) == (min(real) if real else None)


# --- every route, any input

BODY_ROUTES = [
    ("POST", "/experiments"),
    ("PATCH", "/experiments/{exp}"),
    ("POST", "/runs"),
    ("PATCH", "/runs/{run}"),
    ("POST", "/runs/search"),
    ("POST", "/runs/{run}/params"),
    ("POST", "/runs/{run}/tags"),
    ("POST", "/runs/{run}/metrics"),
    ("PUT", "/runs/{run}/artifacts/fuzz/body.json"),
]


@examples(60)
@given(route=st.sampled_from(BODY_ROUTES), payload=payloads, json_type=st.booleans())
def test_any_body_gets_a_status_below_500_and_refusals_are_sentences(
    api: TestClient, target: dict[str, str], route: tuple[str, str], payload: bytes, json_type: bool
) -> None:
    method, template = route
    headers = {"content-type": "application/json" if json_type else "text/plain"}
    checked(api.request(method, API + template.format(**target), content=payload, headers=headers))


URL_ROUTES = [
    ("GET", "/experiments/{seg}", None),
    ("PATCH", "/experiments/{seg}", {"description": "d"}),
    ("DELETE", "/experiments/{seg}", None),
    ("GET", "/runs/{seg}", None),
    ("PATCH", "/runs/{seg}", {"status": "Running"}),
    ("DELETE", "/runs/{seg}", None),
    ("GET", "/runs", None),
    ("GET", "/runs/compare", None),
    ("GET", "/experiments", None),
    ("GET", "/runs/{seg}/metrics", None),
    ("GET", "/runs/{run}/metrics/{seg}", None),
    ("GET", "/runs/{run}/metrics/loss", None),
    ("POST", "/runs/{seg}/params", {"params": {"p": 1}}),
    ("POST", "/runs/{seg}/tags", {"tags": {"t": "v"}}),
    ("POST", "/runs/{seg}/metrics", {"batch_id": "q", "metrics": {}}),
    ("GET", "/runs/{seg}/artifacts", None),
    ("GET", "/runs/{run}/artifacts", None),
    ("GET", "/runs/{run}/artifacts/{seg}", None),
    ("PUT", "/runs/{run}/artifacts/{seg}", None),
]


@examples(60)
@given(route=st.sampled_from(URL_ROUTES), seg=texts | word, query=queries)
def test_any_path_segment_or_query_gets_a_status_below_500(
    api: TestClient,
    target: dict[str, str],
    route: tuple[str, str, dict | None],
    seg: str,
    query: list[tuple[str, str]],
) -> None:
    # A URL carries UTF-8, so lone surrogates cannot be sent; the bodies test covers them.
    assume(not re.search("[\ud800-\udfff]", seg + "".join(k + v for k, v in query)))
    assume(seg not in ("fuzz", "Default"))
    method, template, body = route
    url = API + template.format(seg=quote(seg, safe=""), **target)
    content = b"artifact" if method == "PUT" and body is None else None
    if body is not None:
        send(api, method, url, body, params=query)
    else:
        checked(api.request(method, url, params=query, content=content))


def test_filter_and_paging_edge_cases_are_sentences(
    api: TestClient, target: dict[str, str]
) -> None:
    """The search language on both backends: types that SQL would refuse are refused first."""
    for text in [
        "created_at > 1",
        "metrics.loss like 5",
        "params.lr like 0.1",
        "start_time like '2024'",
        "start_time > 'yesterday'",
        "tags.t = 'a\x00'",
    ]:
        response = send(api, "GET", f"{API}/runs", params={"filter": text})
        assert response.status_code == 400, (text, response.text)
    for order in ["created_at", "attributes.nope DESC", "x"]:
        assert refused(send(api, "GET", f"{API}/runs", params={"order_by": order}))
    assert refused(send(api, "GET", f"{API}/runs", params={"offset": 10**20}))
    assert refused(send(api, "POST", f"{API}/runs/search", {"offset": 10**20}))
    # Times compare as times: an ISO string or seconds since the epoch.
    for text in ["start_time > '2000-01-01'", "start_time > 946684800", "end_time < '2999-01-01'"]:
        assert send(api, "GET", f"{API}/runs", params={"filter": text}).status_code == 200, text
    found = send(
        api, "GET", f"{API}/runs", params={"filter": "start_time > '2000-01-01T00:00:00Z'"}
    )
    assert target["run"] in [r["id"] for r in found.json()["items"]]
    later = send(api, "GET", f"{API}/runs", params={"filter": "start_time > '2999-01-01'"})
    assert later.json()["total"] == 0
    liked = send(api, "GET", f"{API}/runs", params={"filter": "params.lr like '0.%'"})
    assert [r["id"] for r in liked.json()["items"]] == [target["run"]]


# --- metrics: all or nothing


@examples(40)
@given(batches=st.lists(metric_batches(MAX_POINTS), min_size=1, max_size=4))
def test_metric_batches_are_stored_exactly_or_not_at_all(
    tight: tuple[TestClient, Settings], batches: list[Batch]
) -> None:
    client, _ = tight
    run = send(client, "POST", f"{API}/runs", {"experiment": "metrics"}).json()
    model = MetricModel()
    for batch in batches:
        model.post(client, run["id"], batch)
    model.verify(client, run["id"])  # stored series only grow, so checking once at the end suffices


def test_nan_and_infinity_are_stored_and_charted(api: TestClient) -> None:
    rid = send(api, "POST", f"{API}/runs", {}).json()["id"]
    values = [1.0, math.nan, "NaN", math.inf, "Infinity", -math.inf, "-Infinity", 0.5]
    batch = {"steps": list(range(8)), "timestamps": [1.0] * 8, "values": values}
    assert (
        send(
            api, "POST", f"{API}/runs/{rid}/metrics", {"batch_id": "d", "metrics": {"loss": batch}}
        ).status_code
        == 200
    )
    whole = send(api, "GET", f"{API}/runs/{rid}/metrics/loss").json()
    assert whole["values"] == [
        1.0,
        "NaN",
        "NaN",
        "Infinity",
        "Infinity",
        "-Infinity",
        "-Infinity",
        0.5,
    ]
    chart = send(api, "GET", f"{API}/runs/{rid}/metrics/loss", params={"max_points": 4}).json()
    assert chart["max"][1] == "Infinity" and chart["min"][2] == "-Infinity"
    assert chart["values"][0] == 1.0 and chart["count"] == [2, 2, 2, 2]
    summary = send(api, "GET", f"{API}/runs/{rid}").json()["metrics"]["loss"]
    assert summary == {
        "value": 0.5,
        "step": 7,
        "timestamp": 1.0,
        "min": "-Infinity",
        "max": "Infinity",
        "count": 8,
    }
    nan_only = {"steps": [0, 1], "timestamps": [1.0, 2.0], "values": ["NaN", "NaN"]}
    send(
        api,
        "POST",
        f"{API}/runs/{rid}/metrics",
        {"batch_id": "e", "metrics": {"diverged": nan_only}},
    )
    summary = send(api, "GET", f"{API}/runs/{rid}").json()["metrics"]["diverged"]
    assert summary["value"] == summary["min"] == summary["max"] == "NaN"
    found = send(api, "GET", f"{API}/runs", params={"filter": "metrics.loss < 1"}).json()
    assert [r["id"] for r in found["items"]] == [rid]


# --- names and keys


@examples(30)
@given(
    where=st.sampled_from(
        [
            "experiment",
            "run experiment",
            "param",
            "tag",
            "metric",
            "experiment tag",
            "new run param",
        ]
    ),
    data=st.data(),
)
def test_invalid_names_and_keys_are_refused_and_change_nothing(
    api: TestClient, target: dict[str, str], where: str, data: st.DataObject
) -> None:
    bad = data.draw(bad_names if "experiment" in where and "tag" not in where else bad_keys)
    before = snapshot(api)
    fresh = f"e-{uuid.uuid4().hex[:8]}"
    run = target["run"]
    column = {"steps": [5], "timestamps": [2.0], "values": [3.0]}
    method, url, body = {
        "experiment": ("POST", "/experiments", {"name": bad}),
        "run experiment": ("POST", "/runs", {"experiment": bad, "params": {"a": 1}}),
        "param": ("POST", f"/runs/{run}/params", {"params": {"fresh": 1, bad: 2}}),
        "tag": ("POST", f"/runs/{run}/tags", {"tags": {"t": "changed", bad: "v"}}),
        "metric": (
            "POST",
            f"/runs/{run}/metrics",
            {"batch_id": fresh, "metrics": {"loss": column, bad: column}},
        ),
        "experiment tag": ("POST", "/experiments", {"name": fresh, "tags": {bad: "v"}}),
        "new run param": ("POST", "/runs", {"experiment": fresh, "params": {"ok": 1, bad: 2}}),
    }[where]
    response = send(api, method, API + url, body)
    assert response.status_code in (400, 422), response.text
    assert snapshot(api) == before


def test_text_that_cannot_be_stored_is_refused_everywhere(
    api: TestClient, target: dict[str, str]
) -> None:
    """PostgreSQL cannot store NUL and UTF-8 has no lone surrogates: refused on both backends."""
    run, exp = target["run"], target["exp"]
    before = snapshot(api)
    for bad in ["a\x00b", "\ud800"]:
        for method, url, body in [
            ("POST", "/experiments", {"name": "fine", "description": bad}),
            ("POST", "/experiments", {"name": "fine", "tags": {"k": bad}}),
            ("PATCH", f"/experiments/{exp}", {"description": bad}),
            ("POST", "/runs", {"name": bad}),
            ("PATCH", f"/runs/{run}", {"name": bad}),
            ("PATCH", f"/runs/{run}", {"status_reason": bad}),
            ("POST", f"/runs/{run}/tags", {"tags": {"k": bad}}),
            ("POST", f"/runs/{run}/params", {"params": {"k": bad}}),
            ("POST", "/runs", {"params": {"k": bad}}),
            ("POST", "/runs/search", {"filter": f"tags.t = '{bad}'"}),
            ("POST", "/runs/search", {"experiment": bad}),
            ("POST", "/runs/search", {"order_by": [bad]}),
        ]:
            response = send(api, method, API + url, body)
            assert response.status_code in (400, 422), (method, url, body, response.text)
    for url in [
        "/experiments/a%00b",
        "/runs/a%00b",
        f"/runs/{run}/metrics/lo%00ss",
        "/runs/a%00/artifacts/x",
        "/runs?experiment=a%00",
        "/runs?filter=tags.t%20%3D%20%27%00%27",
        "/runs/compare?run_id=a%00",
    ]:
        assert refused(send(api, "GET", API + url)), url
    assert snapshot(api) == before


# --- duplicates and conflicts


@examples(25)
@given(name=good_names, first=safe_text, second=safe_text)
def test_a_duplicate_experiment_name_is_409_and_the_original_stays(
    api: TestClient, name: str, first: str, second: str
) -> None:
    name = f"{name}-{uuid.uuid4().hex[:6]}"
    created = send(api, "POST", f"{API}/experiments", {"name": name, "description": first})
    assert created.status_code == 201
    again = send(
        api, "POST", f"{API}/experiments", {"name": name, "description": second, "tags": {"x": "y"}}
    )
    assert again.status_code == 409 and name in again.json()["message"]
    stored = send(api, "GET", f"{API}/experiments/{name}").json()
    assert (stored["id"], stored["description"], stored["tags"]) == (
        created.json()["id"],
        first,
        {},
    )


@examples(30)
@given(key=good_keys, first=param_values, second=param_values)
def test_params_are_write_once_and_a_conflict_keeps_the_original(
    api: TestClient, key: str, first: object, second: object
) -> None:
    run = send(api, "POST", f"{API}/runs", {"params": {key: first}})
    assert run.status_code == 201, run.text
    assert run.json()["params"] == {key: first}
    rid = run.json()["id"]
    again = send(api, "POST", f"{API}/runs/{rid}/params", {"params": {"other": 1, key: second}})
    if json.dumps(first) == json.dumps(second):
        assert again.status_code == 200 and again.json()["params"] == {key: first, "other": 1}
    else:
        assert again.status_code == 409 and key in again.json()["message"]
        assert send(api, "GET", f"{API}/runs/{rid}").json()["params"] == {key: first}


def test_non_finite_params_are_refused_not_silently_nulled(api: TestClient) -> None:
    rid = send(api, "POST", f"{API}/runs", {"params": {"lr": 0.1}}).json()["id"]
    for value in [math.nan, math.inf, -math.inf]:
        response = send(api, "POST", f"{API}/runs/{rid}/params", {"params": {"x": value}})
        assert response.status_code == 400, response.text
        assert refused(
            send(api, "POST", f"{API}/runs", {"experiment": "nf", "params": {"x": value}})
        )
    assert send(api, "GET", f"{API}/runs/{rid}").json()["params"] == {"lr": 0.1}
    assert send(api, "GET", f"{API}/experiments/nf").status_code == 404


# --- artifacts

DOTS = ["..", "%2e%2e", "%2E%2E", ".%2e", "%2e."]
SEPARATORS = ["/", "%2f", "%2F", "\\", "%5c", "%5C"]
evil_paths = st.one_of(
    st.builds(
        lambda before, dots, after, seps: (
            seps[0].join([*before, dots]) + seps[1] + seps[0].join(after)
        ),
        st.lists(st.sampled_from(["a", "b"]), max_size=2),
        st.sampled_from(DOTS),
        st.lists(st.sampled_from(["etc", "pwned", "..", "%2e%2e"]), min_size=1, max_size=3),
        st.tuples(st.sampled_from(SEPARATORS), st.sampled_from(SEPARATORS)),
    ),
    st.sampled_from(
        [
            "..",
            "%2e%2e",
            "/etc/pwned",
            "%2fetc%2fpwned",
            "%2F%2Fpwned",
            "a\\..\\..\\pwned",
            "C:\\pwned",
            "x%00y",
            "pwned%00.txt",
            "%00",
            "a/%0a/b",
            ".",
            "./",
            "a//b",
            ".naiad-tmp-pwned",
            "a/.naiad-tmp-pwned",
            "invoice\u202egpj.exe",  # shows as invoiceexe.jpg
            "\u200bhidden",
            "a\u2028b",
            "%2e%2e%2f%2e%2e%2f%2e%2e%2fpwned",
            "..%2f..%2f..%2f..%2fpwned",
        ]
    ),
)
segments = st.one_of(
    st.sampled_from(["a", "b", "model", "x.bin", "...", " sp ace", "ü", "💧", "q?x#y;=&"]),
    # No '%': Starlette's TestClient unquotes the path a second time (uvicorn does not).
    st.text(
        st.characters(exclude_categories=["Cc", "Cs", "Cf", "Zl", "Zp"], exclude_characters="/\\%"),
        min_size=1,
        max_size=12,
    ),
).filter(lambda s: s not in (".", "..") and not s.startswith(".naiad-tmp-"))
artifact_paths = st.lists(segments, min_size=1, max_size=3).map("/".join)


@examples(30)
@given(path=evil_paths, data=st.binary(min_size=1, max_size=32))
def test_path_traversal_is_refused_and_writes_nothing(
    api: TestClient, settings: Settings, target: dict[str, str], path: str, data: bytes
) -> None:
    root = settings.home.parent
    before = files_under(root)
    base = f"{API}/runs/{target['run']}/artifacts"
    for method in ("PUT", "GET"):
        response = raw_request(api, method, f"{base}/{path}", data if method == "PUT" else b"")
        assert refused(response), (method, path, response.text)
    listed = raw_request(api, "GET", f"{base}?path={path}")
    assert refused(listed) or listed.json() == [], (path, listed.text)
    assert files_under(root) == before
    assert not any(Path(p).exists() for p in ["/pwned", "/etc/pwned", "/tmp/pwned"])


@pytest.mark.parametrize(
    ("path", "shows"),
    [
        ("invoice\u202egpj.exe", "right-to-left override"),  # U+202E, category Cf
        ("model/\u200bweights.bin", "zero-width space"),  # U+200B, Cf
        ("a\u2066b", "left-to-right isolate"),  # U+2066, Cf
        ("notes\u2028.txt", "line separator"),  # U+2028, Zl
    ],
)
def test_format_characters_in_artifact_paths_are_refused(
    api: TestClient, settings: Settings, target: dict[str, str], path: str, shows: str
) -> None:
    """A name that displays as something else is refused, as control characters are."""
    before = files_under(settings.home.parent)
    url = f"{API}/runs/{target['run']}/artifacts/{quote(path)}"
    response = send(api, "PUT", url, content=b"x")
    assert response.status_code == 400, (shows, response.text)
    assert "format character" in response.json()["message"], response.text
    assert files_under(settings.home.parent) == before
    assert send(api, "GET", f"{API}/runs/{target['run']}/artifacts").json() == []


@pytest.mark.parametrize("name", ["digits\n", "digits\u202e", "digits\u200b"])
def test_names_with_a_trailing_control_or_format_character_are_refused(
    api: TestClient, name: str
) -> None:
    for url, body in (("/experiments", {"name": name}), ("/runs", {"experiment": name})):
        response = send(api, "POST", API + url, body)
        assert response.status_code == 400, response.text
    assert send(api, "GET", f"{API}/experiments").json() == []


@examples(30)
@given(puts=st.lists(st.tuples(artifact_paths, st.binary(max_size=64)), min_size=1, max_size=5))
def test_artifacts_land_exactly_where_named_or_not_at_all(
    api: TestClient, settings: Settings, puts: list[tuple[str, bytes]]
) -> None:
    rid = send(api, "POST", f"{API}/runs", {}).json()["id"]
    store = settings.home / "artifacts" / "runs" / rid / "artifacts"
    outside = {k: v for k, v in files_under(settings.home.parent).items() if rid not in k}
    model: dict[str, bytes] = {}
    for path, data in puts:
        response = send(api, "PUT", f"{API}/runs/{rid}/artifacts/{quote(path)}", content=data)
        parents = ["/".join(path.split("/")[:i]) for i in range(1, path.count("/") + 1)]
        clash = any(p in model for p in parents) or any(k.startswith(path + "/") for k in model)
        if clash:
            assert response.status_code == 409, response.text
        else:
            assert response.status_code == 201, response.text
            assert response.json() == {"path": path, "is_dir": False, "size": len(data)}
            model[path] = data
    assert files_under(store) == model
    listed = send(api, "GET", f"{API}/runs/{rid}/artifacts", params={"recursive": "true"}).json()
    assert [(a["path"], a["size"]) for a in listed] == sorted((p, len(d)) for p, d in model.items())
    for path, data in model.items():
        assert send(api, "GET", f"{API}/runs/{rid}/artifacts/{quote(path)}").content == data
    assert {k: v for k, v in files_under(settings.home.parent).items() if rid not in k} == outside


# --- size limits


@examples(20)
@given(
    route=st.sampled_from(
        [r for r in BODY_ROUTES if "artifacts" not in r[1]] + [("PATCH", "/experiments/artifacts")]
    ),
    extra=st.integers(1, 3 * MAX_BYTES),
    chunked=st.booleans(),
)
def test_an_oversized_body_is_413_and_changes_nothing(
    tight: tuple[TestClient, Settings], route: tuple[str, str], extra: int, chunked: bool
) -> None:
    client, _ = tight
    if send(client, "GET", f"{API}/experiments/artifacts").status_code == 404:
        send(client, "POST", f"{API}/experiments", {"name": "artifacts"})
    rid = send(client, "POST", f"{API}/runs", {"experiment": "artifacts"}).json()["id"]
    before = snapshot(client)
    method, template = route
    body = json.dumps({"description": "x" * (MAX_BYTES + extra)}).encode()
    content = iter([body[i : i + 4096] for i in range(0, len(body), 4096)]) if chunked else body
    response = checked(
        client.request(
            method,
            API + template.format(exp="artifacts", run=rid),
            content=content,
            headers={"content-type": "application/json"},
        )
    )
    assert response.status_code == 413, response.text
    assert str(MAX_BYTES) in response.json()["message"]
    assert snapshot(client) == before


@pytest.mark.parametrize("chunked", [False, True])
def test_an_oversized_invocation_is_413_before_any_endpoint_is_looked_up(
    tight: tuple[TestClient, Settings], chunked: bool
) -> None:
    client, _ = tight
    body = b"[" + b"0," * MAX_BYTES + b"0]"
    content = iter([body[i : i + 4096] for i in range(0, len(body), 4096)]) if chunked else body
    response = checked(
        client.post(
            "/endpoints/nowhere/invocations",
            content=content,
            headers={"content-type": "application/json"},
        )
    )
    assert response.status_code == 413, response.text
    assert str(MAX_BYTES) in response.json()["message"]
    small = client.post("/endpoints/nowhere/invocations", content=b"[0]")
    assert small.status_code == 404 and "No endpoint named 'nowhere'" in small.json()["message"]


def test_artifact_size_limit_is_its_own(tight: tuple[TestClient, Settings]) -> None:
    client, limits = tight
    rid = send(client, "POST", f"{API}/runs", {}).json()["id"]
    store = limits.home / "artifacts" / "runs" / rid / "artifacts"
    small = send(client, "PUT", f"{API}/runs/{rid}/artifacts/ok.bin", content=b"x" * MAX_ARTIFACT)
    assert small.status_code == 201
    for chunked in (False, True):
        data = b"y" * (MAX_ARTIFACT + 1)
        content = iter([data[:1000], data[1000:]]) if chunked else data
        big = send(client, "PUT", f"{API}/runs/{rid}/artifacts/big.bin", content=content)
        assert big.status_code == 413
    assert files_under(store) == {"ok.bin": b"x" * MAX_ARTIFACT}


# --- random operations


@dataclass
class RunModel:
    id: str
    params: dict = field(default_factory=dict)
    tags: dict = field(default_factory=dict)
    status: str = "Running"
    metrics: MetricModel = field(default_factory=MetricModel)
    files: dict[str, bytes] = field(default_factory=dict)


param_dicts = st.dictionaries(
    st.sampled_from(["lr", "bs", "opt"]) | bad_keys,
    param_values | st.sampled_from([math.nan, math.inf, "a\x00"]),
    max_size=3,
)
tag_dicts = st.dictionaries(
    st.sampled_from(["team", "note"]) | bad_keys, safe_text | st.just("a\x00"), max_size=2
)
operations = st.one_of(
    st.tuples(st.just("experiment"), st.integers(0, 2), safe_text | st.just("\x00")),
    st.tuples(st.just("run"), st.integers(0, 2), param_dicts),
    st.tuples(st.just("params"), st.integers(0, 3), param_dicts),
    st.tuples(st.just("tags"), st.integers(0, 3), tag_dicts),
    st.tuples(st.just("metrics"), st.integers(0, 3), metric_batches(MAX_POINTS)),
    st.tuples(
        st.just("status"), st.integers(0, 3), st.sampled_from(["Completed", "Failed", "Running"])
    ),
    st.tuples(
        st.just("artifact"),
        st.integers(0, 3),
        artifact_paths.map(lambda p: (p, False)) | evil_paths.map(lambda p: (p, True)),
        st.binary(max_size=16),
    ),
    st.tuples(
        st.just("garbage"), st.sampled_from(BODY_ROUTES[:-1]), st.integers(0, 3), json_values
    ),
)


def unstorable(text: str) -> bool:
    return "\x00" in text or re.search("[\ud800-\udfff]", text) is not None


def _param_problem(params: dict, stored: dict) -> bool:
    for key, value in params.items():
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_\-./ :]*", key) or ".." in key or "//" in key:
            return True
        if len(key) > 250 or (isinstance(value, float) and not math.isfinite(value)):
            return True
        if isinstance(value, str) and unstorable(value):
            return True
        if key in stored and json.dumps(stored[key]) != json.dumps(value):
            return True
    return False


@examples(25)
@given(ops=st.lists(operations, min_size=1, max_size=10))
def test_random_operations_never_disturb_what_is_stored(
    tight: tuple[TestClient, Settings], ops: list[tuple]
) -> None:
    client, _ = tight
    earlier = snapshot(client, histories=False)  # what previous examples stored
    prefix = uuid.uuid4().hex[:8]
    names = [f"{prefix}-e0", f"{prefix}-e1", f"../{prefix}"]
    experiments: dict[str, str] = {}  # name -> description
    runs: list[RunModel] = []

    def pick(i: int) -> tuple[str, RunModel | None]:
        return (runs[i].id, runs[i]) if i < len(runs) else (uuid.uuid4().hex, None)

    for op in ops:
        kind = op[0]
        note(f"{kind}: {op[1:]!r}")
        if kind == "experiment":
            name, description = names[op[1]], op[2]
            r = send(
                client, "POST", f"{API}/experiments", {"name": name, "description": description}
            )
            if op[1] == 2 or unstorable(description):
                assert r.status_code in (400, 422)
            elif name in experiments:
                assert r.status_code == 409
            else:
                assert r.status_code == 201
                experiments[name] = description
        elif kind == "run":
            name, params = names[op[1]], op[2]
            r = send(client, "POST", f"{API}/runs", {"experiment": name, "params": params})
            if op[1] == 2 or _param_problem(params, {}):
                assert r.status_code in (400, 422), r.text
            else:
                assert r.status_code == 201, r.text
                experiments.setdefault(name, "")
                runs.append(RunModel(r.json()["id"], params=dict(params)))
        elif kind == "params":
            rid, run = pick(op[1])
            r = send(client, "POST", f"{API}/runs/{rid}/params", {"params": op[2]})
            if run is None:
                assert r.status_code == 404
            elif _param_problem(op[2], run.params):
                assert r.status_code in (400, 409, 422), r.text
            else:
                assert r.status_code == 200, r.text
                run.params.update(op[2])
        elif kind == "tags":
            rid, run = pick(op[1])
            r = send(client, "POST", f"{API}/runs/{rid}/tags", {"tags": op[2]})
            bad = any(_param_problem({k: 0}, {}) or unstorable(v) for k, v in op[2].items())
            if bad:
                assert r.status_code in (400, 404, 422), r.text
            elif run is None:
                assert r.status_code == 404
            else:
                assert r.status_code == 200, r.text
                run.tags.update(op[2])
        elif kind == "metrics":
            rid, run = pick(op[1])
            if run is None:
                assert refused(send(client, "POST", f"{API}/runs/{rid}/metrics", op[2].body))
            else:
                run.metrics.post(client, rid, op[2])  # an ended run takes late points too
        elif kind == "status":
            rid, run = pick(op[1])
            r = send(client, "PATCH", f"{API}/runs/{rid}", {"status": op[2]})
            if run is None:
                assert r.status_code == 404
            elif run.status == "Running" or run.status == op[2]:
                assert r.status_code == 200
                run.status = op[2]
            else:
                assert r.status_code == 409
        elif kind == "artifact":
            rid, run = pick(op[1])
            (path, evil), data = op[2], op[3]
            url = f"{API}/runs/{rid}/artifacts/"
            r = (
                raw_request(client, "PUT", url + path, data)
                if evil
                else send(client, "PUT", url + quote(path), content=data)
            )
            parents = ["/".join(path.split("/")[:i]) for i in range(1, path.count("/") + 1)]
            if run is None or evil:
                assert refused(r), r.text
            elif any(p in run.files for p in parents) or any(
                k.startswith(path + "/") for k in run.files
            ):
                assert r.status_code == 409
            else:
                assert r.status_code == 201, r.text
                run.files[path] = data
        else:  # a body no schema accepts, to any route of this example's runs
            method, template = op[1]
            rid, _ = pick(op[2])
            body = {"zz_unknown": op[3], "name": "x", "params": {}}
            url = API + template.format(exp=names[0], run=rid)
            assert refused(send(client, method, url, body))

    for name in names:
        got = send(client, "GET", f"{API}/experiments/{quote(name, safe='')}")
        if name in experiments:
            assert got.json()["description"] == experiments[name]
        else:
            assert got.status_code == 404
    for run in runs:
        stored = send(client, "GET", f"{API}/runs/{run.id}").json()
        assert (stored["params"], stored["tags"], stored["status"]) == (
            run.params,
            run.tags,
            run.status,
        )
        run.metrics.verify(client, run.id, stored)
        listed = send(
            client, "GET", f"{API}/runs/{run.id}/artifacts", params={"recursive": "true"}
        ).json()
        assert {a["path"]: a["size"] for a in listed} == {p: len(d) for p, d in run.files.items()}
    mine = {run.id for run in runs}
    now = snapshot(client, histories=False)
    now["runs"] = [r for r in now["runs"] if r["id"] not in mine]
    now["experiments"] = [e for e in now["experiments"] if e["name"] not in names]
    assert now == earlier
