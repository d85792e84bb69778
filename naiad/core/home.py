"""The layout of a Naiad home, named once for the server, the SDK and the CLI.

Everything Naiad keeps on a machine lives under one directory, ``$NAIAD_HOME`` or
``~/.naiad``. A server writes it; the SDK and the CLI on the same machine read from it
where the server listens and its token. A job's supervisor gives the job's processes a
home of their own inside the job's directory, laid out the same way, so what their SDK
spools stays with the job.
"""

import os
from dataclasses import dataclass
from pathlib import Path


def default_home() -> Path:
    """``$NAIAD_HOME``, else ``~/.naiad`` (not resolved: the caller decides)."""
    return Path(os.environ.get("NAIAD_HOME") or Path.home() / ".naiad").expanduser()


@dataclass(frozen=True)
class HomeLayout:
    """The files and folders under one Naiad home."""

    root: Path

    @property
    def config_file(self) -> Path:
        """Settings read after the ``NAIAD_*`` variables."""
        return self.root / "config.toml"

    @property
    def server_file(self) -> Path:
        """Where a running server records its URL and pid."""
        return self.root / "server.json"

    @property
    def lock_file(self) -> Path:
        """``flock``-ed by the one server that keeps this home."""
        return self.root / "server.lock"

    @property
    def token_file(self) -> Path:
        """The admin token, 0600, made on the server's first start."""
        return self.root / "admin_token"

    @property
    def credentials_file(self) -> Path:
        """Keys for servers by URL, 0600, written by `naiad login` (the client's, not the
        server's: a backup leaves it out)."""
        return self.root / "credentials.json"

    @property
    def server_log(self) -> Path:
        """The output of a server that the SDK, the CLI or the quickstart started."""
        return self.root / "server.log"

    @property
    def database(self) -> Path:
        """The embedded SQLite database, when no database URL is set."""
        return self.root / "naiad.db"

    @property
    def artifacts(self) -> Path:
        """The file:// artifact root, when no artifact URI is set."""
        return self.root / "artifacts"

    @property
    def spool(self) -> Path:
        """Metric batches waiting for the server, one folder per run."""
        return self.root / "spool"

    @property
    def jobs(self) -> Path:
        """The local executor's job directories, one per job name."""
        return self.root / "jobs"

    @property
    def endpoints(self) -> Path:
        """Endpoint replicas' state directories."""
        return self.root / "endpoints"

    @property
    def notebooks(self) -> Path:
        """Managed notebook servers: each one's state and its working files."""
        return self.root / "notebooks"

    @property
    def model_cache(self) -> Path:
        """Model versions downloaded for replicas, one folder per version id."""
        return self.root / "model-cache"

    @property
    def id_file(self) -> Path:
        """A random id the home's server reports on ``/health``, so a client can tell its own
        home's server from another's on the same port without the route naming a path."""
        return self.root / "home_id"

    @property
    def quickstart(self) -> Path:
        """The quickstart's data and sample request."""
        return self.root / "quickstart"
