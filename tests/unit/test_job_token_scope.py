"""Jobs' own tokens: signed, expiring, and scoped to reads and the job's own run."""

import pytest

from naiad.core import job_tokens
from naiad.core.job_tokens import JobClaims
from naiad.server.auth import job_scope_problem

KEY = job_tokens.signing_key("admin-token")
CLAIMS = JobClaims("train-1", "r" * 32, 2_000_000_000)


def test_a_token_reads_back_until_it_expires() -> None:
    token = job_tokens.mint(KEY, "train-1", "r" * 32, 2_000_000_000)
    assert job_tokens.is_job_token(token) and not job_tokens.is_job_token("admin-token")
    assert job_tokens.read(KEY, token, now=1_999_999_999) == CLAIMS
    assert job_tokens.read(KEY, token, now=2_000_000_000) is None


def test_a_token_signed_with_another_admin_token_or_altered_is_refused() -> None:
    token = job_tokens.mint(KEY, "train-1", "r" * 32, 2_000_000_000)
    assert job_tokens.read(job_tokens.signing_key("rotated"), token, now=0) is None
    other = job_tokens.mint(KEY, "train-2", "r" * 32, 2_000_000_000)
    payload_of_other = other.split(".")[1]
    swapped = ".".join(["nj1", payload_of_other, token.split(".")[2]])
    assert job_tokens.read(KEY, swapped, now=0) is None
    for broken in ("nj1.", "nj1.x.y", "nj1..", "nj1." + "A" * 40):
        assert job_tokens.read(KEY, broken, now=0) is None


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/runs"),
        ("GET", "/api/v1/models/digits/versions"),
        ("POST", f"/api/v1/runs/{'r' * 32}/metrics"),
        ("PUT", f"/api/v1/runs/{'r' * 32}/artifacts/model.pt"),
        ("PATCH", f"/api/v1/runs/{'r' * 32}"),
        ("POST", "/api/v1/runs/search"),
        ("POST", "/endpoints/digits/invocations"),
    ],
)
def test_what_a_job_may_do(method: str, path: str) -> None:
    assert job_scope_problem(CLAIMS, method, path) is None


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", f"/api/v1/runs/{'r' * 32}"),
        ("POST", f"/api/v1/runs/{'o' * 32}/metrics"),
        ("POST", f"/api/v1/runs/{'r' * 32}x/metrics"),  # another run whose id starts alike
        ("POST", "/api/v1/runs"),
        ("POST", "/api/v1/jobs"),
        ("DELETE", "/api/v1/experiments/e"),
        ("POST", "/api/v1/admin/gc"),
        ("GET", "/api/v1/keys"),
        ("GET", "/api/v1/keys/admin"),
        ("GET", "/api/v1/audit"),
        ("GET", "/notebooks/lab/api/kernels"),
        ("WebSocket", "/api/v1/runs/live"),
    ],
)
def test_what_a_job_may_not_do_names_the_job(method: str, path: str) -> None:
    problem = job_scope_problem(CLAIMS, method, path)
    assert problem is not None and problem.status_code == 403
    assert "The token of job 'train-1'" in problem.message
