"""The front door: requests/s through ``/endpoints/NAME/invocations`` against the replica's port.

A live server (``naiad server`` on a free loopback port, a fresh home) deploys one endpoint
of one replica (a TorchScript model answering ``x * 2`` for rows of 4 floats), then the
load generator (``bench/loadgen.py``) sends the same request, one row, at concurrency
``-c`` through the URL a user calls (token and all) and straight to the replica's own
port, in turn, ``--rounds`` times: the difference is the cost of the server's proxy hop.
This machine's cores are shared, so every round is printed and the spread is reported.

    python bench/front_door.py --seconds 10 --rounds 3 -c 16
"""

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import loadgen
from _common import say

import naiad
from naiad.testing.endpoints import kill_replicas, scale_model
from naiad.testing.live import LiveServer

BODY = b'{"inputs": [[1.0, 2.0, 3.0, 4.0]]}'


def spread(rps: list[float]) -> dict[str, float]:
    return {"median": statistics.median(rps), "min": min(rps), "max": max(rps)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0, help="the measuring window")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="naiad-bench-front-door-") as tmp:
        root = Path(tmp)
        server = LiveServer(home=root / "home")
        server.start()
        try:
            client = naiad.Client(url=server.url, token=server.token)
            client.models.register("scale", path=scale_model(root / "model", 2.0))
            handle = client.endpoints.deploy("bench", model="scale:1", wait=True, timeout=120)
            port = handle.refresh().variants[0].live[0].port
            urls = {
                "front door": (
                    f"{server.url}/endpoints/bench/invocations",
                    {"Authorization": f"Bearer {server.token}"},
                ),
                "replica": (f"http://127.0.0.1:{port}/invocations", {}),
            }
            rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in urls}
            for i in range(args.rounds):
                for name, (url, headers) in urls.items():
                    result = loadgen.run(
                        url, [BODY], args.concurrency, args.seconds, args.warmup, headers=headers
                    )
                    rounds[name].append(result.as_dict())
                    say(
                        f"round {i + 1} {name} c={args.concurrency}: {result.rps:,.0f} req/s, "
                        f"p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms, "
                        f"errors {result.errors + result.failures}"
                    )
                    time.sleep(0.5)
        finally:
            server.stop()
            kill_replicas(server.home)
    summary = {
        name: {
            "rps": spread([r["rps"] for r in points]),
            "p50_ms": spread([r["p50_ms"] for r in points]),
            "p99_ms": spread([r["p99_ms"] for r in points]),
            "errors": sum(r["errors"] + r["failures"] for r in points),
        }
        for name, points in rounds.items()
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
