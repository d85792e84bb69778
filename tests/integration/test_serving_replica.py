"""A real replica process on a loopback port: what an endpoint's clients and controller see."""

import asyncio
import io
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
import torch
from prometheus_client.parser import text_string_to_metric_families
from torch import nn

from naiad.core import frames
from naiad.runtime import save_model
from naiad.server.proxy.lanes import Lanes
from naiad.server.proxy.upstream import Upstream
from naiad.serving.main import parse_args
from naiad.testing.live import free_port


class TinyCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.head = nn.Linear(4 * 6 * 6, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x).relu().flatten(1))


# A network whose batches take a while (so requests are in flight when SIGTERM comes) and
# which refuses some valid inputs (so a model failure can be told from a bad request).
SLOW_NETWORK = textwrap.dedent(
    """
    import time

    import torch
    from torch import nn


    class Slow(nn.Module):
        def __init__(self, seconds: float = 0.0) -> None:
            super().__init__()
            self.seconds = seconds
            self.linear = nn.Linear(4, 2)

        def forward(self, x):
            if (x < -100).any():
                raise ValueError("inputs below -100 are out of this model's range")
            if bool((x != 0).any()):  # the replica's warm-up sends zeros: no wait then
                time.sleep(self.seconds)
            return self.linear(x)
    """
)


@dataclass
class Replica:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait(10)


def start_replica(
    model_dir: Path, tmp: Path, *flags: str, env: dict[str, str] | None = None
) -> Replica:
    port = free_port()
    log = tmp / f"replica-{port}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "naiad.serving.main",
                str(model_dir),
                "--port",
                str(port),
                *flags,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
    replica = Replica(process, port, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"replica exited early:\n{log.read_text()}")
        try:
            if httpx.get(f"{replica.url}/ping", timeout=0.5).status_code == 200:
                return replica
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    replica.stop()
    raise RuntimeError(f"replica not ready in 60s:\n{log.read_text()}")


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Replica, nn.Module]]:
    """A TorchScript CNN on 8x8 digits, served with small body and row limits."""
    tmp = tmp_path_factory.mktemp("digits")
    torch.manual_seed(0)
    module = TinyCNN().eval()
    model_dir = save_model(
        module, torch.rand(2, 1, 8, 8), tmp / "model", classes=list("0123456789")
    )
    replica = start_replica(
        model_dir, tmp, "--max-body-bytes", "200000", env={"NAIAD_MAX_ROWS_PER_REQUEST": "100"}
    )
    yield replica, module
    assert replica.stop() == 0


@pytest.fixture(scope="module")
def slow_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A safetensors model of the Slow network (0.3 s a batch), and the env to import it."""
    tmp = tmp_path_factory.mktemp("slow")
    package = tmp / "pkg"
    package.mkdir()
    (package / "naiad_slow_network.py").write_text(SLOW_NETWORK)
    env = {"PYTHONPATH": os.pathsep.join([str(package), os.environ.get("PYTHONPATH", "")])}
    sys.path.insert(0, str(package))
    try:
        import naiad_slow_network

        model_dir = save_model(
            naiad_slow_network.Slow(),
            torch.zeros(2, 4),
            tmp / "model",
            format="safetensors",
            architecture_kwargs={"seconds": 0.3},
        )
    finally:
        sys.path.remove(str(package))
        sys.modules.pop("naiad_slow_network", None)
    return model_dir, env


def expected(module: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return module(torch.from_numpy(x)).numpy()


def images(rows: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((rows, 1, 8, 8)).astype(np.float32)


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_json_request_gets_predictions_and_labels(digits: tuple[Replica, nn.Module]) -> None:
    replica, module = digits
    x = images(3)
    response = httpx.post(f"{replica.url}/invocations", json={"inputs": x.tolist()})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    want = expected(module, x)
    np.testing.assert_allclose(body["predictions"], want, rtol=1e-4, atol=1e-5)
    assert body["labels"] == [str(i) for i in want.argmax(1)]

    single = httpx.post(f"{replica.url}/invocations", json={"instances": x[0].tolist()})
    np.testing.assert_allclose(single.json()["predictions"], want[:1], rtol=1e-4, atol=1e-5)


def test_npy_request_gets_npy_back(digits: tuple[Replica, nn.Module]) -> None:
    replica, module = digits
    x = images(5, seed=1)
    response = httpx.post(
        f"{replica.url}/invocations",
        content=npy(x),
        headers={"content-type": "application/x-npy", "accept": "application/x-npy"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-npy"
    got = np.load(io.BytesIO(response.content), allow_pickle=False)
    np.testing.assert_allclose(got, expected(module, x), rtol=1e-4, atol=1e-5)


def test_csv_rows_are_examples_and_a_request_at_the_row_limit_is_served(
    digits: tuple[Replica, nn.Module],
) -> None:
    replica, module = digits
    x = images(3, seed=2)
    rows = "\n".join(",".join(f"{v:.9g}" for v in example.ravel()) for example in x)
    response = httpx.post(
        f"{replica.url}/invocations", content=rows, headers={"content-type": "text/csv"}
    )
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(
        response.json()["predictions"], expected(module, x), rtol=1e-4, atol=1e-5
    )
    full = httpx.post(
        f"{replica.url}/invocations",
        content=npy(images(100)),
        headers={"content-type": "application/x-npy", "accept": "application/x-npy"},
    )
    assert full.status_code == 200, full.text
    assert np.load(io.BytesIO(full.content)).shape == (100, 10)


def test_the_row_limit_is_an_option_with_a_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NAIAD_MAX_ROWS_PER_REQUEST", raising=False)
    assert parse_args(["model", "--port", "0"]).max_rows == 10_000
    assert parse_args(["model", "--port", "0", "--max-rows", "5"]).max_rows == 5


def test_concurrent_requests_each_get_their_own_answer(digits: tuple[Replica, nn.Module]) -> None:
    replica, module = digits
    inputs = [images(1 + i % 3, seed=100 + i) for i in range(96)]

    async def send_all() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=32)
        async with httpx.AsyncClient(base_url=replica.url, limits=limits, timeout=30) as client:
            return await asyncio.gather(
                *(client.post("/invocations", json={"inputs": x.tolist()}) for x in inputs)
            )

    before = httpx.get(f"{replica.url}/stats").json()
    responses = asyncio.run(send_all())
    for x, response in zip(inputs, responses, strict=True):
        assert response.status_code == 200, response.text
        np.testing.assert_allclose(
            response.json()["predictions"], expected(module, x), rtol=1e-4, atol=1e-5
        )
    after = httpx.get(f"{replica.url}/stats").json()
    assert after["requests"]["200"] - before["requests"].get("200", 0) == 96
    batches = after["batches"] - before["batches"]
    assert batches < 96, "concurrent requests should have shared batches"


JSON = "application/json"
NPY = "application/x-npy"


def test_a_frame_carries_many_invocations_each_answered_as_if_alone(
    digits: tuple[Replica, nn.Module],
) -> None:
    replica, module = digits
    one, two = images(1, seed=7), images(2, seed=8)
    requests = [
        (JSON.encode(), b"", orjson.dumps({"inputs": one.tolist()})),
        (JSON.encode(), b"", b'{"inputs": [1, 2'),
        (NPY.encode(), NPY.encode(), npy(two)),
    ]
    before = httpx.get(f"{replica.url}/stats").json()["requests"]
    response = httpx.post(
        f"{replica.url}{frames.PATH}",
        content=frames.encode_requests(requests),
        headers={"content-type": frames.FRAMES.decode()},
    )
    assert response.status_code == 200, response.text
    ok, bad, array = frames.decode_answers(response.content)
    assert ok[:2] == (200, JSON.encode())
    np.testing.assert_allclose(
        orjson.loads(ok[2])["predictions"], expected(module, one), rtol=1e-4, atol=1e-5
    )
    assert bad[0] == 400 and orjson.loads(bad[2])["error"] == "invalid_input"
    assert array[:2] == (200, NPY.encode())
    got = np.load(io.BytesIO(array[2]), allow_pickle=False)
    np.testing.assert_allclose(got, expected(module, two), rtol=1e-4, atol=1e-5)
    after = httpx.get(f"{replica.url}/stats").json()["requests"]
    assert after["200"] - before.get("200", 0) == 2  # counted as the requests they carry
    assert after["400"] - before.get("400", 0) == 1

    # A frame larger than the replica's body limit (200,000 bytes here) is read whole; each
    # request in it is held to that limit on its own.
    big = b"[" + b"0," * 105_000 + b"0]"
    mixed = [(JSON.encode(), b"", requests[0][2]), (JSON.encode(), b"", big)]
    response = httpx.post(
        f"{replica.url}{frames.PATH}",
        content=frames.encode_requests(mixed),
        headers={"content-type": frames.FRAMES.decode()},
    )
    assert response.status_code == 200, response.text
    small, large = frames.decode_answers(response.content)
    assert small[0] == 200
    assert large[0] == 413 and b"200000 bytes" in large[2]

    broken = httpx.post(f"{replica.url}{frames.PATH}", content=b"\x05\x00\x00\x00abc")
    assert broken.status_code == 400 and broken.json()["error"] == "invalid_frame"
    assert httpx.post(f"{replica.url}/invocations", json={"inputs": one.tolist()}).is_success


def test_the_proxy_sends_concurrent_requests_in_frames_that_share_batches(
    digits: tuple[Replica, nn.Module],
) -> None:
    replica, module = digits
    inputs = [images(1, seed=200 + i) for i in range(48)]

    async def send_all() -> list[tuple[int, bytes]]:
        upstream = Upstream(timeout_s=30)
        lanes = Lanes(upstream)
        target = ("127.0.0.1", replica.port)
        headers = {"content-type": JSON}
        replies = await asyncio.gather(
            *(lanes.post(target, orjson.dumps({"inputs": x.tolist()}), headers) for x in inputs)
        )
        await upstream.aclose()
        return [(reply.status, reply.body) for reply in replies]

    before = httpx.get(f"{replica.url}/stats").json()
    replies = asyncio.run(send_all())
    for x, (status, body) in zip(inputs, replies, strict=True):
        assert status == 200, body
        np.testing.assert_allclose(
            orjson.loads(body)["predictions"], expected(module, x), rtol=1e-4, atol=1e-5
        )
    after = httpx.get(f"{replica.url}/stats").json()
    assert after["requests"]["200"] - before["requests"]["200"] == 48
    assert after["batches"] - before["batches"] <= 4, "requests sent at once share batches"


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code", "words"),
    [
        (b'{"inputs": [1, 2', JSON, 400, "invalid_input", "not valid JSON"),
        (
            orjson.dumps({"inputs": np.zeros((2, 64)).tolist()}),
            JSON,
            400,
            "invalid_input",
            "inputs must be float32[N, 1, 8, 8]; got shape [2, 64]",
        ),
        (orjson.dumps({"inputs": [[[["a"] * 8] * 8]]}), JSON, 400, "invalid_input", "numbers"),
        (b"1,2", "text/plain", 415, "unsupported_media_type", "text/csv"),
        (
            orjson.dumps({"inputs": images(1).tolist()}),
            "text/plain",
            415,
            "unsupported_media_type",
            "send Content-Type: application/json",
        ),
        (b"1,2\n3,4\n", "text/csv", 400, "invalid_input", "CSV rows of 2 values"),
        (npy(images(101)), NPY, 413, "payload_too_large", "at most 100 per request. Split"),
        (b"[" + b"0," * 150_000 + b"0]", JSON, 413, "payload_too_large", "200000 bytes"),
    ],
)
def test_bad_input_is_a_4xx_sentence_and_the_replica_keeps_serving(
    digits: tuple[Replica, nn.Module],
    body: bytes,
    content_type: str,
    status: int,
    code: str,
    words: str,
) -> None:
    replica, _ = digits
    headers = {"content-type": content_type}
    response = httpx.post(f"{replica.url}/invocations", content=body, headers=headers)
    assert response.status_code == status
    answer = response.json()
    assert answer["error"] == code and words in answer["message"]
    assert "Traceback" not in response.text
    ok = httpx.post(f"{replica.url}/invocations", json={"inputs": images(1).tolist()})
    assert ok.status_code == 200


def test_unknown_routes_and_methods(digits: tuple[Replica, nn.Module]) -> None:
    replica, _ = digits
    missing = httpx.get(f"{replica.url}/predict")
    assert missing.status_code == 404 and "POST /invocations" in missing.json()["message"]
    wrong = httpx.get(f"{replica.url}/invocations")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"


def test_metrics_are_prometheus_text_and_move(digits: tuple[Replica, nn.Module]) -> None:
    replica, _ = digits

    def scrape() -> dict[str, float]:
        text = httpx.get(f"{replica.url}/metrics").text
        samples = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                label = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                samples[f"{sample.name}{{{label}}}"] = sample.value
        return samples

    before = scrape()
    for _ in range(3):
        httpx.post(f"{replica.url}/invocations", json={"inputs": images(2).tolist()})
    httpx.post(
        f"{replica.url}/invocations", content=b"{", headers={"content-type": "application/json"}
    )
    after = scrape()
    ok, bad = "naiad_replica_requests_total{code=200}", "naiad_replica_requests_total{code=400}"
    assert after[ok] - before.get(ok, 0) == 3
    assert after[bad] - before.get(bad, 0) == 1
    count = "naiad_replica_request_seconds_count{}"
    assert after[count] - before[count] == 4
    assert after["naiad_replica_batch_rows_sum{}"] - before["naiad_replica_batch_rows_sum{}"] == 6
    assert (
        "naiad_replica_queue_depth{}" in after and "naiad_replica_inference_seconds_sum{}" in after
    )

    stats = httpx.get(f"{replica.url}/stats").json()
    assert stats["latency"]["p99_ms"] > 0 and stats["queue_depth"] == 0
    assert sum(stats["batch_rows"]["counts"]) == stats["batches"]


def test_model_failure_is_422_a_full_queue_503_and_sigterm_drains(
    slow_model: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    model_dir, env = slow_model
    capture = tmp_path / "capture"
    replica = start_replica(
        model_dir,
        tmp_path,
        *("--max-batch", "4", "--queue-size", "4"),
        *("--capture-dir", str(capture), "--capture-fraction", "1"),
        env=env,
    )
    try:
        failed = httpx.post(f"{replica.url}/invocations", json={"inputs": [[-1000, 0, 0, 0]]})
        assert failed.status_code == 422
        assert failed.json() == {
            "error": "model_error",
            "message": "The model failed on this input: inputs below -100 are out of this "
            "model's range.",
        }

        async def flood() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=replica.url, timeout=30) as client:
                sends = [
                    client.post("/invocations", json={"inputs": [[1, 2, 3, i]]}) for i in range(12)
                ]
                return await asyncio.gather(*sends)

        # 12 at once against a 4-request queue and a busy model: some are turned away.
        flooded = asyncio.run(flood())
        assert {r.status_code for r in flooded} == {200, 503}
        refused = next(r for r in flooded if r.status_code == 503)
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["error"] == "queue_full"

        async def drain() -> tuple[list[httpx.Response], int, float]:
            async with httpx.AsyncClient(base_url=replica.url, timeout=30) as client:
                sends = [
                    asyncio.ensure_future(
                        client.post("/invocations", json={"inputs": [[1, 1, 1, i]]})
                    )
                    for i in range(4)
                ]
                await asyncio.sleep(0.15)  # received, and the first batch is running
                stopped = time.monotonic()
                replica.process.send_signal(signal.SIGTERM)
                responses = await asyncio.gather(*sends)
                code = await asyncio.to_thread(replica.process.wait, 30)
                return responses, code, time.monotonic() - stopped

        responses, code, seconds = asyncio.run(drain())
        assert [r.status_code for r in responses] == [200] * 4
        assert code == 0 and seconds < 10
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{replica.url}/ping")
    finally:
        replica.stop()

    lines = [orjson.loads(line) for f in sorted(capture.glob("*.jsonl")) for line in f.open("rb")]
    assert not list(capture.glob("*.part")), "files are closed at exit"
    drained = sorted(r["inputs"][0] for r in lines if r["inputs"][0][:3] == [1, 1, 1])
    assert drained == [[1, 1, 1, i] for i in range(4)]
    assert all(len(r["outputs"]) == 1 and len(r["outputs"][0]) == 2 for r in lines)


def test_refusals_at_start_are_one_sentence(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "naiad.serving.main", *args],
            capture_output=True,
            text=True,
            timeout=120,
        )

    exposed = run(str(tmp_path), "--port", "0", "--host", "0.0.0.0")
    assert exposed.returncode == 2 and "pass --allow-remote" in exposed.stderr
    missing = run(str(tmp_path), "--port", "0")
    assert missing.returncode == 2
    assert missing.stderr.strip().endswith("which writes it.")
    assert "Traceback" not in missing.stderr


def test_the_replica_loads_no_server_side_code() -> None:
    code = (
        "import sys, naiad.serving.main\n"
        "bad = [m for m in ('sqlalchemy', 'fastapi', 'alembic', 'naiad.store', 'naiad.server',"
        " 'naiad.services', 'naiad.sdk') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
