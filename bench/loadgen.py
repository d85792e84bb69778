"""A cheap HTTP/1.1 load generator: keep-alive connections sending requests back to back.

The client shares the machine's cores with the server it measures, so each request costs
as little as we can make it: request bytes are encoded once, every connection is a raw
asyncio stream (uvloop's event loop when it is installed), and a response is read by its
status line and ``Content-Length`` (or its chunks) and nothing else. Each of
``concurrency`` connections sends its next request as soon as the previous answer is in
(a closed loop), so concurrency is the number of requests in flight.

A run is a warm-up (requests sent, not counted) then a fixed measuring window: the
figures count the requests that completed inside the window, each with its latency from
the moment its bytes were handed to the socket to the end of its body. Non-2xx answers count as
errors, not as throughput.

As a script::

    python bench/loadgen.py http://127.0.0.1:8080/invocations --body '{"inputs": [1]}' -c 16
"""

import argparse
import asyncio
import contextlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Result:
    concurrency: int
    seconds: float  # the measuring window
    requests: int  # 2xx answers completed in the window
    errors: int  # non-2xx answers completed in the window
    failures: int  # connections that broke (reset, timeout): each ends its connection
    rps: float  # 2xx answers per second
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    client_cpu: float  # this process's CPU seconds per wall second in the window (1.0 = a core)
    server_cpu: float  # the same for the server, when run() was given a way to read it
    error_sample: str = ""  # the start of one non-2xx answer, to say what went wrong

    def as_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def request_bytes(
    url: str,
    body: bytes,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> bytes:
    """One POST with a body, encoded once; keep-alive is HTTP/1.1's default. ``headers``
    adds lines such as ``Authorization`` (the server's front door asks for its token)."""
    parts = urlsplit(url)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    head = (
        f"POST {path} HTTP/1.1\r\n"
        f"Host: {parts.netloc}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n"
        + "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        + "\r\n"
    )
    return head.encode("latin-1") + body


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending sequence (NaN when it is empty)."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, closing) of one response: the status line, Content-Length or chunks."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    close = b"\r\nconnection: close" in lower
    at = lower.find(b"\r\ncontent-length:")
    if at >= 0:
        end = lower.index(b"\r\n", at + 17)
        return status, await reader.readexactly(int(head[at + 17 : end])), close
    if b"\r\ntransfer-encoding: chunked" in lower:
        chunks = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")  # no trailers expected: the final empty line
                return status, b"".join(chunks), close
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
    return status, b"", close  # e.g. 204: no body


@dataclass
class _Tally:
    latencies: list[float]
    errors: int = 0
    failures: int = 0
    error_sample: str = ""


async def _connection(
    host: str,
    port: int,
    requests: Sequence[bytes],
    offset: int,
    window: tuple[float, float],
    tally: _Tally,
) -> None:
    start, end = window
    perf_counter = time.perf_counter
    latencies = tally.latencies
    n = len(requests)
    i = offset
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while True:
            sent = perf_counter()
            if sent >= end:
                return
            writer.write(requests[i % n])
            i += 1
            try:
                status, body, close = await _read_response(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                tally.failures += 1
                return
            done = perf_counter()
            if start <= done <= end:
                if 200 <= status < 300:
                    latencies.append(done - sent)
                else:
                    tally.errors += 1
                    if not tally.error_sample:
                        tally.error_sample = f"{status}: {body[:300].decode(errors='replace')}"
            if close:  # the server ended keep-alive: a new connection, as a browser would
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def _run(
    url: str,
    requests: Sequence[bytes],
    concurrency: int,
    seconds: float,
    warmup: float,
    timeout: float,
    server_cpu: Callable[[], float],
) -> Result:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    tally = _Tally(latencies=[])
    now = time.perf_counter()
    start = now + warmup
    end = start + seconds
    tasks = [
        asyncio.ensure_future(_connection(host, port, requests, k, (start, end), tally))
        for k in range(concurrency)
    ]
    await asyncio.sleep(max(0.0, start - time.perf_counter()))
    cpu0, server0 = time.process_time(), server_cpu()
    await asyncio.sleep(max(0.0, end - time.perf_counter()))
    cpu1, server1 = time.process_time(), server_cpu()
    # No per-request timer (it would cost a task and a timer handle a request): one watchdog
    # for the whole run; a connection still waiting ``timeout`` after the window is a failure.
    _, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in pending:
        task.cancel()
        tally.failures += 1
    await asyncio.gather(*pending, return_exceptions=True)
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # e.g. connection refused: the target is not there
    ordered = sorted(tally.latencies)
    return Result(
        concurrency=concurrency,
        seconds=seconds,
        requests=len(ordered),
        errors=tally.errors,
        failures=tally.failures,
        rps=len(ordered) / seconds,
        p50_ms=percentile(ordered, 50) * 1000,
        p90_ms=percentile(ordered, 90) * 1000,
        p99_ms=percentile(ordered, 99) * 1000,
        max_ms=(ordered[-1] if ordered else math.nan) * 1000,
        client_cpu=(cpu1 - cpu0) / seconds,
        server_cpu=(server1 - server0) / seconds,
        error_sample=tally.error_sample,
    )


def _nan() -> float:
    return math.nan


def new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run(
    url: str,
    bodies: Sequence[bytes],
    concurrency: int,
    seconds: float = 5.0,
    warmup: float = 1.0,
    timeout: float = 30.0,
    content_type: str = "application/json",
    server_cpu: Callable[[], float] | None = None,
    headers: dict[str, str] | None = None,
) -> Result:
    """POST ``bodies`` (in turn) to ``url`` over ``concurrency`` keep-alive connections.

    ``server_cpu``, when given, returns the server's CPU seconds so far; it is read at the
    window's start and end.
    """
    requests = [request_bytes(url, body, content_type, headers) for body in bodies]
    loop = new_loop()
    try:
        return loop.run_until_complete(
            _run(url, requests, concurrency, seconds, warmup, timeout, server_cpu or _nan)
        )
    finally:
        loop.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--body", default="{}", help="the JSON body of every request")
    parser.add_argument("-c", "--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--seconds", type=float, default=5.0, help="the measuring window")
    parser.add_argument("--warmup", type=float, default=1.0)
    args = parser.parse_args()
    for c in args.concurrency:
        result = run(args.url, [args.body.encode()], c, args.seconds, args.warmup)
        print(json.dumps(result.as_dict()), flush=True)


if __name__ == "__main__":
    main()
