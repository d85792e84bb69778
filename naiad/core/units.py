"""Sizes for people, the one spelling the job log, the SDK and the server share."""


def human_bytes(n: float) -> str:
    """``512 B``, ``1.5 MB``: decimal units, as disks and uploads are sized."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")
