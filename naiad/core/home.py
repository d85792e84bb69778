"""Names both sides agree on about a Naiad home: its server's files and its identity."""

import hashlib

SERVER_FILE = "server.json"  # where a running server records its URL and pid
LOCK_FILE = "server.lock"  # flock-ed by the one server that keeps this home
TOKEN_FILE = "admin_token"


def home_id(home: str) -> str:
    """A short digest of a home's absolute path, which ``/health`` reports.

    A client tells whether the server on a port keeps its own home without the
    unauthenticated route naming a path on the server's disk.
    """
    return hashlib.sha256(home.encode()).hexdigest()[:16]
