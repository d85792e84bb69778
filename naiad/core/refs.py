"""Model references: ``digits`` (the latest version), ``digits:3``, ``digits@production``."""

import re

from naiad.core.errors import InvalidInput

MAX_VERSION = 2**31 - 1  # version columns are 32-bit integers in PostgreSQL
_REF = re.compile(r"^(?P<name>[^:@/\s]+)(?::(?P<version>[^:@/\s]+)|@(?P<alias>[^:@/\s]+))?$")


def parse_ref(ref: str) -> tuple[str, int | None, str | None]:
    """-> (name, version, alias); at most one of version and alias is set."""
    match = _REF.match(ref.strip())
    if not match:
        raise InvalidInput(
            f"Model reference {ref!r} is not valid: use NAME (latest), NAME:VERSION or NAME@ALIAS."
        )
    version = match["version"]
    # isascii too: "³" is a digit to isdigit() and no number to int().
    number = version is not None and version.isascii() and version.isdigit()
    if version is not None and not (number and int(version) >= 1):
        raise InvalidInput(f"Model version in {ref!r} must be a whole number from 1.")
    return match["name"], int(version) if version else None, match["alias"]


def version_segment(ref: str) -> tuple[str, str]:
    """(name, segment) for ``/models/{name}/versions/{segment}``: a number, an alias or latest."""
    name, version, alias = parse_ref(ref)
    return name, str(version) if version else (alias or "latest")
