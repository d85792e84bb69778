"""``python -m naiad.serving.standby --port N``: a replica waiting with torch imported.

The server keeps one while an endpoint autoscales (``server.managed.standby``), so the next
replica, above all the first one after scaling to zero, starts without the second or two
importing torch takes. It holds port N (bound, not listening) so nothing else takes it,
imports what a replica needs, prints ``ready`` and reads one JSON line from stdin:
``{"cwd", "log", "args"}``. It then moves to ``cwd``, appends its output to ``log``, lets go
of the port and runs ``naiad.serving.main`` with ``args`` (which name the same port): from
then on it is that replica. When stdin closes first (the server went away), it exits.
"""

import contextlib
import json
import os
import socket
import sys

# What a replica imports only once it runs: imported here, ahead of the hand-over.
PRELOAD = (
    "torch",
    "safetensors.torch",
    "uvicorn",
    "uvloop",
    "httptools",
    "uvicorn.protocols.http.httptools_impl",
)


def _hold(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


def _become(cwd: str, log_path: str) -> None:
    """Take the slot's directory and log, as a replica started there would have them."""
    os.chdir(cwd)
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(log, 1)
    os.dup2(log, 2)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    port = int(args[args.index("--port") + 1])
    try:
        held = _hold(port)
    except OSError as exc:
        print(f"Cannot hold port {port}: {exc.strerror}.", file=sys.stderr)
        return 2
    from naiad.serving import main as replica  # torch, numpy, the model loader, the app

    for module in PRELOAD:
        with contextlib.suppress(ImportError):
            __import__(module)
    print("ready", flush=True)
    line = sys.stdin.readline().strip()
    if not line:
        return 0  # the server went away before handing us a slot
    order = json.loads(line)
    _become(order["cwd"], order["log"])
    held.close()
    return replica.main(order["args"])


if __name__ == "__main__":
    sys.exit(main())
