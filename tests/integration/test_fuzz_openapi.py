"""Schemathesis over the server's own OpenAPI document, against the real app on SQLite and
PostgreSQL: no operation may answer 5xx, whatever it is sent.

Every operation gets cases that fit its schema (they reach the code behind validation) and
cases that do not. Half of the cases take their path segments from a list of names that
exist in the store and of strings known to break parsers (a superscript digit is a digit
to ``str.isdigit`` and not a number to ``int``; a 23-digit version overflows a database
integer), so the routes are fuzzed past "not found" too. Generation is derandomized, so a
run finds what the last one found, and bounded, so the whole document takes seconds.

The app runs without its lifespan: the scheduler and the endpoint keeper are off, so no
case starts a job or a model server (the routes work without them).
"""

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

API = "/api/v1"
EXAMPLES = 20  # per operation, fitting and not; about 60 operations
# Path segments that have broken parsers: digits to str.isdigit that int() refuses (³) or
# reads (٣), numbers past a database integer, a right-to-left override, traversal.
TRICKY = [
    "0",
    "-1",
    "³",
    "62³",
    "٣",
    "99999999999999999999999",
    "9223372036854775808",
    "1e3",
    "a\u202eb",
    " ",
    "..",
    "a/../b",
]


@pytest.fixture(autouse=True)
def hypothesis_as_it_was() -> Iterator[None]:
    """Schemathesis swaps parts of Hypothesis for speed when it first generates (among
    them the printer of falsifying examples, which then prints nothing); put them back,
    so the Hypothesis tests that run after these still say what failed. (Its pytest
    plugin, which would swap them at start-up, is off: ``-p no:schemathesis``.)"""
    import hypothesis.core
    from hypothesis.internal import entropy
    from hypothesis.internal.conjecture import engine
    from hypothesis.strategies._internal import collections, core

    swapped = [
        (hypothesis.core, "RepresentationPrinter"),
        (hypothesis.core, "BUFFER_SIZE"),
        (engine, "BUFFER_SIZE"),
        (collections, "BUFFER_SIZE"),
        (core, "is_first_param_referenced_in_function"),
        (entropy, "register_random"),
    ]
    saved = [(module, name, module.__dict__.get(name)) for module, name in swapped]
    yield
    for module, name, value in saved:
        if value is None:
            module.__dict__.pop(name, None)
        else:
            setattr(module, name, value)


@pytest.fixture
def fuzzed(app, tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, list[str]]]]:  # type: ignore[no-untyped-def]
    """A client on the app (no lifespan) and, per path parameter, values that exist."""
    import torch
    from torch import nn

    from naiad.runtime.models import save_model
    from naiad.sdk.models import pack_model

    token = app.state.naiad.token
    client = TestClient(
        app, headers={"authorization": f"Bearer {token}"}, raise_server_exceptions=False
    )
    run = client.post(f"{API}/runs", json={"experiment": "fuzz", "params": {"lr": 0.1}}).json()
    series = {"steps": [0], "timestamps": [1.0], "values": [1.0]}
    batch = {"batch_id": "b", "metrics": {"loss": series}}
    assert client.post(f"{API}/runs/{run['id']}/metrics", json=batch).status_code == 200
    assert client.put(f"{API}/runs/{run['id']}/artifacts/a.txt", content=b"a").status_code < 300
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    archive = pack_model(save_model(net, torch.zeros(1, 1, 8, 8), tmp_path / "digits"))
    uri = client.put(f"{API}/models/uploads", content=archive).json()["source_uri"]
    assert client.post(f"{API}/models/digits/versions", json={"upload_uri": uri}).is_success
    alias = client.put(f"{API}/models/digits/aliases/production", json={"version": 1})
    assert alias.is_success, alias.text
    access_key = client.post(f"{API}/keys", json={"description": "fuzz"}).json()
    user = {"name": "fuzzer", "role": "editor", "password": "fuzzer-password"}
    assert client.post(f"{API}/users", json=user).is_success
    assert client.post(f"{API}/projects", json={"name": "fuzz"}).is_success
    member = client.put(f"{API}/projects/fuzz/members/fuzzer", json={"role": "viewer"})
    assert member.is_success, member.text
    existing = {
        "name": ["digits", "fuzz"],
        "run_id": [run["id"]],
        "key": ["loss"],
        "path": ["a.txt"],
        "version": ["1", "latest", "production"],
        "alias": ["production"],
        "access_key_id": [access_key["access_key_id"]],
        "user": ["fuzzer"],
    }
    yield client, existing
    client.close()


def _send(api: TestClient, case: schemathesis.Case):  # type: ignore[no-untyped-def]
    """The case through the app's own test client."""
    kwargs = case.as_transport_kwargs(base_url="http://testserver")
    request = {k: kwargs[k] for k in ("method", "url", "params", "headers") if kwargs.get(k)}
    if "json" in kwargs:
        request["json"] = kwargs["json"]
    elif kwargs.get("data") is not None:
        request["content"] = kwargs["data"]
    response = api.request(**request)
    response.request.read()  # a failure report quotes the request's body
    return response


def _path_parameters(path: str) -> list[str]:
    return re.findall(r"{([^}]+)}", path)


def _fuzz(api: TestClient, operation, existing: dict[str, list[str]]) -> str | None:  # type: ignore[no-untyped-def]
    """What went wrong with one operation (its smallest failing case), or None.

    A schema allowing a list of up to 10,000 items has negative cases longer than
    Hypothesis can build (it refuses such a strategy outright); such an operation is
    fuzzed with its positive cases alone rather than not at all.
    """
    both = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    try:
        return _fuzz_modes(api, operation, existing, both)
    except InvalidArgument as exc:
        if "can never generate a value" not in str(exc):
            return f"{operation.label}: {exc}"
        return _fuzz_modes(api, operation, existing, (GenerationMode.POSITIVE,))


def _fuzz_modes(api: TestClient, operation, existing: dict[str, list[str]], modes) -> str | None:  # type: ignore[no-untyped-def]
    cases = st.one_of(*(operation.as_strategy(mode) for mode in modes))
    segments = st.fixed_dictionaries(
        {
            name: st.sampled_from(existing.get(name, []) + TRICKY)
            for name in _path_parameters(operation.path)
        }
    )

    @hypothesis_settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases, chosen=st.none() | segments)
    def check(case: schemathesis.Case, chosen: dict[str, str] | None) -> None:
        if chosen:
            case.path_parameters = {**(case.path_parameters or {}), **chosen}
        case.validate_response(_send(api, case), checks=[not_a_server_error])

    try:
        check()
    except InvalidArgument:
        raise
    except Exception as exc:
        return f"{operation.label}: {exc}"
    return None


def _document(api: TestClient) -> dict:
    response = api.get(f"{API}/openapi.json")
    assert response.status_code == 200, response.text
    return response.json()


def test_no_operation_answers_a_server_error(
    fuzzed: tuple[TestClient, dict[str, list[str]]],
) -> None:
    api, existing = fuzzed
    schema = schemathesis.openapi.from_dict(_document(api))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 40, "the document lost its operations"
    # Deletions last, so the other operations meet the things that exist.
    operations.sort(key=lambda op: op.method.upper() == "DELETE")
    failures = [problem for op in operations if (problem := _fuzz(api, op, existing))]
    assert not failures, "\n\n".join(failures)


def test_every_tricky_segment_beside_existing_names_is_a_4xx(
    fuzzed: tuple[TestClient, dict[str, list[str]]],
) -> None:
    """Deterministically, on every operation that needs no body: each path segment in turn
    takes each of TRICKY while the others name things that exist (a model's version is
    only looked up once the model is found)."""
    api, existing = fuzzed
    failures = []
    for template, methods in _document(api)["paths"].items():
        names = _path_parameters(template)
        for method, operation in methods.items():
            if (operation.get("requestBody") or {}).get("required"):
                continue
            for name in names:
                for value in TRICKY:
                    chosen = {n: existing[n][0] for n in names} | {name: value}
                    path = template.format(**{n: quote(v, safe="") for n, v in chosen.items()})
                    response = api.request(method, path)
                    if response.status_code >= 500:
                        failures.append(f"{method.upper()} {path}: {response.text[:200]}")
    assert not failures, "\n".join(failures)


def test_a_version_that_is_not_a_plain_number_is_a_4xx(
    fuzzed: tuple[TestClient, dict[str, list[str]]],
) -> None:
    """What the outside fuzzer found: digits to ``str.isdigit`` that are no number to
    ``int``, and numbers too large for the database, on a model that exists."""
    api, _ = fuzzed
    for version in ("³", "62³", "٣", "99999999999999999999999", "2147483648"):
        for method, suffix in (("GET", ""), ("POST", "/quantize"), ("GET", "/evaluations")):
            response = api.request(method, f"{API}/models/digits/versions/{version}{suffix}")
            assert 400 <= response.status_code < 500, (method, version, response.text)
            assert response.json()["message"].endswith(".")
    alias = api.put(f"{API}/models/digits/aliases/next", json={"version": 10**23})
    assert alias.status_code == 404, alias.text
