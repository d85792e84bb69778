"""Bring a job's code and input channels into its working directory.

Local directories are linked, not copied, so a big dataset on the same machine costs
nothing; anything in an artifact store (``s3://`` or a path under the server's store)
is downloaded. Every step says what it did in the job log.
"""

import os
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

from naiad.core.units import human_bytes
from naiad.executors.base import LaunchSpec
from naiad.store.artifacts import ArtifactStore, open_artifact_store

Log = Callable[[str], None]


class StagingError(Exception):
    """Staging failed; the message is the job's failure reason."""


def _summary(files: int, size: int) -> str:
    return f"{files:,} file{'s' if files != 1 else ''}, {human_bytes(size)}"


def _local_path(uri: str) -> Path | None:
    """The path a ``file://`` URI or an absolute path names; None for anything else."""
    if os.path.isabs(uri):
        return Path(uri)
    parts = urlsplit(uri)
    if parts.scheme == "file" and parts.netloc in ("", "localhost"):
        return Path(url2pathname(parts.path))
    return None


def _store_and_path(uri: str, spec: LaunchSpec) -> tuple[ArtifactStore, str]:
    """``s3://bucket/key`` -> (the bucket's store, key); a relative path -> the server's store."""
    if uri.startswith("s3://"):
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        store = open_artifact_store(f"s3://{bucket}", s3_endpoint_url=spec.s3_endpoint_url)
        return store, key.strip("/")
    if "://" in uri:
        raise StagingError(
            f"Input {uri!r} has a scheme Naiad cannot read; use file://, s3:// or a path "
            "in the artifact store."
        )
    if not spec.artifact_root:
        raise StagingError(f"Input {uri!r} is a store path but the job has no artifact_root.")
    return (
        open_artifact_store(spec.artifact_root, s3_endpoint_url=spec.s3_endpoint_url),
        uri.strip("/"),
    )


def _walk_size(root: Path) -> tuple[int, int]:
    files = size = 0
    for dirpath, _dirs, names in os.walk(root, followlinks=True):
        for name in names:
            try:
                size += os.stat(os.path.join(dirpath, name)).st_size
                files += 1
            except OSError:
                continue
    return files, size


def stage_channel(name: str, uri: str, dest: Path, spec: LaunchSpec, log: Log) -> None:
    """Make ``dest`` (``input/data/<name>``) hold the channel's data."""
    if dest.is_symlink() or dest.is_file():
        dest.unlink()
    elif dest.exists():
        shutil.rmtree(dest)
    local = _local_path(uri)
    if local is not None:
        if local.is_dir():
            dest.symlink_to(local.resolve(), target_is_directory=True)
            log(f"staging channel {name}: {_summary(*_walk_size(local))} (linked {local})")
        elif local.is_file():
            dest.mkdir(parents=True)
            shutil.copy2(local, dest / local.name)
            log(f"staging channel {name}: {_summary(1, local.stat().st_size)} (copied {local})")
        else:
            raise StagingError(f"Input channel {name!r}: {local} does not exist on this machine.")
        return
    store, rel = _store_and_path(uri, spec)
    try:
        files = store.list(rel, recursive=True)
        dest.mkdir(parents=True)
        if files:
            total = sum(f.size or 0 for f in files)
            log(f"staging channel {name}: {_summary(len(files), total)} (downloading {uri})")
            store.download(rel, dest)
        elif rel and store.exists(rel):
            size = store.size(rel)
            log(f"staging channel {name}: {_summary(1, size)} (downloading {uri})")
            store.download(rel, dest / rel.rsplit("/", 1)[-1])
        else:
            raise StagingError(f"Input channel {name!r}: nothing found at {uri}.")
    except StagingError:
        raise
    except Exception as exc:
        raise StagingError(f"Input channel {name!r}: could not download {uri}: {exc}") from exc


def stage_channels(spec: LaunchSpec, data_dir: Path, log: Log) -> list[str]:
    """Stage every channel; returns their names."""
    data_dir.mkdir(parents=True, exist_ok=True)
    for name, uri in sorted(spec.inputs.items()):
        if not name or "/" in name or name in (".", ".."):
            raise StagingError(f"Input channel name {name!r} is not a plain directory name.")
        stage_channel(name, uri, data_dir / name, spec, log)
    return sorted(spec.inputs)


def extract_source(spec: LaunchSpec, code_dir: Path, log: Log) -> None:
    """Download the source snapshot and unpack it into ``code/``, refusing unsafe members."""
    if code_dir.exists():
        shutil.rmtree(code_dir)
    code_dir.mkdir(parents=True)
    archive = code_dir.parent / ".source.tar.gz"
    local = _local_path(spec.source_uri)
    try:
        if local is not None:
            shutil.copyfile(local, archive)
        else:
            store, rel = _store_and_path(spec.source_uri, spec)
            store.download(rel, archive)
    except StagingError:
        raise
    except Exception as exc:
        raise StagingError(f"Could not fetch the source snapshot {spec.source_uri}: {exc}") from exc
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                target = os.path.realpath(code_dir / member.name)
                if os.path.commonpath([target, os.path.realpath(code_dir)]) != str(
                    os.path.realpath(code_dir)
                ):
                    raise StagingError(
                        f"The source snapshot has a member that escapes its directory: "
                        f"{member.name!r}; rebuild the snapshot from a plain directory."
                    )
            tar.extractall(code_dir, members=members, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise StagingError(
            f"The source snapshot {spec.source_uri} is not a valid .tar.gz: {exc}"
        ) from exc
    finally:
        archive.unlink(missing_ok=True)
    files, size = _walk_size(code_dir)
    log(f"source snapshot: {_summary(files, size)}")
    entry = (code_dir / spec.entrypoint).resolve()
    if not entry.is_relative_to(code_dir.resolve()) or not entry.is_file():
        have = sorted(p.name for p in code_dir.iterdir())[:10]
        raise StagingError(
            f"Entrypoint {spec.entrypoint!r} is not a file in the source snapshot "
            f"(it has: {', '.join(have) or 'nothing'}); pass the script's path inside it."
        )
