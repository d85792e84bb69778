"""Bring a job's code and input channels into its working directory.

Local directories are linked, not copied, so a big dataset on the same machine costs
nothing; anything in an artifact store (``s3://`` or a path under the server's store)
is downloaded, unless the channel's input mode is FastFile and the store is on this
machine (a ``file://`` store), when it is linked too and read on demand. Every step says
what it did in the job log.

On several hosts a FullyReplicated channel is staged once, under ``channels/``, and every
host's ``input/data/<channel>`` links to it; a ShardedByS3Key channel deals its files,
sorted by key, to the hosts in turn (host i of N gets keys i, i+N, i+2N, ...), and each
host stages only its own share.
"""

import json
import os
import shutil
import tarfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

from naiad.core.errors import InvalidInput
from naiad.core.units import human_bytes
from naiad.data import is_table
from naiad.executors.base import LaunchSpec
from naiad.executors.supervisor.jobenv import channel_options
from naiad.store.artifacts import ArtifactStore, buckets, open_artifact_store, safe_path
from naiad.store.artifacts.local import root_from_uri

if TYPE_CHECKING:
    from naiad.data.materialise import ChannelRecord

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


def store_and_path(uri: str, spec: LaunchSpec) -> tuple[ArtifactStore, str]:
    """``s3://bucket/key`` -> (the bucket's store, key); a relative path -> the server's store."""
    if uri.startswith("s3://"):
        try:
            bucket, key = buckets.split(uri)
        except InvalidInput as exc:
            raise StagingError(exc.message) from None
        store = open_artifact_store(f"s3://{bucket}", s3_endpoint_url=spec.s3_endpoint_url)
        return store, key
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


def _in_local_store(uri: str, spec: LaunchSpec) -> Path | None:
    """Where a path in the server's store lies on this machine, when that store is local."""
    if "://" in uri or os.path.isabs(uri) or not spec.artifact_root:
        return None
    if not (spec.artifact_root.startswith("file:") or os.path.isabs(spec.artifact_root)):
        return None
    try:
        return root_from_uri(spec.artifact_root) / safe_path(uri)
    except InvalidInput as exc:
        raise StagingError(f"Input {uri!r}: {exc.message}") from None


MAX_MANIFEST_BYTES = 64 * 1024 * 1024


def manifest_keys(uri: str, spec: LaunchSpec, manifest: str) -> list[str]:
    """The keys a SageMaker manifest lists, relative to ``uri`` (its prefix), sorted."""
    store, rel = store_and_path(manifest, spec)
    try:
        if store.size(rel) > MAX_MANIFEST_BYTES:
            raise StagingError(f"The manifest {manifest} is over 64 MiB.")
        entries = json.loads(store.get_bytes(rel))
        keys = sorted({safe_path(k) for k in entries[1:]})
    except StagingError:
        raise
    except (InvalidInput, ValueError, TypeError, FileNotFoundError) as exc:
        raise StagingError(f"The manifest {manifest} is not a list of keys: {exc}") from None
    return keys


def _download_keys(store: ArtifactStore, rel: str, keys: list[str], dest: Path) -> int:
    """Download ``rel/key`` into ``dest/key`` for each key; returns the bytes."""
    total = 0
    for key in keys:
        source = f"{rel}/{key}" if rel else key
        store.download(source, dest / key)
        total += (dest / key).stat().st_size
    return total


def _link_keys(base: Path, keys: list[str], dest: Path) -> None:
    for key in keys:
        if not (base / key).is_file():
            raise StagingError(f"{base / key} is listed in the manifest but does not exist.")
        (dest / key).parent.mkdir(parents=True, exist_ok=True)
        (dest / key).symlink_to((base / key).resolve())


def _clear(dest: Path) -> None:
    if dest.is_symlink() or dest.is_file():
        dest.unlink()
    elif dest.exists():
        shutil.rmtree(dest)


def _link_local(name: str, local: Path, dest: Path, how: str, log: Log, copy: bool) -> None:
    """``dest`` shows ``local``: a directory linked; a file linked or, with ``copy``, copied."""
    if local.is_dir():
        dest.symlink_to(local.resolve(), target_is_directory=True)
        log(f"staging channel {name}: {_summary(*_walk_size(local))} ({how} {local})")
    elif local.is_file():
        dest.mkdir(parents=True)
        if copy:
            shutil.copy2(local, dest / local.name)
            how = "copied"
        else:
            (dest / local.name).symlink_to(local.resolve())
        log(f"staging channel {name}: {_summary(1, local.stat().st_size)} ({how} {local})")
    else:
        raise StagingError(f"Input channel {name!r}: {local} does not exist on this machine.")


def stage_channel(
    name: str,
    uri: str,
    dest: Path,
    spec: LaunchSpec,
    log: Log,
    fast: bool = False,
    keys: list[str] | None = None,
) -> None:
    """Make ``dest`` (``input/data/<name>``) hold the channel's data (``fast``: FastFile;
    ``keys``: only these, a manifest's)."""
    _clear(dest)
    if keys is not None:
        _stage_listed(name, uri, dest, spec, log, fast, keys)
        return
    local = _local_path(uri)
    if local is not None:
        _link_local(name, local, dest, "linked", log, copy=not fast)
        return
    in_store = _in_local_store(uri, spec) if fast else None
    if in_store is not None and in_store.exists():
        _link_local(name, in_store, dest, "FastFile, linked", log, copy=False)
        return
    store, rel = store_and_path(uri, spec)
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


def _stage_listed(
    name: str, uri: str, dest: Path, spec: LaunchSpec, log: Log, fast: bool, keys: list[str]
) -> None:
    dest.mkdir(parents=True)
    local = _local_path(uri) or (_in_local_store(uri, spec) if fast else None)
    try:
        if local is not None:
            _link_keys(local, keys, dest)
            log(f"staging channel {name}: {len(keys):,} files from its manifest (linked)")
            return
        store, rel = store_and_path(uri, spec)
        total = _download_keys(store, rel, keys, dest)
    except StagingError:
        raise
    except Exception as exc:
        raise StagingError(f"Input channel {name!r}: could not stage {uri}: {exc}") from exc
    log(f"staging channel {name}: {_summary(len(keys), total)} from its manifest ({uri})")


def _local_keys(local: Path) -> list[str]:
    """The files under a local directory (links followed), as sorted '/'-separated keys."""
    if local.is_file():
        return [local.name]
    keys = []
    for dirpath, _dirs, names in os.walk(local, followlinks=True):
        for file in names:
            keys.append(Path(dirpath, file).relative_to(local).as_posix())
    return sorted(keys)


def stage_shards(
    name: str,
    uri: str,
    dests: Sequence[Path | None],
    spec: LaunchSpec,
    log: Log,
    fast: bool,
    listed: list[str] | None = None,
) -> None:
    """ShardedByS3Key: ``dests[i]`` gets the channel's keys i, i+N, ... (N = len(dests));
    a None is a host on another machine, which stages its own share.

    Local files (and FastFile ones in a local store) are linked one by one, others
    downloaded one by one: each host gets only its share, nothing more.
    """
    here = [(i, dest) for i, dest in enumerate(dests) if dest is not None]
    for _, dest in here:
        _clear(dest)
        dest.mkdir(parents=True)
    local = _local_path(uri)
    if local is None and fast:
        in_store = _in_local_store(uri, spec)
        local = in_store if in_store is not None and in_store.exists() else None
    try:
        if local is not None:
            if not local.exists():
                raise StagingError(
                    f"Input channel {name!r}: {local} does not exist on this machine."
                )
            keys = listed if listed is not None else _local_keys(local)
            base = local if local.is_dir() else local.parent
            for i, dest in here:
                for key in keys[i :: len(dests)]:
                    (dest / key).parent.mkdir(parents=True, exist_ok=True)
                    (dest / key).symlink_to((base / key).resolve())
            how = f"linked from {local}"
        else:
            store, rel = store_and_path(uri, spec)
            prefix = f"{rel}/" if rel else ""
            keys = (
                listed
                if listed is not None
                else sorted(info.path.removeprefix(prefix) for info in store.list(rel, True))
            )
            single = listed is None and not keys and bool(rel) and store.exists(rel)
            if single:  # the URI names one object: the first host gets it
                keys = [rel.rsplit("/", 1)[-1]]
            for i, dest in here:
                for key in keys[i :: len(dests)]:
                    store.download(rel if single else f"{prefix}{key}", dest / key)
            how = f"downloaded from {uri}"
    except StagingError:
        raise
    except Exception as exc:
        raise StagingError(f"Input channel {name!r}: could not stage {uri}: {exc}") from exc
    if not keys:
        raise StagingError(f"Input channel {name!r}: nothing found at {uri}.")
    shares = " + ".join(str(len(keys[i :: len(dests)])) for i in range(len(dests)))
    if len(here) < len(dests):
        shares = f"{len(keys[here[0][0] :: len(dests)])} here of {shares}"
    log(
        f"staging channel {name}: {len(keys):,} file{'s' if len(keys) != 1 else ''} sharded "
        f"by key over {len(dests)} hosts ({shares}, {how})"
    )


def stage_channels(
    spec: LaunchSpec,
    data_dirs: list[Path],
    shared: Path,
    log: Log,
    share: tuple[int, int] | None = None,
    records: "dict[str, ChannelRecord] | None" = None,
) -> list[str]:
    """Stage every channel into each host's data directory; returns the channels' names.

    With several hosts, a FullyReplicated channel is staged once into ``shared`` and
    linked from each host's directory; a ShardedByS3Key one is dealt out among them.
    ``share=(i, n)``: the one host here is host ``i`` of a gang of ``n`` machines, and
    takes only its part of a ShardedByS3Key channel. ``records`` gets what each table
    channel held (``tables``), for the run's lineage.
    """
    for data_dir in data_dirs:
        data_dir.mkdir(parents=True, exist_ok=True)
    for name, uri in sorted(spec.inputs.items()):
        if not name or "/" in name or name in (".", ".."):
            raise StagingError(f"Input channel name {name!r} is not a plain directory name.")
        options = channel_options(spec, name)
        if is_table(uri, options):
            record = _stage_table(name, uri, options, spec, data_dirs, shared, log, share)
            if records is not None:
                records[name] = record
            continue
        fast = options["input_mode"] == "FastFile"
        manifest = options["manifest"]
        keys = manifest_keys(uri, spec, manifest) if manifest else None
        sharded = options["distribution"] == "ShardedByS3Key"
        if share is not None and sharded and share[1] > 1:
            dests: list[Path | None] = [None] * share[1]
            dests[share[0]] = data_dirs[0] / name
            stage_shards(name, uri, dests, spec, log, fast, keys)
        elif len(data_dirs) == 1:
            stage_channel(name, uri, data_dirs[0] / name, spec, log, fast, keys)
        elif sharded:
            stage_shards(name, uri, [d / name for d in data_dirs], spec, log, fast, keys)
        else:
            staged = shared / name
            shared.mkdir(parents=True, exist_ok=True)
            stage_channel(name, uri, staged, spec, log, fast, keys)
            for data_dir in data_dirs:
                _clear(data_dir / name)
                (data_dir / name).symlink_to(staged, target_is_directory=True)
            log(f"channel {name}: the same files on all {len(data_dirs)} hosts")
    return sorted(spec.inputs)


def _stage_table(
    name: str,
    uri: str,
    options: dict[str, Any],
    spec: LaunchSpec,
    data_dirs: list[Path],
    shared: Path,
    log: Log,
    share: tuple[int, int] | None,
) -> "ChannelRecord":
    from naiad.executors.supervisor import tables  # pyarrow: only for a table channel

    dests = [d / name for d in data_dirs]
    for dest in [*dests, shared / name]:
        _clear(dest)
    try:
        if share is not None and share[1] > 1 and options["distribution"] == "ShardedByS3Key":
            return tables.stage_table(
                name, uri, options, dests, shared, spec, log, share[0], share[1]
            )
        return tables.stage_table(name, uri, options, dests, shared, spec, log)
    except tables.TableStagingError as exc:
        raise StagingError(str(exc)) from None


def extract_source(spec: LaunchSpec, code_dir: Path, log: Log) -> None:
    """Download the source snapshot and unpack it into ``code/``, refusing unsafe members
    (a job without one, a command whose code comes in a channel, gets an empty ``code/``)."""
    if code_dir.exists():
        shutil.rmtree(code_dir)
    code_dir.mkdir(parents=True)
    if spec.source_uri is None:
        log("no source snapshot: code/ is empty")
        return
    archive = code_dir.parent / ".source.tar.gz"
    local = _local_path(spec.source_uri)
    try:
        if local is not None:
            shutil.copyfile(local, archive)
        else:
            store, rel = store_and_path(spec.source_uri, spec)
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
            tar.extractall(code_dir, members=members, filter=_owner_only)
    except (tarfile.TarError, OSError) as exc:
        raise StagingError(
            f"The source snapshot {spec.source_uri} is not a valid .tar.gz: {exc}"
        ) from exc
    finally:
        archive.unlink(missing_ok=True)
    files, size = _walk_size(code_dir)
    log(f"source snapshot: {_summary(files, size)}")
    if spec.entrypoint is None:
        return
    entry = (code_dir / spec.entrypoint).resolve()
    if not entry.is_relative_to(code_dir.resolve()) or not entry.is_file():
        have = sorted(p.name for p in code_dir.iterdir())[:10]
        raise StagingError(
            f"Entrypoint {spec.entrypoint!r} is not a file in the source snapshot "
            f"(it has: {', '.join(have) or 'nothing'}); pass the script's path inside it."
        )


def _owner_only(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo:
    """tarfile's ``data`` filter, and no permission for group or others: the code is
    unpacked into the owner-only Naiad home and must stay as private as the rest of it."""
    member = tarfile.data_filter(member, path)
    if member.mode is None:
        return member
    return member.replace(mode=member.mode & 0o700, deep=False)
