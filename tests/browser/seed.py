"""Data for the console to show, written before the browser looks.

``many_runs`` writes thousands of runs straight into the store's tables in one
transaction (through the API they would take a minute); everything else goes through the
REST API as any client's data would.
"""

import math
import random
import time
import uuid
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import orjson
from sqlalchemy import insert

import naiad
from naiad.core.ids import new_id
from naiad.settings import Settings
from naiad.store.db import make_engine, make_sessionmaker
from naiad.store.tables import ExperimentRow, LatestMetricRow, ParamRow, RunRow, TagRow

OPTIMIZERS = ("adam", "sgd", "adamw")


def many_runs(home, experiment: str, n: int) -> None:  # type: ignore[no-untyped-def]
    """``n`` finished runs with params lr, batch, optimizer, metrics acc and loss, tag team."""
    settings = Settings(home=home)
    engine = make_engine(settings.db_url)
    rng = random.Random(7)
    start = datetime.now(UTC) - timedelta(days=3)
    runs, params, tags, latest = [], [], [], []
    exp_id = new_id()
    for i in range(n):
        run_id = new_id()
        began = start + timedelta(seconds=20 * i)
        runs.append(
            {
                "id": run_id,
                "experiment_id": exp_id,
                "name": f"sweep-{i:05d}",
                "status": "Completed" if i % 17 else "Failed",
                "start_time": began,
                "end_time": began + timedelta(seconds=rng.randint(30, 900)),
                "artifact_uri": f"file://{home}/artifacts/runs/{run_id}/artifacts",
            }
        )
        lr = round(10 ** rng.uniform(-4, -1), 6)
        batch = rng.choice((32, 64, 128, 256))
        optimizer = OPTIMIZERS[i % 3]
        for key, value in (("lr", lr), ("batch", batch), ("optimizer", optimizer)):
            number = None if isinstance(value, str) else float(value)
            params.append(
                {
                    "run_id": run_id,
                    "key": key,
                    "value": orjson.dumps(value).decode(),
                    "number": number,
                }
            )
        tags.append({"run_id": run_id, "key": "team", "value": ("vision", "speech")[i % 2]})
        acc = 0.5 + 0.45 * math.exp(-abs(math.log10(lr) + 2.5)) + rng.uniform(-0.02, 0.02)
        for key, value in (("acc", acc), ("loss", 1.5 * (1 - acc))):
            latest.append(
                {
                    "run_id": run_id,
                    "key": key,
                    "step": 99,
                    "timestamp": began.timestamp() + 60,
                    "value": value,
                    "min": value,
                    "max": value,
                    "count": 100,
                }
            )
    with make_sessionmaker(engine)() as session, session.begin():
        session.execute(insert(ExperimentRow), [{"id": exp_id, "name": experiment, "tags": {}}])
        for table, rows in ((RunRow, runs), (ParamRow, params), (TagRow, tags)):
            session.execute(insert(table), rows)
        session.execute(insert(LatestMetricRow), latest)
    engine.dispose()


def post_series(api: httpx.Client, run_id: str, key: str, values: np.ndarray) -> None:
    """Log a whole series in batches the server takes (200,000 points at most each)."""
    steps = np.arange(values.size)
    t0 = time.time() - values.size * 0.001
    for lo in range(0, values.size, 200_000):
        hi = min(values.size, lo + 200_000)
        body = {
            "batch_id": uuid.uuid4().hex,
            "metrics": {
                key: {
                    "steps": steps[lo:hi].tolist(),
                    "timestamps": (t0 + steps[lo:hi] * 0.001).tolist(),
                    "values": values[lo:hi].tolist(),
                }
            },
        }
        response = api.post(
            f"/runs/{run_id}/metrics",
            content=orjson.dumps(body),
            headers={"content-type": "application/json"},
        )
        response.raise_for_status()


def curve_run(api: httpx.Client, experiment: str, name: str, lr: float, optimizer: str) -> str:
    """A finished run with a few hundred points of loss and acc, params and an artifact set."""
    run = api.post(
        "/runs",
        json={
            "experiment": experiment,
            "name": name,
            "params": {"lr": lr, "optimizer": optimizer, "epochs": 10},
            "tags": {"team": "vision"},
        },
    ).json()
    steps = np.arange(300)
    rng = np.random.default_rng(int(lr * 1e6))
    loss = np.exp(-steps * lr * 20) + rng.normal(0, 0.03, steps.size)
    post_series(api, run["id"], "loss", loss)
    post_series(api, run["id"], "acc", 1 - loss / 2)
    post_series(api, run["id"], "system/cpu_percent", 40 + rng.normal(0, 5, 60))
    api.patch(f"/runs/{run['id']}", json={"status": "Completed"}).raise_for_status()
    return run["id"]


def epoch_run(api: httpx.Client, experiment: str, name: str, lr: float) -> str:
    """A finished run logging what the digits example logs: ``epoch`` (a counter, first in
    alphabetical order), ``train/loss``, ``val/accuracy`` and ``val/loss``."""
    run = api.post("/runs", json={"experiment": experiment, "name": name, "params": {"lr": lr}})
    run_id = run.json()["id"]
    epochs = np.arange(10, dtype=float)
    loss = np.exp(-epochs * lr * 50)
    for key, values in (
        ("epoch", epochs),
        ("train/loss", loss),
        ("val/loss", loss * 1.1),
        ("val/accuracy", 1 - loss / 2),
    ):
        post_series(api, run_id, key, values)
    api.patch(f"/runs/{run_id}", json={"status": "Completed"}).raise_for_status()
    return run_id


def png(width: int = 96, height: int = 64) -> bytes:
    """A small gradient image, encoded by hand (no imaging library needed)."""
    import struct
    import zlib

    rows = b"".join(
        b"\x00" + bytes(v for x in range(width) for v in (x * 255 // width, y * 255 // height, 160))
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def artifacts(api: httpx.Client, run_id: str) -> None:
    """An image, a JSON document and a text file, one of them in a folder."""
    files = {
        "plots/gradient.png": png(),
        "metrics.json": orjson.dumps({"acc": 0.93, "per_class": {"cat": 0.9, "dog": 0.95}}),
        "notes.txt": b"trained on the digits data\nbest epoch: 7\n",
    }
    for path, body in files.items():
        api.put(f"/runs/{run_id}/artifacts/{path}", content=body).raise_for_status()


# A training job that writes a TorchScript classifier the way the job contract says: the
# model file and its naiad-model.json in SM_MODEL_DIR.
TRAIN = """
import json, os, warnings
import torch
from naiad import runtime

ctx = runtime.context()
net = torch.nn.Linear(4, 3)
with torch.no_grad():
    net.weight.copy_(torch.tensor([[-1.0, 0, 0, 0], [1, -1, 0, 0], [0, 1, 0, 0]]))
    net.bias.zero_()
out = os.environ["SM_MODEL_DIR"]
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    torch.jit.script(net).save(os.path.join(out, "model.pt"))
manifest = {
    "format": "torchscript",
    "file": "model.pt",
    "signature": {"inputs": {"shape": [-1, 4], "dtype": "float32"}},
    "classes": ["low", "mid", "high"],
}
with open(os.path.join(out, "naiad-model.json"), "w") as f:
    json.dump(manifest, f)
ctx.log_metrics({"val/accuracy": 0.68}, step=0)
"""


# Where a person keeps evaluation data: a path long enough to test how a card wraps it.
LONG_DATA_DIR = "datasets/handwritten-digits-8x8-held-out-test-split-2024-06-final"


def glyphs(client: naiad.Client, tmp) -> str:  # type: ignore[no-untyped-def]
    """A 10-class model on 64 features (a digits classifier's shape), uploaded from a file;
    returns the data directory to evaluate it on, under a long path."""
    import torch

    torch.manual_seed(0)
    net = torch.nn.Linear(64, 10)
    path = tmp / "glyphs.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(net).save(str(path))
    client.models.register(
        "glyphs", path=path, input_shape=[-1, 64], classes=[str(d) for d in range(10)]
    )
    data = tmp / LONG_DATA_DIR
    data.mkdir(parents=True)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 64)).astype(np.float32)
    np.savez(data / "test.npz", x=x, y=rng.integers(0, 10, size=400))
    return str(data)


def serve_models(live, tmp) -> None:  # type: ignore[no-untyped-def]
    """classifier v1 from a training job (aliased production) and v2 uploaded from a file,
    each evaluated on generated data, both served 3:1 by endpoint 'classify' (v2 autoscaled
    between 1 and 2 replicas), which then answers 30 requests; and glyphs v1, ten classes,
    evaluated on data under a long path."""
    import torch

    client = naiad.Client(url=live.url, token=live.token)
    source = tmp / "train"
    source.mkdir()
    (source / "train.py").write_text(TRAIN)
    job = client.training_jobs.create(
        name="train-classifier",
        entrypoint="train.py",
        source_dir=source,
        hyperparameters={"lr": 0.1},
        experiment="classifier",
    )
    x = np.random.default_rng(0).normal(size=(90, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5).astype(np.int64)
    data = tmp / "eval-data"
    data.mkdir()
    np.savez(data / "data.npz", x=x, y=y)
    net = torch.nn.Linear(4, 3)  # v2 leans to "mid": a different confusion matrix
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[-1.0, 0, 0, 0], [1, -1, 0, 0], [0, 1, 0, 0]]))
        net.bias.copy_(torch.tensor([0.0, 0.6, 0.0]))
    path = tmp / "classifier-2.pt"
    with warnings.catch_warnings():  # TorchScript is what the registry takes from a file
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(net).save(str(path))
    done = job.wait(timeout=180)
    assert done.status == "Completed", "".join(job.logs())
    client.models.register("classifier", job="train-classifier")
    client.models.register(
        "classifier", path=path, input_shape=[-1, 4], classes=["low", "mid", "high"]
    )
    client.models.set_alias("classifier", "production", 1)
    evaluations = [client.evaluations.create(f"classifier:{v}", str(data)) for v in (1, 2)]
    evaluations.append(client.evaluations.create("glyphs:1", glyphs(client, tmp)))
    endpoint = client.endpoints.deploy(
        "classify",
        variants=[
            {"model": "classifier:1", "weight": 3},
            {"model": "classifier:2", "weight": 1, "autoscaling": {"max_replicas": 2}},
        ],
    )
    for evaluation in evaluations:
        done = client.evaluations.wait(evaluation, timeout=180)
        assert done.status == "Completed", done
    endpoint.wait(timeout=180)
    for _ in range(30):  # spread over a couple of seconds, for the charts
        client.endpoints.predict("classify", np.zeros((2, 4), dtype=np.float32))
        time.sleep(0.05)


# examples/tuning/objective.py: a smooth bowl over lr, width and act, logging ``score``
TUNING_EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tuning"


def tuning_job(
    client: naiad.Client,
    api: httpx.Client,
    name: str,
    trials: int = 6,
    parallel: int = 2,
    steps: int = 4,
    early_stopping: str = "asha",
) -> dict[str, object]:
    """Start a search of the example objective over lr (log), width (integer) and act
    (categorical), ``steps`` steps of 0.05 s a trial; returns the tuning job as created."""
    source = client.training_jobs.upload_source(TUNING_EXAMPLE).source_uri
    body = {
        "name": name,
        "strategy": "tpe",
        "early_stopping": early_stopping,
        "max_trials": trials,
        "parallel": parallel,
        "seed": 2,  # its first trials spread over every param's range
        "objective": {"metric": "score", "direction": "maximize"},
        "space": [
            {"name": "lr", "type": "continuous", "min": 1e-4, "max": 1, "scaling": "log"},
            {"name": "width", "type": "integer", "min": 1, "max": 6},
            {"name": "act", "type": "categorical", "values": ["relu", "gelu", "tanh"]},
        ],
        "template": {
            "entrypoint": "objective.py",
            "source_uri": source,
            "hyperparameters": {"steps": steps, "step_seconds": 0.05},
        },
    }
    response = api.post("/tuning-jobs", json=body)
    response.raise_for_status()
    return response.json()
