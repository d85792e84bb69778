"""Run the server: refuse unsafe binds, record where we listen, hand over to uvicorn."""

import ipaddress
import json
import os
import socket
from contextlib import suppress

from naiad.core.errors import InvalidInput
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


def serve(settings: Settings) -> None:
    """Blocks until the server stops. Settings reach create_app through the environment."""
    import uvicorn

    check_bind(settings)
    os.environ["NAIAD_HOME"] = str(settings.home)
    os.environ["NAIAD_HOST"] = settings.host
    os.environ["NAIAD_PORT"] = str(settings.port)
    os.environ["NAIAD_AUTH"] = "true" if settings.auth else "false"
    settings.home.mkdir(parents=True, exist_ok=True)
    record = {"url": settings.url, "pid": os.getpid()}
    tmp = settings.server_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(record))
    tmp.replace(settings.server_file)
    link = settings.url
    if settings.auth:
        from naiad.server.auth import ensure_token

        link += f"/?token={ensure_token(settings.token_file)}"
    print(f"Naiad {settings.url} (home {settings.home})\nConsole: {link}", flush=True)
    try:
        uvicorn.run(
            "naiad.server.app:create_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            log_level="warning",
            access_log=False,
        )
    finally:
        with suppress(OSError, ValueError):
            if json.loads(settings.server_file.read_text()).get("pid") == os.getpid():
                settings.server_file.unlink()
