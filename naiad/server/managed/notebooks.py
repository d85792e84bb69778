"""Notebook servers as managed processes: JupyterLab, one per notebook, on loopback.

A notebook lives in ``$NAIAD_HOME/notebooks/<name>/``: ``notebook.json`` (its record),
``notebook.log``, ``jupyter_token`` (JupyterLab's token, random, owner-only; only the
proxy sends it), Jupyter's own state (``runtime/``, ``config/``, ``ipython/``) and
``files/``, the working directory, which outlives every stop. JupyterLab serves under
``/notebooks/<name>/`` so that the server's proxy passes paths through unchanged. Its
kernels inherit its environment: ``NAIAD_URL`` and ``NAIAD_TOKEN``, so the SDK finds
this server, and ``NAIAD_NOTEBOOK``, so a run started there records where it came from.
A ``requirements.txt`` in ``files/`` gives it an environment of its own (the jobs' env
cache, ``$NAIAD_HOME/envs``), built before it starts.
"""

import functools
import importlib.util
import logging
import os
import secrets
import shutil
import tarfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from naiad.core.errors import InvalidInput
from naiad.executors.supervisor.pyenv import has_requirements, job_python
from naiad.server.managed.process import Kind, ManagedProcess, Policy
from naiad.store.artifacts import ArtifactStore, safe_path

log = logging.getLogger("naiad.notebooks")

MODULE = "jupyterlab"
RECORD_FILE = "notebook.json"
LOG_FILE = "notebook.log"
TOKEN_FILE = "jupyter_token"
UNPACKED = ".source-unpacked"  # its source and requirements are in files/ (once: then the user's)
FILES = "files"
PREFIX = "/notebooks"
NODELAY_CHANNELS = "naiad.server.managed.jupyter_channels.NoDelayChannels"
INSTALL = "pip install 'naiad[notebooks]'"


def kind(name: str) -> Kind:
    """A notebook's kind: JupyterLab, healthy once ``/notebooks/<name>/api`` answers."""
    return Kind("notebook", MODULE, RECORD_FILE, LOG_FILE, health_path=f"{PREFIX}/{name}/api")


def available() -> str | None:
    """Why notebook servers cannot start here, or None when JupyterLab is installed."""
    if importlib.util.find_spec("jupyterlab") is None:
        return f"Notebook servers need JupyterLab, which is not installed on the server: {INSTALL}."
    return None


def arguments(name: str, files: Path, port: int) -> list[str]:
    """What ``python -m jupyterlab`` is given (the token comes in the environment)."""
    return [
        "--port",
        str(port),
        "--ip",
        "127.0.0.1",
        "--no-browser",
        f"--ServerApp.base_url={PREFIX}/{name}/",
        f"--ServerApp.root_dir={files}",
        # Naiad's login guards the door and its proxy alone sends the token; the page's
        # own origin is the server's, not JupyterLab's loopback port
        "--ServerApp.allow_origin=*",
        f"--ServerApp.kernel_websocket_connection_class={NODELAY_CHANNELS}",
        "--ServerApp.allow_remote_access=True",
        "--ServerApp.open_browser=False",
        # nothing fetched from the internet: no news, no update checks, no extension store
        "--LabApp.news_url=",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
        *(["--allow-root"] if os.geteuid() == 0 else []),  # a container's usual user
    ]


@dataclass(eq=False, kw_only=True)
class NotebookProcess(ManagedProcess):
    """One notebook's JupyterLab."""

    name: str
    preparing: "Future[str] | None" = None  # its environment, while requirements install

    @property
    def label(self) -> str:
        return self.name

    @property
    def files(self) -> Path:
        return self.root / FILES

    @functools.cached_property
    def token(self) -> str:
        """JupyterLab's token, made once and kept beside it (a re-attached process keeps
        it); read once, not on every request the proxy sends on."""
        path = self.root / TOKEN_FILE
        try:
            return path.read_text().strip()
        except FileNotFoundError:
            self.root.mkdir(parents=True, exist_ok=True)
            token = secrets.token_urlsafe(32)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(token)
            return token

    def upstream_headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"authorization", f"token {self.token}".encode())]


class NotebookFleet:
    """Every notebook server on this machine (the keeper holds it)."""

    def __init__(
        self,
        root: Path,
        server_url: str,
        token: str | None,
        policy: Policy,
        store: ArtifactStore,
        orphan_grace_s: float,
    ) -> None:
        self.root = root
        self.orphan_grace_s = orphan_grace_s  # see managed.orphans
        self.store = store
        self.server_url, self.server_token = server_url, token
        self.policy = policy
        self._procs: dict[str, NotebookProcess] = {}
        self._lock = threading.Lock()
        self._http = httpx.Client(timeout=2.0, trust_env=False)
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="naiad-notebook")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._http.close()

    def get(self, name: str) -> NotebookProcess | None:
        with self._lock:
            return self._procs.get(name)

    def all(self) -> list[NotebookProcess]:
        with self._lock:
            return list(self._procs.values())

    def process(self, name: str) -> NotebookProcess:
        """The notebook's process as this server knows it (not started)."""
        with self._lock:
            proc = self._procs.get(name)
            if proc is None:
                proc = NotebookProcess(root=self.root / name, kind=kind(name), name=name)
                self._procs[name] = proc
            return proc

    def adopt(self) -> None:
        """Re-attach the notebook servers a previous server left running."""
        if not self.root.is_dir():
            return
        for record in sorted(self.root.glob(f"*/{RECORD_FILE}")):
            proc = self.process(record.parent.name)
            if proc.reattach():
                log.info("re-attached to notebook %s (pid %s)", proc.name, proc.pid)
                proc.guard(self.root.parent, self.orphan_grace_s)

    def environment(self, proc: NotebookProcess) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("NAIAD_RUN_ID", "NAIAD_TOKEN")}
        state = proc.root
        env.update(
            NAIAD_URL=self.server_url,
            NAIAD_NOTEBOOK=proc.name,
            JUPYTER_TOKEN=proc.token,
            JUPYTER_RUNTIME_DIR=str(state / "runtime"),
            JUPYTER_CONFIG_DIR=str(state / "config"),
            IPYTHONDIR=str(state / "ipython"),
            PYTHONUNBUFFERED="1",
        )
        if self.server_token:
            env["NAIAD_TOKEN"] = self.server_token
        return env

    def start(
        self, proc: NotebookProcess, source_uri: str | None, requirements: str | None = None
    ) -> str | None:
        """Start its JupyterLab, once its files and environment are ready; returns what it
        waits for (a sentence for its status), or None once started."""
        proc.files.mkdir(parents=True, exist_ok=True)
        unpacked = proc.root / UNPACKED
        if source_uri and not unpacked.exists():
            archive = proc.root / ".source.tar.gz"
            self.store.download(safe_path(source_uri), archive)
            try:
                count = unpack_source(archive, proc.files)
            finally:
                archive.unlink(missing_ok=True)
            log.info("notebook %s: %d files from %s", proc.name, count, source_uri)
        if not unpacked.exists():
            if requirements:  # given at creation: it wins over the source's
                (proc.files / "requirements.txt").write_text(requirements)
            unpacked.write_text(source_uri or "")
        python = None  # the server's interpreter, unless requirements.txt asks for more
        if has_requirements(proc.files / "requirements.txt"):
            if proc.preparing is None:
                proc.preparing = self._pool.submit(self._build_env, proc)
            if not proc.preparing.done():
                return "Installing requirements.txt into the notebook's environment"
            try:
                python = proc.preparing.result()
            finally:
                proc.preparing = None
        proc.python = python
        proc.env = self.environment(proc)
        proc.start(lambda port: arguments(proc.name, proc.files, port))
        proc.guard(self.root.parent, self.orphan_grace_s)
        return None

    def _build_env(self, proc: NotebookProcess) -> str:
        with open(proc.log_path, "a") as out:

            def say(line: str) -> None:
                out.write(f"[naiad] {line}\n")
                out.flush()

            return job_python(proc.files, self.root.parent / "envs", say, proc.log_path)

    def check(self) -> None:
        """Which are alive, then /api of each live one (a ping; it needs no token)."""
        now = time.monotonic()
        for proc in self.all():
            if proc.pid is None:
                continue
            if not proc.alive():
                proc.died(now, self.policy)
            elif proc.retire_at is None:
                proc.pinged(proc.ping(self._http), now, self.policy)

    def last_activity(self, proc: NotebookProcess) -> datetime | None:
        """When JupyterLab last saw a request or kernel activity (``/api/status``)."""
        try:
            reply = self._http.get(
                f"{proc.url}{PREFIX}/{proc.name}/api/status",
                headers={"authorization": f"token {proc.token}"},
            )
            stamp = reply.json().get("last_activity") if reply.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None
        if not isinstance(stamp, str):
            return None
        try:
            return datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(UTC)
        except ValueError:
            return None

    def forget(self, name: str, remove_files: bool) -> None:
        with self._lock:
            proc = self._procs.pop(name, None)
        if remove_files:
            shutil.rmtree(self.root / name, ignore_errors=True)
        elif proc is not None:
            (proc.root / RECORD_FILE).unlink(missing_ok=True)

    def live(self, name: str) -> tuple[int, list[tuple[bytes, bytes]]] | None:
        """(port, headers) to reach a serving notebook through, or None."""
        proc = self.get(name)
        if proc is None or proc.port is None or not proc.healthy or proc.retire_at is not None:
            return None
        return proc.port, proc.upstream_headers()


def unpack_source(archive: Path, files: Path) -> int:
    """Unpack a source snapshot into a notebook's (new) working directory; returns files."""
    files.mkdir(parents=True, exist_ok=True)
    count = 0
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar.getmembers():
                if member.isfile():
                    count += 1
            tar.extractall(files, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise InvalidInput(f"The source snapshot is not a readable .tar.gz: {exc}") from None
    return count
