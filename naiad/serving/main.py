"""``python -m naiad.serving.main MODEL_DIR --port P``: one endpoint replica.

The model is loaded (and warmed) before the socket opens, so a ``/ping`` that answers
200 means ready. SIGTERM stops accepting connections, lets every request already
received finish (its batch included), then exits 0: the controller rolls replicas over
without failing a request. A model that cannot load exits 2 with one sentence on stderr.

A ``sagemaker`` model directory is served by its inference script's handlers
(``handler``, ``sagemaker_app``): through the batcher when the script leaves the request
functions to the defaults, else one request at a time on a worker thread.
"""

import argparse
import asyncio
import ipaddress
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from naiad.core.errors import NaiadError
from naiad.schemas.models import SAGEMAKER
from naiad.serving.app import InvocationApp, ReplicaApp
from naiad.serving.batcher import Batcher
from naiad.serving.capture import Capture
from naiad.serving.codec import DEFAULT_MAX_ROWS, Codec
from naiad.serving.handler import Handler, load_handler
from naiad.serving.loader import (
    LoadedModel,
    choose_cpu_kernels,
    load_model,
    model_thread_context,
    read_manifest,
    set_threads,
)
from naiad.serving.sagemaker_app import DefaultHandlerApp, HandlerRunner, ScriptHandlerApp
from naiad.serving.stats import ReplicaStats

EXIT_LOAD_FAILED = 2
MAX_ROWS_ENV = "NAIAD_MAX_ROWS_PER_REQUEST"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m naiad.serving.main", description="Serve one model directory over HTTP."
    )
    parser.add_argument("model_dir", type=Path, help="the directory holding naiad-model.json")
    parser.add_argument("--port", type=int, required=True, help="0 picks a free port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="bind a non-loopback host (the replica has no authentication of its own)",
    )
    parser.add_argument("--max-batch", type=int, default=64, help="rows per model call")
    parser.add_argument(
        "--max-delay-ms", type=float, default=5.0, help="longest a request waits for a batch"
    )
    parser.add_argument("--queue-size", type=int, default=1024, help="waiting requests; then 503")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cuda:0")
    parser.add_argument("--max-body-bytes", type=int, default=16 * 1024 * 1024)
    parser.add_argument(
        "--max-rows",
        type=int,
        default=None,
        help=f"rows one request may hold, else 413 (default ${MAX_ROWS_ENV} or {DEFAULT_MAX_ROWS})",
    )
    parser.add_argument("--capture-dir", type=Path, help="write sampled requests here (JSONL)")
    parser.add_argument("--capture-fraction", type=float, default=0.0)
    parser.add_argument(
        "--drain-timeout", type=float, default=30.0, help="seconds to finish requests on SIGTERM"
    )
    args = parser.parse_args(argv)
    if not _is_loopback(args.host) and not args.allow_remote:
        parser.error(
            f"--host {args.host} is not a loopback address; the replica has no authentication, "
            "so pass --allow-remote to expose it (behind the server's proxy or a firewall)."
        )
    if args.max_rows is None:
        args.max_rows = _env_max_rows(parser)
    if args.max_batch < 1 or args.queue_size < 1 or args.threads < 1 or args.max_rows < 1:
        parser.error("--max-batch, --queue-size, --threads and --max-rows must be at least 1.")
    if args.max_delay_ms < 0 or not 0 <= args.capture_fraction <= 1:
        parser.error("--max-delay-ms must be >= 0 and --capture-fraction within [0, 1].")
    if args.capture_fraction > 0 and args.capture_dir is None:
        parser.error("--capture-fraction needs --capture-dir, where the records go.")
    return args


def _env_max_rows(parser: argparse.ArgumentParser) -> int:
    """The row limit a server's environment gives its replicas (they inherit it)."""
    value = os.environ.get(MAX_ROWS_ENV, "").strip()
    if not value:
        return DEFAULT_MAX_ROWS
    if not (value.isascii() and value.isdigit()):
        parser.error(f"{MAX_ROWS_ENV}={value!r} must be a whole number of rows, such as 10000.")
    return int(value)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def make_infer(model: LoadedModel) -> Callable[[np.ndarray], np.ndarray]:
    """The batcher's model call: numpy batch in, contiguous numpy rows out."""
    import torch

    def infer(batch: np.ndarray) -> np.ndarray:
        out = model(torch.from_numpy(batch))
        if out.dtype == torch.bfloat16:  # numpy has no bfloat16
            out = out.float()
        return np.ascontiguousarray(out.numpy())

    return infer


def load(args: argparse.Namespace) -> LoadedModel | Handler:
    """The model directory's model: a network (Naiad's formats) or a SageMaker handler."""
    manifest = read_manifest(args.model_dir)
    if manifest.format != SAGEMAKER:
        return load_model(args.model_dir, threads=args.threads, device=args.device)
    set_threads(args.threads)
    return load_handler(args.model_dir, manifest, device=args.device, max_rows=args.max_rows)


def _bind(host: str, port: int) -> socket.socket:
    """The port, taken before the model loads (a clash fails fast) but not yet listening:
    until ``listen``, connections are refused, never left hanging."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise NaiadError(f"Cannot listen on {host}:{port}: {exc.strerror}.") from None
    sock.setblocking(False)
    return sock


async def serve(
    args: argparse.Namespace,
    model: LoadedModel | Handler,
    sock: socket.socket,
    kernels: str,
    app_type: type[ReplicaApp] = ReplicaApp,
) -> None:
    import uvicorn

    stats = ReplicaStats()
    capture = None
    if args.capture_dir is not None and args.capture_fraction > 0:
        capture = Capture(
            args.capture_dir, args.capture_fraction, on_drop=stats.record_capture_drop
        )
        capture.start()
    app: InvocationApp
    worker: Batcher | HandlerRunner
    if isinstance(model, Handler) and not model.batchable:
        worker = HandlerRunner(args.threads, args.queue_size, on_call=stats.record_batch)
        app = ScriptHandlerApp(model, worker, stats, max_body_bytes=args.max_body_bytes)
        what = f"{model.describe}, one request at a time"
    else:
        worker = Batcher(
            model.infer if isinstance(model, Handler) else make_infer(model),
            max_batch=args.max_batch,
            max_delay=args.max_delay_ms / 1000,
            queue_size=args.queue_size,
            on_batch=stats.record_batch,
            thread_context=lambda: model_thread_context(args.threads),
            strict_rows=not isinstance(model, Handler),
        )
        if isinstance(model, Handler):
            app = DefaultHandlerApp(
                worker,
                stats,
                max_rows=args.max_rows,
                max_body_bytes=args.max_body_bytes,
                capture=capture,
            )
            what = f"{model.describe}, batched"
        else:
            app = app_type(
                Codec(model.manifest, max_rows=args.max_rows),
                worker,
                stats,
                max_body_bytes=args.max_body_bytes,
                capture=capture,
            )
            what = f"{kernels} CPU kernels"
    stats.queue_depth = lambda: worker.depth
    config = uvicorn.Config(
        app,
        http="httptools",
        interface="asgi3",
        lifespan="off",
        access_log=False,
        log_level="warning",
        proxy_headers=False,
        server_header=False,
        date_header=False,
        timeout_graceful_shutdown=args.drain_timeout,
        backlog=2048,
    )
    server = uvicorn.Server(config)
    app.draining = lambda: server.should_exit
    worker.start()
    # uvicorn re-raises a caught SIGTERM or SIGINT once it has drained; these handlers
    # receive it, so the process exits 0 after a drain instead of dying of the signal.
    signal.signal(signal.SIGTERM, lambda *_: None)
    signal.signal(signal.SIGINT, lambda *_: None)
    sock.listen(2048)
    host, port = sock.getsockname()[:2]
    print(
        f"Serving {args.model_dir} on http://{host}:{port} ({what})",
        file=sys.stderr,
        flush=True,
    )
    try:
        await server.serve(sockets=[sock])
    finally:
        await worker.close()
        if capture is not None:
            capture.close()


def main(argv: list[str] | None = None, app_type: type[ReplicaApp] = ReplicaApp) -> int:
    """Serve; ``app_type`` lets a benchmark put its own app on the same stack."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        sock = _bind(args.host, args.port)
        model = load(args)
        kernels = "default"
        if isinstance(model, LoadedModel):
            kernels = choose_cpu_kernels(model, args.max_batch)
    except NaiadError as exc:
        print(exc.message, file=sys.stderr)
        return EXIT_LOAD_FAILED
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args, model, sock, kernels, app_type))
    else:
        uvloop.run(serve(args, model, sock, kernels, app_type))
    return 0


if __name__ == "__main__":
    sys.exit(main())
