"""Sizes for people, the one spelling the job log, the SDK and the server share; and sizes
from people (``512m``, ``1.5GiB``), the one reading the CLI and the runtime share."""

import re

_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?", re.IGNORECASE)
_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}


def human_bytes(n: float) -> str:
    """``512 B``, ``1.5 MB``: decimal units, as disks and uploads are sized."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def mebibytes(n: float) -> str:
    """``56.5 MiB``: powers of 1024, as memory is sized."""
    return f"{n / 2**20:.1f} MiB"


def parse_size(text: str, bare: str = "") -> float | None:
    """Bytes in ``512m``, ``4 GiB``, ``300MB`` or ``2048`` (in ``bare``: ``""`` for bytes,
    ``"m"`` for MiB), powers of 1024 whatever the spelling; None for anything else."""
    found = _SIZE.fullmatch(text.strip())
    if found is None:
        return None
    return float(found[1]) * 1024 ** _POWERS[found[2].lower() or bare]
