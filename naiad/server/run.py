"""Run the server: refuse unsafe binds, record where we listen, hand over to uvicorn."""

import ipaddress
import json
import os
import shutil
import signal
import socket
import sys
from contextlib import suppress

from naiad.core.errors import InvalidInput
from naiad.executors.base import SANDBOX_TOOL
from naiad.server.home import OWNER_ONLY_UMASK, lock_home, secure_home
from naiad.settings import Settings


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(
                ipaddress.ip_address(a[4][0]).is_loopback for a in socket.getaddrinfo(host, None)
            )
        except OSError:
            return False


def check_bind(settings: Settings) -> None:
    if not settings.auth and not is_loopback(settings.host):
        raise InvalidInput(
            f"Refusing to listen on {settings.host} with auth off: anyone on the network could "
            "use this server. Turn auth on (unset NAIAD_AUTH) or bind to 127.0.0.1."
        )


def plain_http_warning(settings: Settings) -> str | None:
    """Beyond loopback the token would cross the network in clear: say so at start."""
    if is_loopback(settings.host):
        return None
    return (
        f"Warning: listening on {settings.host}: the API and console speak plain HTTP, so "
        "the token crosses the network in clear. Put a TLS proxy in front of Naiad."
    )


def check_sandbox(settings: Settings) -> None:
    """NAIAD_JOB_SANDBOX=on is a promise that every job runs sandboxed: keep it or stop."""
    on_here = settings.executor == "local" and settings.job_sandbox == "on"
    if on_here and shutil.which(SANDBOX_TOOL) is None:
        raise SystemExit(
            "NAIAD_JOB_SANDBOX=on needs bubblewrap (bwrap), which is not installed: install "
            "it (apt-get install bubblewrap), or set NAIAD_JOB_SANDBOX=auto or off."
        )


def console_hint(settings: Settings) -> str:
    """How to open the console, without the token: this line may land in a log file."""
    if not settings.auth:
        return f"{settings.url}/"
    return (
        f"{settings.url}/ (sign in with the token in {settings.layout.token_file}; "
        "`naiad server status` prints a sign-in link)"
    )


def serve(settings: Settings) -> None:
    """Blocks until the server stops. Settings reach create_app through the environment."""
    import uvicorn

    from naiad.executors import check_executor
    from naiad.server.http import InvocationProtocol

    check_bind(settings)
    check_executor(settings.executor, settings.ray_address)
    check_sandbox(settings)
    warning = plain_http_warning(settings)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    os.umask(OWNER_ONLY_UMASK)  # the database, logs, jobs and models: owner-only
    if secure_home(settings.home):
        print(
            f"Made the Naiad home {settings.home} and its files owner-only: it holds the "
            "admin token, and anyone who can read it controls this server.",
            file=sys.stderr,
            flush=True,
        )
    lock = lock_home(settings.layout)  # held until this process ends
    os.environ["NAIAD_HOME"] = str(settings.home)
    os.environ["NAIAD_HOST"] = settings.host
    os.environ["NAIAD_PORT"] = str(settings.port)
    os.environ["NAIAD_AUTH"] = "true" if settings.auth else "false"
    record = {"url": settings.url, "pid": os.getpid(), "home": str(settings.home)}
    tmp = settings.layout.server_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(record))
    tmp.replace(settings.layout.server_file)
    link = console_hint(settings)
    if settings.auth and sys.stdout.isatty():  # a person's terminal, never a log file
        from naiad.server.auth import ensure_token

        link = f"{settings.url}/?token={ensure_token(settings.layout.token_file)}"
    print(f"Naiad {settings.url} (home {settings.home})\nConsole: {link}", flush=True)
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again with the
    # handler found before it: exit through Python, so the ``finally`` below still runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        uvicorn.run(
            "naiad.server.app:create_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            log_level="warning",
            access_log=False,
            http=InvocationProtocol,  # uvicorn's, answering invocations from the bytes
        )
    finally:
        with suppress(OSError, ValueError):
            if json.loads(settings.layout.server_file.read_text()).get("pid") == os.getpid():
                settings.layout.server_file.unlink()
        os.close(lock)
