"""SageMaker's container paths for a command job: ``/opt/ml`` as the host's own directory.

A job that runs a command (SageMaker's ``ContainerEntrypoint``) was written for a container
whose ``/opt/ml`` is the job's alone. Naiad gives each host that view without privileges:
``/opt/ml`` in the command's arguments, in the values of the job's own environment and in
the text files of the channels named in ``opt_ml_channels`` (the SageMaker Python SDK v3's
``sm_drivers``, whose scripts hard-code those paths) is rewritten to the host's directory,
laid out like ``/opt/ml`` (``input/``, ``model/``, ``output/``; ``code/`` and
``checkpoints/``, which are the job's, keep their place at its root). Each host gets its own
copy of such a channel, so no two jobs, nor two hosts of one job, share a path. A private
mount namespace would need user namespaces and an existing ``/opt/ml`` mount point, which
neither a non-root user on most distributions nor a container's default seccomp profile
allows; rewriting works wherever the job runs.
"""

import os
import re
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

from naiad.executors.base import LaunchSpec
from naiad.executors.supervisor.staging import StagingError
from naiad.executors.supervisor.workdir import WorkDir

Log = Callable[[str], None]

OPT_ML = "/opt/ml"
# /opt/ml, or /opt/ml/code and /opt/ml/checkpoints (the job's, at its root), as whole path
# components: /opt/mlflow and /opt/ml.bak are other paths.
_PATH = re.compile(r"/opt/ml(?:/(code|checkpoints)(?![\w.-]))?(?![\w.-])")
# What a path may hold to stand unquoted in a shell line, a JSON string or a Python literal.
_PLAIN = re.compile(r"[A-Za-z0-9_./@+,:=~-]+")
MAX_REWRITE_BYTES = 16 * 1024 * 1024  # a larger file is data, not a script: left as it is


def check_dir(wd: WorkDir) -> None:
    """The job's directory must be a plain path: the rewritten scripts use it unquoted."""
    root = str(wd.root)
    if not _PLAIN.fullmatch(root):
        raise StagingError(
            f"The job's directory {root} holds characters a shell script cannot take unquoted "
            f"(spaces, quotes, ...), so it cannot stand in for {OPT_ML}; move the Naiad home "
            "(NAIAD_HOME) to a path of letters, digits and ./_-"
        )


def rewrite(text: str, wd: WorkDir) -> str:
    """``text`` with every ``/opt/ml`` path naming the host's directory instead."""

    def swap(match: re.Match[str]) -> str:
        if match[1] == "code":
            return str(wd.code)
        if match[1] == "checkpoints":
            return str(wd.checkpoints)
        return str(wd.base)

    return _PATH.sub(swap, text)


def command(spec: LaunchSpec, wd: WorkDir) -> list[str]:
    """The command's argv as the host runs it."""
    return [rewrite(arg, wd) for arg in spec.command or ()]


def environment(env: dict[str, str], spec: LaunchSpec, wd: WorkDir, python: str) -> dict[str, str]:
    """The host's environment for a command: the job's own values rewritten, and the job's
    Python first on ``PATH`` (a container's ``python3`` is the image's, with its packages)."""
    env = dict(env)
    for key, value in spec.environment.items():
        if env.get(key) == value:  # not one Naiad set over it
            env[key] = rewrite(value, wd)
    path = env.get("PATH")
    bin_dir = os.path.dirname(python)
    env["PATH"] = bin_dir + (os.pathsep + path if path else "")
    return env


def _rewrite_file(path: Path, wd: WorkDir) -> bool:
    """Rewrite one text file in place; False for binary files and files without /opt/ml."""
    if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_REWRITE_BYTES:
        return False
    data = path.read_bytes()
    if OPT_ML.encode() not in data or b"\0" in data:
        return False
    try:
        text = data.decode()
    except UnicodeDecodeError:
        return False
    new = rewrite(text, wd)
    if new == text:
        return False
    mode = path.stat().st_mode
    path.write_text(new)
    path.chmod(mode)
    return True


def stage_channels(spec: LaunchSpec, hosts: Iterable[WorkDir], log: Log) -> None:
    """Give each host its own copy of every ``opt_ml_channels`` channel, naming its paths.

    The staged channel may be a link (FastFile, or one copy shared by several hosts): it is
    copied, links followed, so the rewrite never reaches the bucket or another host.
    """
    for wd in hosts:
        for name in spec.opt_ml_channels:
            dest = wd.data / name
            if not dest.exists():
                raise StagingError(f"Input channel {name!r} was not staged.")
            fresh = dest.with_name(f".{name}.opt-ml")
            shutil.rmtree(fresh, ignore_errors=True)
            try:
                if dest.is_dir():
                    shutil.copytree(dest, fresh, symlinks=False)
                else:
                    fresh.mkdir()
                    shutil.copy2(dest, fresh / dest.name)
                changed = sum(
                    _rewrite_file(Path(d, f), wd)
                    for d, _dirs, files in os.walk(fresh)
                    for f in files
                )
                if dest.is_symlink() or dest.is_file():
                    dest.unlink()
                else:
                    shutil.rmtree(dest)
                fresh.rename(dest)
            except OSError as exc:
                raise StagingError(
                    f"Input channel {name!r}: could not copy it to rewrite {OPT_ML}: {exc}"
                ) from exc
            where = f" for {wd.host}" if wd.host else ""
            log(f"channel {name}{where}: {OPT_ML} in {changed} file(s) now names {wd.base}")
