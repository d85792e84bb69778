"""A TensorFlow job's launch, without TensorFlow: which scripts are TensorFlow jobs, the
variables their processes get (TF_CONFIG as SageMaker sets it), the command that runs them
under Naiad's runner, where the runner looks for the saved model, and the Keras callback's
bookkeeping (what it records, and that it is added once)."""

import json
import os
from pathlib import Path
from typing import Any

import pytest

from naiad.core.errors import InvalidInput
from naiad.executors.base import LaunchSpec
from naiad.executors.supervisor import launch, tensorflow
from naiad.executors.supervisor.workdir import WorkDir
from naiad.integrations import keras, tensorflow_job
from naiad.schemas.jobs import JobCreate
from naiad.serving import tf_runtime


def spec(tmp_path: Path, framework: str = "auto", entrypoint: str = "train.py") -> LaunchSpec:
    return LaunchSpec(
        job_name="j", run_id="r", work_dir=tmp_path, source_uri=None, entrypoint=entrypoint,
        framework=framework,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("source", "env", "expected"),
    [
        ("import tensorflow as tf\n", {}, True),
        ("from tensorflow import keras\n", {}, True),
        ("import tf_keras\n", {}, True),
        ("import keras\n", {}, True),
        ("import keras\n", {"KERAS_BACKEND": "torch"}, False),
        ("import torch\n# import tensorflow in a comment is not an import\n", {}, False),
        ("def f():\n    import tensorflow\n", {}, True),
    ],
)
def test_auto_is_tensorflow_when_the_entrypoint_imports_it(
    tmp_path: Path, source: str, env: dict[str, str], expected: bool
) -> None:
    (tmp_path / "train.py").write_text(source)
    assert tensorflow.is_tensorflow(spec(tmp_path), tmp_path, env) is expected


def test_an_explicit_framework_wins_over_the_imports(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("import tensorflow\n")
    assert not tensorflow.is_tensorflow(spec(tmp_path, "pytorch"), tmp_path, {})
    (tmp_path / "train.py").write_text("import torch\n")
    assert tensorflow.is_tensorflow(spec(tmp_path, "tensorflow"), tmp_path, {})


def test_one_process_per_host_gets_its_tf_config_and_torchrun_ranks_get_the_addresses() -> None:
    workers = ["10.0.0.1:2222", "10.0.0.2:2222"]
    env = tensorflow.environment({}, workers, procs=1, rank=1)
    assert json.loads(env["TF_CONFIG"]) == {
        "cluster": {"worker": workers},
        "task": {"type": "worker", "index": 1},
    }
    assert env["TF_USE_LEGACY_KERAS"] == "1"  # tf.keras is Keras 2: it runs MWMS
    several = tensorflow.environment({"TF_USE_LEGACY_KERAS": "0"}, workers * 2, procs=2, rank=2)
    assert "TF_CONFIG" not in several  # each rank sets its own, from its RANK
    assert several["NAIAD_TF_WORKERS"].count(",") == 3
    assert several["TF_USE_LEGACY_KERAS"] == "0"  # the job's own choice stays
    alone = tensorflow.environment({}, [], procs=1, rank=0)
    assert "TF_CONFIG" not in alone and "NAIAD_TF_WORKERS" not in alone


def test_the_runner_sets_a_ranks_tf_config_from_the_addresses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.setenv("NAIAD_TF_WORKERS", "h:1,h:2,h:3")
    monkeypatch.setenv("RANK", "2")
    tensorflow_job.set_tf_config()
    config = json.loads(os.environ["TF_CONFIG"])
    assert config["task"] == {"type": "worker", "index": 2}
    assert config["cluster"]["worker"] == ["h:1", "h:2", "h:3"]


def test_the_runner_runs_the_script_alone_and_under_torchrun(tmp_path: Path) -> None:
    wd = WorkDir(tmp_path)
    runner = tensorflow.runner()
    assert runner.endswith("tensorflow_runner/__main__.py") and Path(runner).is_file()
    one = launch.command(wd, "train.py", ["--epochs", "3"], 1, 0, 0, runner=runner)
    assert one[1:] == [runner, str(wd.code / "train.py"), "--epochs", "3"]
    two = launch.command(wd, "train.py", [], 2, 0, 1234, runner=runner)
    assert two[1:3] == ["-m", "torch.distributed.run"]
    assert two[-2:] == [runner, str(wd.code / "train.py")]


def test_a_tensorflow_job_cannot_be_elastic() -> None:
    with pytest.raises(ValueError, match="MultiWorkerMirroredStrategy"):
        JobCreate(
            name="tf", entrypoint="t.py", source_uri="s", nodes=1, max_nodes=2,
            framework="tensorflow",
        )  # fmt: skip


def test_the_saved_model_is_found_as_keras_file_or_savedmodel_folder(tmp_path: Path) -> None:
    (tmp_path / "model.keras").write_bytes(b"PK")
    assert tf_runtime.saved_models(tmp_path) == [("keras", "model.keras")]
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "saved_model.pb").write_bytes(b"")
    assert len(tf_runtime.saved_models(tmp_path)) == 2
    said = tensorflow_job.write_manifest(tmp_path)
    assert (
        said
        == "no naiad-model.json written: the model folder has 1, model.keras; keep one model there"
    )
    (tmp_path / "model.keras").unlink()
    assert tf_runtime.saved_models(tmp_path) == [("tf_savedmodel", "1")]


class FakeRun:
    def __init__(self) -> None:
        self.logged: list[tuple[dict[str, float], int]] = []
        self.params: dict[str, Any] = {}

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self.logged.append((metrics, step))

    def log_params(self, params: dict[str, Any]) -> None:
        if set(params) & set(self.params):
            raise InvalidInput("params cannot change")
        self.params.update(params)


def test_the_callback_records_epochs_batches_and_evaluations(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RANK", "0")
    cb = keras.Callback(log_every_n_batches=2)
    run = FakeRun()
    cb.run = run  # type: ignore[assignment]
    cb.set_params({"epochs": 1, "steps": 3, "verbose": 0})
    cb.on_train_begin()
    for batch in range(3):
        cb.on_train_batch_end(batch, {"loss": 1.0 / (batch + 1)})
    cb.on_test_end({"loss": 0.5})  # fit's validation: its values come with the epoch
    cb.on_epoch_end(0, {"loss": 0.4, "val_loss": 0.5, "note": "text"})
    cb.on_train_end()
    cb.on_test_end({"loss": 0.45})  # model.evaluate
    assert run.logged == [
        ({"batch/loss": 0.5}, 2),
        ({"loss": 0.4, "val_loss": 0.5}, 0),
        ({"eval_loss": 0.45}, 0),
    ]
    assert run.params == {"epochs": 1, "steps": 3}
    cb.on_train_begin()  # a second fit logs no params again (they cannot change)
    cb.on_epoch_end(0, {"loss": 0.3})  # and its epochs go on after the first's
    assert run.logged[-1] == ({"loss": 0.3}, 1)


def test_only_rank_0_records(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "1")
    cb = keras.Callback()
    run = FakeRun()
    cb.run = run  # type: ignore[assignment]
    cb.on_train_begin()
    cb.on_train_batch_end(0, {"loss": 1.0})
    cb.on_epoch_end(0, {"loss": 1.0})
    assert run.logged == [] and not cb._implements_train_batch_hooks()


def test_the_callback_is_added_once_and_never_to_kerass_own_list() -> None:
    added = keras._added(None)
    assert len(added) == 1 and isinstance(added[0], keras.Callback)
    mine = keras.Callback()
    assert keras._added([mine]) == [mine]
    other = object()
    assert keras._added([other])[0] is other and len(keras._added([other])) == 2

    class CallbackList:  # what fit hands its validation's evaluate: not a Sequence
        pass

    passed_on = CallbackList()
    assert keras._added(passed_on) is passed_on


def test_a_patched_fit_gets_the_callback_once() -> None:
    seen: list[Any] = []

    class Model:
        def fit(self, x: Any = None, y: Any = None, callbacks: Any = None) -> None:
            seen.append(callbacks)

        def evaluate(self, x: Any = None, callbacks: Any = None, **kwargs: Any) -> None:
            seen.append(callbacks)

    module = type("FakeKeras", (), {"Model": Model})
    keras.patch(module)  # type: ignore[arg-type]
    keras.patch(module)  # type: ignore[arg-type]  # twice: still one wrapper
    Model().fit([1], [2])
    Model().evaluate([1], callbacks=[keras.Callback()], verbose=0)
    assert len(seen[0]) == 1 and isinstance(seen[0][0], keras.Callback)
    assert len(seen[1]) == 1


def test_workers_listen_on_different_free_ports_below_the_ephemeral_range() -> None:
    ports = launch.listen_ports(4)
    assert len(set(ports)) == 4
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    assert all(port < low for port in ports)  # no connection's local end takes one meanwhile
