"""Autoscaling end to end: a live server, real replicas, load through the front door.

A step from 1 to 16 clients grows an endpoint from 1 to 2 replicas, and it shrinks back
once the load stops; an endpoint deployed from the CLI with --min-replicas 0 scales to zero
when idle and answers the next request (not a 503), its cold start timed; every decision
is an event on the endpoint, shown by `naiad endpoints show`. Windows are a second or two.
"""

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import naiad
from naiad.sdk.endpoints import EndpointHandle
from naiad.testing.endpoints import Load, digits_model, replica_pids, scale_model
from naiad.testing.live import LiveServer


def wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached in {timeout}s")
        time.sleep(0.1)
    return value


@pytest.fixture(scope="module")
def client(server: LiveServer) -> naiad.Client:
    return naiad.Client(url=server.url, token=server.token)


def healthy(handle: EndpointHandle) -> int:
    return sum(r.healthy for v in handle.refresh().variants for r in v.live)


def count(handle: EndpointHandle) -> int:
    return sum(v.replicas for v in handle.refresh().variants)


def cli(server: LiveServer, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "naiad.cli.main", *args],
        env={**server.environ(), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    return done.stdout


def test_a_load_step_adds_a_replica_and_idle_takes_it_away(
    client: naiad.Client, server: LiveServer, tmp_path: Path
) -> None:
    client.models.register("scale", path=scale_model(tmp_path / "scale", 1.0))
    # One client holds at most one request in flight: below the target of 1.5 per replica;
    # sixteen hold several at once through the front door, whatever the machine.
    handle = client.endpoints.deploy(
        "grow",
        model="scale",
        max_replicas=2,
        target_in_flight=1.5,
        autoscaling={"scale_up_after_s": 1, "scale_down_after_s": 2, "cooldown_s": 1},
        wait=True,
        timeout=120,
    )
    one = Load(server.url, server.token, "grow", threads=1).start()
    many = None
    try:
        one.wait_for(50)
        time.sleep(3)  # three times the window: one client never asks for a second replica
        assert count(handle) == 1 and handle.endpoint.scaling_events == []
        many = Load(server.url, server.token, "grow", threads=15).start()
        wait_until(lambda: healthy(handle) == 2, 60, "a second healthy replica")
        many.wait_for(100)  # ...which serves its share without failing a request
    finally:
        one.stop()
        if many is not None:
            many.stop()
    wait_until(lambda: count(handle) == 1, 60, "back to one replica")
    assert not one.failures and not many.failures, (one.failures + many.failures)[:3]
    up, down = handle.refresh().scaling_events
    assert (up.from_replicas, up.to_replicas, down.from_replicas, down.to_replicas) == (1, 2, 2, 1)
    assert up.reason.startswith("Scaled up from 1 to 2 replica(s): above the target of 1.5")
    assert down.reason.startswith("Scaled down from 2 to 1 replica(s)")
    shown = cli(server, "endpoints", "show", "grow")
    assert "autoscaling scale-v1: 1-2 replicas, target 1.5 in flight per replica" in shown
    assert "1 -> 2" in shown and "Scaled down from 2 to 1" in shown

    # An update changes the policy on top of what it has; `replicas` alone fixes the count.
    [variant] = client.endpoints.update("grow", max_replicas=3, wait=True).refresh().variants
    assert variant.autoscaling is not None and variant.replicas == 1
    assert (variant.autoscaling.max_replicas, variant.autoscaling.target_in_flight) == (3, 1.5)
    [variant] = client.endpoints.update("grow", replicas=2, wait=True).refresh().variants
    assert variant.autoscaling is None and variant.replicas == 2
    client.endpoints.delete("grow", wait=True)


def test_from_zero_the_first_request_waits_for_a_replica_and_is_answered(
    client: naiad.Client, server: LiveServer, tmp_path: Path
) -> None:
    client.models.register("digits", path=digits_model(tmp_path / "digits"))
    args = ["--model", "digits", "--min-replicas", "0", "--max-replicas", "1"]
    cli(server, "endpoints", "deploy", "cold", *args, "--idle-after", "1", "--cooldown", "0.1")
    handle = client.endpoints.get("cold")
    image = np.zeros((1, 1, 8, 8), np.float32)
    assert handle.predict(image).shape == (1, 10)
    wait_until(lambda: count(handle) == 0, 60, "scaled to zero")
    wait_until(lambda: not replica_pids(server.home), 60, "its replica stopped")
    time.sleep(3)  # the standby replica (torch imported) is ready by now, as it is in use

    started = time.perf_counter()
    answer = handle.predict(image)  # a 503 would raise
    cold_start = time.perf_counter() - started
    print(f"\ncold start from zero to the first answer: {cold_start:.3f}s")
    assert answer.shape == (1, 10)
    assert cold_start < 10, cold_start  # within the timeout; docs/serving.md has the figure
    endpoint = handle.refresh()
    assert endpoint.status == "InService" and count(handle) == 1
    *_, to_zero, back = endpoint.scaling_events
    assert to_zero.reason == (
        "Scaled to zero from 1 replica(s): no request for 1s; the next request starts one."
    )
    assert (back.to_replicas, back.reason) == (
        1,
        "A request came while scaled to zero; starting 1 replica.",
    )
    shown = cli(server, "endpoints", "show", "cold")
    assert "0-1 replicas" in shown and "to zero after 1s idle" in shown
    assert "0 -> 1" in shown and "A request came while scaled to zero" in shown
    client.endpoints.delete("cold", wait=True)
