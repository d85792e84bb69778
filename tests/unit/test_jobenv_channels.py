"""Channels staged for one host or several: FullyReplicated staged once and linked from
every host, ShardedByS3Key dealt out by sorted key, FastFile linked instead of copied."""

from pathlib import Path

from naiad.executors.base import LaunchSpec
from naiad.executors.supervisor.staging import stage_channels
from naiad.store.artifacts import open_artifact_store

Said = list[str]


def spec(tmp_path: Path, inputs: dict[str, str], **channels: dict[str, str]) -> LaunchSpec:
    return LaunchSpec(
        job_name="chan",
        run_id="run-1",
        work_dir=tmp_path / "job",
        source_uri="sources/x.tar.gz",
        entrypoint="train.py",
        inputs=inputs,
        channels=dict(channels),  # type: ignore[arg-type]
        artifact_root=(tmp_path / "store").as_uri(),
    )


def files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def data(tmp_path: Path, n: int = 4) -> Path:
    src = tmp_path / "data"
    for i in range(n):
        (src / ("sub" if i == 3 else "")).mkdir(parents=True, exist_ok=True)
        (src / ("sub" if i == 3 else "") / f"part-{i}.csv").write_text(f"{i}\n")
    return src


def test_sharded_local_channel_deals_sorted_keys_to_hosts(tmp_path: Path) -> None:
    src = data(tmp_path)  # keys: part-0, part-1, part-2, sub/part-3
    said: Said = []
    hosts = [tmp_path / "job" / "hosts" / f"algo-{i}" / "input" / "data" for i in (1, 2)]
    job = spec(
        tmp_path,
        {"train": src.as_uri(), "test": src.as_uri()},
        train={"distribution": "ShardedByS3Key"},
    )
    assert stage_channels(job, hosts, tmp_path / "job" / "channels", said.append) == [
        "test",
        "train",
    ]
    assert files(hosts[0] / "train") == ["part-0.csv", "part-2.csv"]
    assert files(hosts[1] / "train") == ["part-1.csv", "sub/part-3.csv"]
    assert (hosts[1] / "train" / "sub" / "part-3.csv").read_text() == "3\n"
    assert (hosts[0] / "train" / "part-0.csv").is_symlink()  # linked, not copied
    for host in hosts:  # FullyReplicated: one staged directory, every host links to it
        assert files(host / "test") == ["part-0.csv", "part-1.csv", "part-2.csv", "sub/part-3.csv"]
        assert (host / "test").resolve() == (tmp_path / "job" / "channels" / "test").resolve()
    assert any("4 files sharded by key over 2 hosts (2 + 2, linked" in s for s in said)


def test_sharded_store_channel_downloads_each_hosts_share_only(tmp_path: Path) -> None:
    store = open_artifact_store((tmp_path / "store").as_uri())
    for i in range(5):
        store.put_bytes(f"buckets/b/train/{i}.txt", str(i).encode())
    hosts = [tmp_path / f"h{i}" for i in (1, 2)]
    job = spec(tmp_path, {"train": "buckets/b/train"}, train={"distribution": "ShardedByS3Key"})
    stage_channels(job, hosts, tmp_path / "shared", lambda _: None)
    assert files(hosts[0] / "train") == ["0.txt", "2.txt", "4.txt"]
    assert files(hosts[1] / "train") == ["1.txt", "3.txt"]
    assert not (hosts[0] / "train" / "0.txt").is_symlink()  # File mode: downloaded


def test_fastfile_links_what_is_on_this_machine(tmp_path: Path) -> None:
    store = open_artifact_store((tmp_path / "store").as_uri())
    store.put_bytes("buckets/b/train/a.txt", b"a")
    one = tmp_path / "one.csv"
    one.write_text("x\n")
    job = spec(
        tmp_path,
        {"train": "buckets/b/train", "one": one.as_uri(), "copied": one.as_uri()},
        train={"input_mode": "FastFile"},
        one={"input_mode": "FastFile"},
    )
    dest = tmp_path / "input" / "data"
    said: Said = []
    stage_channels(job, [dest], tmp_path / "shared", said.append)
    assert (dest / "train").is_symlink() and files(dest / "train") == ["a.txt"]
    assert (dest / "one" / "one.csv").is_symlink()
    assert not (dest / "copied" / "one.csv").is_symlink()  # File mode copies a single file
    assert any("staging channel train: 1 file, 1 B (FastFile, linked" in s for s in said)
