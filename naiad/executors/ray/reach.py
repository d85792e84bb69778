"""Whether the Ray cluster named by NAIAD_RAY_ADDRESS answers, asked before joining it:
Ray itself retries an unreachable address for minutes, and the server would hang."""

import socket

from naiad.core.errors import InvalidInput


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """A ``host:port`` (or ``ray://host:port``) address must answer on its port."""
    if address == "auto":
        return
    where = address.removeprefix("ray://")
    host, _, port = where.rpartition(":")
    if not host or not port.isdigit():
        raise InvalidInput(
            f"NAIAD_RAY_ADDRESS={address!r} is not 'auto', 'ray://host:port' or 'host:port'."
        )
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise InvalidInput(
            f"The Ray cluster at NAIAD_RAY_ADDRESS={address!r} does not answer ({exc}). "
            "Start it with `ray start --head`, or set NAIAD_RAY_ADDRESS to the address it "
            "printed."
        ) from None
