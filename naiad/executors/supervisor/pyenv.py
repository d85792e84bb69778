"""The Python a job runs with: the server's own, or a cached virtualenv for its requirements.

As on SageMaker, a ``requirements.txt`` at the top of the job's source is installed with
pip before the script starts. It goes into a virtualenv layered over the server's
environment: the server's packages (torch above all) are visible, so pip finds them
already satisfied instead of reinstalling them, and a version the file pins differently
shadows the server's copy without touching it. The env is cached under ``<home>/envs``
by the hash of the file, so the next job with the same file starts at once.

``venv --system-site-packages`` is not enough for the layering: when the server itself
runs in a virtualenv (the usual case), that flag exposes the base interpreter's
packages, not the server's. A ``.pth`` file in the new env adds the server's site
directories instead, after the env's own, processing their ``.pth`` files too so that
editable installs (Naiad's own, in development) work in the job as on the server.
"""

import contextlib
import fcntl
import hashlib
import importlib.util
import os
import shutil
import site
import subprocess
import sys
import sysconfig
from collections.abc import Callable, Iterator
from pathlib import Path

from naiad.executors.supervisor.staging import StagingError

Log = Callable[[str], None]

REQUIREMENTS = "requirements.txt"
READY = ".naiad-ready"  # written last: an env without it is a build that did not finish
LAYER_PTH = "_naiad_server_env.pth"
ERROR_LINES = 4
TAIL_LINES = 8
MAX_REASON_CHARS = 2000


class RequirementsError(StagingError):
    """pip could not install the job's requirements.txt; the message says why."""


def envs_dir(work_dir: Path) -> Path:
    """The env cache, ``<home>/envs``, beside ``<home>/jobs/<name>``."""
    return work_dir.parent.parent / "envs"


def has_requirements(path: Path) -> bool:
    """True when ``path`` exists and names something besides blank lines and comments."""
    try:
        text = path.read_text(errors="replace")
    except (FileNotFoundError, IsADirectoryError):
        return False
    return any(line.split("#", 1)[0].strip() for line in text.splitlines())


def env_key(requirements: bytes) -> str:
    """The cache key: the file's bytes, the Python version and the server env it layers over."""
    digest = hashlib.sha256(requirements)
    digest.update(f"\0{sys.version}\0{sys.prefix}".encode())
    return digest.hexdigest()[:16]


def job_python(code_dir: Path, cache_root: Path, log: Log, log_file: Path) -> str:
    """The interpreter to run the job with, building its env first when it needs one.

    Platform messages go to ``log``; pip's output is appended to ``log_file`` line by
    line with a ``[pip]`` prefix. Raises RequirementsError when the install fails.
    """
    requirements = code_dir / REQUIREMENTS
    if not has_requirements(requirements):
        return sys.executable
    env = cache_root / env_key(requirements.read_bytes())
    python = env / "bin" / "python"
    cache_root.mkdir(parents=True, exist_ok=True)
    with _locked(cache_root / f"{env.name}.lock", log):
        if (env / READY).exists():
            log(f"{REQUIREMENTS}: reusing the environment {env}")
            return str(python)
        log(f"{REQUIREMENTS}: installing into a new environment {env}")
        shutil.rmtree(env, ignore_errors=True)  # what an interrupted build left behind
        try:
            _create(env)
            _pip_install(python, requirements, log_file)
        except BaseException:
            shutil.rmtree(env, ignore_errors=True)  # a failed env is never cached
            raise
        (env / READY).touch()
    log(f"{REQUIREMENTS}: installed")
    return str(python)


# Commands a container's PATH has, run as modules of the job's own Python.
COMMAND_SHIMS = {"pip": "pip", "pip3": "pip", "torchrun": "torch.distributed.run"}


def private_python(env: Path, log: Log) -> str:
    """A virtualenv of the job's own over the server's, for a command job: what its scripts
    pip-install (the SageMaker SDK v3's ``requirements``) goes there, never into the
    server's environment. ``pip``, ``pip3`` and ``torchrun`` in it run its Python's."""
    shutil.rmtree(env, ignore_errors=True)
    _create(env)
    bin_dir = env / "bin"
    for name, module in COMMAND_SHIMS.items():
        shim = bin_dir / name
        if not shim.exists():
            shim.write_text(f'#!/bin/sh\nexec "{bin_dir / "python"}" -m {module} "$@"\n')
            shim.chmod(0o755)
    log(f"python: a private environment over the server's ({env})")
    return str(bin_dir / "python")


@contextlib.contextmanager
def _locked(path: Path, log: Log) -> Iterator[None]:
    """Hold an exclusive lock on ``path``; the kernel drops it if this process dies."""
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"{REQUIREMENTS}: waiting for another job installing the same file")
            fcntl.flock(f, fcntl.LOCK_EX)
        yield


def _create(env: Path) -> None:
    """A virtualenv at ``env`` that sees the server's packages after its own.

    It uses the server's pip when there is one (ensurepip costs seconds per env).
    """
    cmd = [sys.executable, "-m", "venv", str(env)]
    if importlib.util.find_spec("pip") is not None:
        cmd.insert(3, "--without-pip")
    done = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise RequirementsError(
            f"Could not create a virtualenv for {REQUIREMENTS}: "
            + _clip(done.stderr.strip() or f"exit code {done.returncode}")
        )
    server_dirs = site.getsitepackages()
    if site.ENABLE_USER_SITE:
        server_dirs.append(site.getusersitepackages())
    base = {"base": str(env), "platbase": str(env)}
    own = Path(sysconfig.get_path("purelib", "venv", vars=base))
    adds = "; ".join(f"site.addsitedir({d!r})" for d in server_dirs)
    (own / LAYER_PTH).write_text(f"import site; {adds}\n")


def _pip_install(python: Path, requirements: Path, log_file: Path) -> None:
    """``pip install -r`` in the code directory (where relative paths in the file point)."""
    cmd = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]
    cmd += ["-r", requirements.name]
    errors: list[str] = []
    tail: list[str] = []
    with (
        open(log_file, "a") as out,
        subprocess.Popen(
            cmd,
            cwd=requirements.parent,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        ) as proc,
    ):
        try:
            for line in proc.stdout or ():
                line = line.rstrip()
                out.write(f"[pip] {line}\n")
                out.flush()
                if line.startswith("ERROR:"):
                    errors.append(line.removeprefix("ERROR:").strip())
                elif line.strip():
                    tail = [*tail[-TAIL_LINES + 1 :], line]
            code = proc.wait()
        except BaseException:  # a stop request: pip must not go on writing into the env
            proc.kill()
            raise
    if code != 0:
        why = "\n".join(errors[-ERROR_LINES:] or tail) or f"pip exited with code {code}"
        raise RequirementsError(f"pip could not install {REQUIREMENTS}: {_clip(why)}")


def _clip(text: str) -> str:
    return text if len(text) <= MAX_REASON_CHARS else "..." + text[-MAX_REASON_CHARS:]
