"""Endpoints end to end: a live server, real replica processes, the SDK and the CLI.

One endpoint ("shared", two replicas of a TorchScript model answering x * version) serves
the tests that need traffic: invocations and bad input, a replica SIGKILLed under load, a
rollout under load, a server restart. The CLI test deploys its own.
"""

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import naiad
from naiad.core.errors import InvalidInput, NotFound, PayloadTooLarge, ServerError
from naiad.sdk.endpoints import EndpointFailed, EndpointHandle
from naiad.server.traffic.book import FRESH_REPLICA_S
from naiad.testing.endpoints import Load, broken_model, replica_pids, scale_model
from naiad.testing.live import LiveServer


def wait_until(check: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached in {timeout}s")
        time.sleep(0.1)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


@pytest.fixture(scope="module")
def client(server: LiveServer) -> naiad.Client:
    return naiad.Client(url=server.url, token=server.token)


@pytest.fixture(scope="module")
def models(client: naiad.Client, tmp_path_factory: pytest.TempPathFactory) -> None:
    root = tmp_path_factory.mktemp("models")
    client.models.register("scale", path=scale_model(root / "v1", 1.0))
    client.models.register("scale", path=scale_model(root / "v2", 2.0))
    client.models.register("broken", path=broken_model(root / "broken"))


@pytest.fixture(scope="module")
def shared(client: naiad.Client, models: None) -> EndpointHandle:
    return client.endpoints.deploy("shared", model="scale:1", replicas=2, wait=True, timeout=120)


def pids_of(handle: EndpointHandle) -> list[int]:
    return [r.pid for v in handle.refresh().variants for r in v.live if r.pid]


def all_healthy(handle: EndpointHandle) -> bool:
    endpoint = handle.refresh()
    return endpoint.status == "InService" and all(
        len(v.live) == v.replicas and all(r.healthy for r in v.live) for v in endpoint.variants
    )


def test_predict_and_bad_input_never_hurt_a_replica(
    client: naiad.Client, shared: EndpointHandle, server: LiveServer
) -> None:
    out = shared.predict(np.arange(12, dtype=np.float32).reshape(3, 4))
    factor = out[0, 1]
    assert out.shape == (3, 4) and factor in (1.0, 2.0)
    np.testing.assert_allclose(out, np.arange(12).reshape(3, 4) * factor)
    assert client.endpoints.invoke("shared", {"inputs": [[1, 2, 3, 4]]})["predictions"] == [
        [1.0 * factor, 2.0 * factor, 3.0 * factor, 4.0 * factor]
    ]
    before = pids_of(shared)

    with pytest.raises(InvalidInput) as wrong_shape:
        client.endpoints.invoke("shared", {"inputs": [[1, 2, 3]]})
    assert "float32[N, 4]" in wrong_shape.value.message
    with pytest.raises(InvalidInput) as wrong_dtype:
        client.endpoints.invoke("shared", {"inputs": [["a", "b", "c", "d"]]})
    assert "float32" in wrong_dtype.value.message
    with pytest.raises(InvalidInput) as malformed:
        client.endpoints.invoke("shared", b"{not json")
    assert "JSON" in malformed.value.message
    with pytest.raises(PayloadTooLarge):
        client.endpoints.invoke("shared", b"[" + b"1," * (9 * 1024 * 1024) + b"1]")
    with pytest.raises(NotFound) as unknown:
        client.endpoints.invoke("nope", {"inputs": [[1, 2, 3, 4]]})
    assert "No endpoint named 'nope'" in unknown.value.message
    anonymous = naiad.Client(url=server.url, token="wrong")
    with pytest.raises(Exception, match="token"):
        anonymous.endpoints.invoke("shared", {"inputs": [[1, 2, 3, 4]]})

    assert pids_of(shared) == before
    assert all(r.restarts == 0 for v in shared.refresh().variants for r in v.live)
    assert shared.predict(np.ones((1, 4), np.float32)).shape == (1, 4)


def test_failed_deploy_says_why_and_an_update_revives_it(
    client: naiad.Client, models: None
) -> None:
    handle = client.endpoints.deploy("bad", model="broken")
    with pytest.raises(EndpointFailed) as failed:
        handle.wait(timeout=60)
    reason = failed.value.message
    assert "exited before it answered /ping" in reason and "replica.log" in reason
    with pytest.raises(ServerError) as unavailable:
        client.endpoints.invoke("bad", {"inputs": [[1, 2, 3, 4]]})
    assert unavailable.value.status_code == 503  # type: ignore[attr-defined]
    assert "has failed" in unavailable.value.message

    # An update brings a Failed endpoint back; one that cannot start is undone.
    client.endpoints.update("bad", model="scale:1", replicas=1, wait=True, timeout=60)
    with pytest.raises(EndpointFailed) as undone:
        client.endpoints.update("bad", model="broken", wait=True, timeout=60)
    assert "rolled back; still serving scale:1" in undone.value.message
    assert client.endpoints.get("bad").wait(timeout=5).status == "InService"
    assert client.endpoints.predict("bad", np.ones((1, 4), np.float32)).tolist() == [[1.0] * 4]
    client.endpoints.delete("bad", wait=True, timeout=30)


def test_sigkilled_replica_under_load_fails_no_request(
    client: naiad.Client, shared: EndpointHandle, server: LiveServer
) -> None:
    wait_until(lambda: all_healthy(shared), what="healthy replicas")
    victim, survivor = pids_of(shared)
    load = Load(server.url, server.token, "shared", threads=4).start()
    try:
        load.wait_for(100)
        os.killpg(victim, signal.SIGKILL)
        load.wait_for(200)

        def restarted() -> bool:
            endpoint = shared.refresh()
            replicas = endpoint.variants[0].live
            return sum(r.restarts for r in replicas) == 1 and all_healthy(shared)

        wait_until(restarted, timeout=60, what="the killed replica restarted and healthy")
        load.wait_for(100)
    finally:
        load.stop()
    assert load.failures == []
    assert set(load.statuses()) == {200}
    assert survivor in pids_of(shared) and victim not in pids_of(shared)


def test_rollout_under_load_has_zero_failed_requests(
    client: naiad.Client, shared: EndpointHandle, server: LiveServer
) -> None:
    wait_until(lambda: all_healthy(shared), what="healthy replicas")
    old = pids_of(shared)
    current = shared.refresh().variants[0].model
    target, factor = ("scale:2", 2.0) if current == "scale:1" else ("scale:1", 1.0)
    load = Load(server.url, server.token, "shared", threads=4).start()
    try:
        load.wait_for(50)
        client.endpoints.update("shared", model=target, wait=True, timeout=120)
        time.sleep(0.5)
        after = load.count()
        load.wait_for(100)
    finally:
        load.stop()
    assert load.failures == []
    assert set(load.statuses()) == {200}
    served = load.since(after)
    assert {variant for _, variant, _ in served} == {f"scale-v{int(factor)}"}
    assert {value for _, _, value in served} == {factor}
    wait_until(lambda: not any(alive(pid) for pid in old), timeout=40, what="old replicas gone")
    endpoint = shared.refresh()
    assert [v.model for v in endpoint.variants] == [target]
    assert [t.status for t in endpoint.transitions][-2:] == ["Updating", "InService"]


def test_server_restart_reattaches_to_running_replicas(
    client: naiad.Client, shared: EndpointHandle, server: LiveServer
) -> None:
    wait_until(lambda: all_healthy(shared), what="healthy replicas")
    before = sorted(pids_of(shared))
    for _ in range(20):
        shared.predict(np.ones((1, 4), np.float32))
    wait_until(lambda: served(shared) >= 20, what="the requests in the figures")
    counted = served(shared)
    # A new server counts a young replica's requests again; an older one's it must not.
    serving_since = shared.refresh().transitions[-1].at.timestamp()
    time.sleep(max(0.0, serving_since + FRESH_REPLICA_S + 1 - time.time()))
    server.stop()
    assert all(alive(pid) for pid in before), "replicas outlive the server"
    server.start()
    wait_until(lambda: all_healthy(shared), what="re-attached replicas healthy")
    assert sorted(pids_of(shared)) == before
    assert shared.predict(np.ones((2, 4), np.float32)).shape == (2, 4)
    # The traffic before the restart is still in the history (saved as the server stopped).
    history = shared.history(since=3600)
    assert sum(p.requests for points in history.variants.values() for p in points) >= counted


def served(handle: EndpointHandle) -> int:
    return sum(v.requests for v in handle.metrics().variants)


def naiad_cli(server: LiveServer, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "naiad.cli.main", *args],
        env={**server.environ(), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_cli_deploy_invoke_watch_canary_history_delete(
    server: LiveServer, models: None, tmp_path: Path
) -> None:
    deployed = naiad_cli(
        server, "endpoints", "deploy", "cli", "--model", "scale:1", "--capture", "1"
    )
    assert deployed.returncode == 0, deployed.stderr
    assert "InService" in deployed.stdout and "/endpoints/cli/invocations" in deployed.stdout

    sample = tmp_path / "sample.json"
    sample.write_text(json.dumps({"inputs": [[1, 2, 3, 4]]}))
    invoked = naiad_cli(server, "endpoints", "invoke", "cli", "--file", str(sample))
    assert invoked.returncode == 0, invoked.stderr
    assert json.loads(invoked.stdout)["predictions"] == [[1.0, 2.0, 3.0, 4.0]]
    buffer = io.BytesIO()
    np.save(buffer, np.full((2, 4), 3, np.float32))
    (tmp_path / "x.npy").write_bytes(buffer.getvalue())
    invoked = naiad_cli(server, "endpoints", "invoke", "cli", "--npy", str(tmp_path / "x.npy"))
    assert json.loads(invoked.stdout)["predictions"] == [[3.0] * 4] * 2

    listed = json.loads(naiad_cli(server, "endpoints", "ls", "--json").stdout)
    assert "cli" in {e["name"] for e in listed}

    watch = subprocess.Popen(
        [sys.executable, "-m", "naiad.cli.main", "endpoints", "show", "cli", "--watch"],
        env={**server.environ(), "COLUMNS": "200"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(5)  # past its imports and first redraw: Ctrl-C then ends it cleanly
    watch.send_signal(signal.SIGINT)
    out, err = watch.communicate(timeout=20)
    assert watch.returncode == 0, err
    assert "InService" in out and "scale-v1" in out and "p99" in out and "rps" in out

    canary = naiad_cli(server, "endpoints", "update", "cli", "--model", "scale:2", "--canary", "10")
    assert canary.returncode == 0, canary.stderr
    shown = json.loads(naiad_cli(server, "endpoints", "show", "cli", "--json").stdout)
    weights = {v["model"]: v["weight"] for v in shown["endpoint"]["variants"]}
    assert weights == {"scale:1": 90.0, "scale:2": 10.0}
    assert {m["variant"] for m in shown["metrics"]["variants"]} == {"scale-v1", "scale-v2"}

    history = naiad_cli(server, "endpoints", "history", "cli", "--since", "10m")
    assert history.returncode == 0, history.stderr
    assert "scale-v1: one row per 1m" in history.stdout and "req/s" in history.stdout
    as_json = json.loads(naiad_cli(server, "endpoints", "history", "cli", "--json").stdout)
    assert (
        as_json["step_s"] == 60 and sum(p["requests"] for p in as_json["variants"]["scale-v1"]) >= 2
    )
    for option, value, words in (
        ("--step", "90s", "not a whole number of minutes"),
        ("--since", "soon", "is not a duration"),
    ):
        refused = naiad_cli(server, "endpoints", "history", "cli", option, value)
        assert refused.returncode == 1 and words in refused.stderr, refused.stderr

    again = naiad_cli(server, "endpoints", "deploy", "cli", "--model", "scale:1", "--no-wait")
    assert again.returncode == 1 and "already exists" in again.stderr
    assert "Traceback" not in again.stderr
    missing = naiad_cli(server, "endpoints", "invoke", "nope", "--data", "[[1,2,3,4]]")
    assert missing.returncode == 1 and "No endpoint named 'nope'" in missing.stderr

    deleted = naiad_cli(server, "endpoints", "delete", "cli")
    assert deleted.returncode == 0, deleted.stderr
    captured = list((server.home / "artifacts" / "endpoints" / "cli" / "capture").rglob("*.jsonl"))
    assert captured, "captured requests reach the artifact store"
    record = json.loads(captured[0].read_text().splitlines()[0])
    assert record["inputs"] and record["outputs"]


def test_delete_drains_and_stops_every_replica(
    client: naiad.Client, shared: EndpointHandle, server: LiveServer
) -> None:
    pids = pids_of(shared)
    assert pids
    client.endpoints.delete("shared", wait=True, timeout=60)
    assert not any(alive(pid) for pid in pids)
    with pytest.raises(NotFound):
        client.endpoints.get("shared")
    assert replica_pids(server.home) == []
    assert not (server.home / "endpoints" / "shared").exists()
