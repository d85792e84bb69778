"""The main job: from a fresh clone to a trained, evaluated, deployed digit classifier.

    make quickstart            # or: python -m naiad.quickstart [--clean] [--epochs N]

Starts the embedded server if none is running, then: writes the bundled 8x8 digits as
train/validation/test channels, trains the CNN of ``examples/digits`` as a 2-process
DDP job (live view), evaluates it on the test split, registers it as ``digits`` with
the ``production`` alias, deploys an endpoint with dynamic batching, and classifies
test images through it. Run again, it reuses what exists; ``--clean`` starts over.
"""

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

import naiad
from naiad.cli.jobs import follow
from naiad.cli.models import evaluation_table, matrix_table
from naiad.core.errors import NaiadError, NotFound
from naiad.core.home import HomeLayout, default_home
from naiad.schemas.jobs import TrainingJob
from naiad.schemas.models import Evaluation, ModelVersion
from naiad.sdk.endpoints import EndpointHandle
from naiad.sdk.local_server import ensure_server

console = Console()
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "digits"
JOB_PREFIX = "digits-quickstart"
MODEL = ENDPOINT = "digits"
MIN_ACCURACY = 0.97
SHADES = " .:-=+*#%@"


def step(n: int, text: str) -> None:
    console.rule(f"[bold cyan]{n}. {text}", align="left")


def prepare_data(root: Path) -> dict[str, Path]:
    """The digits as .npz channels (the same split every time), written once."""
    sys.path.insert(0, str(EXAMPLE))
    try:
        # examples/digits/prepare.py, found through the path above
        from prepare import SPLITS, prepare  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(EXAMPLE))
    paths = {name: root / name for name in SPLITS}
    if not all((p / "digits.npz").is_file() for p in paths.values()):
        paths = prepare(root)
    for name, path in paths.items():
        n = len(np.load(path / "digits.npz")["y"])
        console.print(f"  {name:<10} {n:>5} images  {path}")
    return paths


def train(
    client: naiad.Client, data: dict[str, Path], epochs: int, procs: int, fresh: bool
) -> TrainingJob:
    """The latest Completed quickstart job, or a new one followed live."""
    jobs = [j for j in client.training_jobs.list() if j.name.startswith(JOB_PREFIX)]
    done = [j for j in jobs if j.status == "Completed"]
    if done and not fresh:
        console.print(
            f"  reusing job [bold]{done[0].name}[/] (run {done[0].run_id}); --clean trains again"
        )
        return done[0]
    name = f"{JOB_PREFIX}-{len(jobs) + 1}"
    handle = client.training_jobs.create(
        name=name,
        entrypoint="train.py",
        source_dir=EXAMPLE,
        hyperparameters={"epochs": epochs, "lr": 0.003, "batch_size": 32, "seed": 0},
        inputs={"train": str(data["train"]), "validation": str(data["validation"])},
        processes_per_node=procs,
        experiment="quickstart",
    )
    console.print(f"  submitted [bold]{name}[/]: {procs} processes (torchrun, DDP over gloo)")
    job = follow(client, handle.name)
    if job.status != "Completed":
        raise SystemExit(f"The training job {job.status.lower()}: {job.status_reason}")
    return job


def register(client: naiad.Client, job_name: str) -> ModelVersion:
    """The version registered from ``job_name``, registering it if this is its first time."""
    try:
        versions = client.models.versions(MODEL)
    except NotFound:
        versions = []
    for version in versions:
        if version.lineage.job == job_name:
            return version
    return client.models.register(MODEL, job=job_name, description="quickstart CNN")


def evaluate(client: naiad.Client, ref: str, test: Path) -> Evaluation:
    past = [e for e in client.evaluations.list(ref) if e.status == "Completed"]
    if past:
        return past[-1]
    with console.status(f"  evaluation job of {ref} on the test split"):
        return client.models.evaluate(ref, str(test))


def deploy(client: naiad.Client, ref: str) -> EndpointHandle:
    """The endpoint serving ``ref``: created, moved to it (a rollout), or left as it is."""
    try:
        endpoint = client.endpoints.get(ENDPOINT)
    except NotFound:
        endpoint = None
    if endpoint is None:
        endpoint = client.endpoints.deploy(
            ENDPOINT, model=ref, replicas=1, max_batch=64, max_delay_ms=5
        )
    elif [v.model for v in endpoint.endpoint.variants] != [ref]:
        endpoint = client.endpoints.update(ENDPOINT, model=ref)
    with console.status(f"  starting the endpoint's replica for {ref}"):
        endpoint.wait(timeout=120)
    return endpoint


def ascii_digit(image: np.ndarray) -> str:
    return "\n".join(
        "  "
        + "".join(SHADES[min(int(v * (len(SHADES) - 1) + 0.5), len(SHADES) - 1)] * 2 for v in row)
        for row in image.reshape(8, 8)
    )


def predict(endpoint: EndpointHandle, test: Path, count: int = 12) -> None:
    arrays = np.load(test / "digits.npz")
    rng = np.random.default_rng(int(time.time()))
    picked = rng.choice(len(arrays["y"]), size=count, replace=False)
    x, y = arrays["x"][picked], arrays["y"][picked]
    started = time.perf_counter()
    predicted = [int(np.argmax(endpoint.predict(x[i : i + 1])[0])) for i in range(count)]
    elapsed_ms = (time.perf_counter() - started) * 1000 / count
    console.print(f"  one of them, as the endpoint saw it (label {y[0]}):")
    console.print(ascii_digit(x[0]), highlight=False)
    console.print(f"  POST {endpoint.endpoint.url}, one image per request:")
    table = Table()
    table.add_column("image")
    table.add_column("true")
    table.add_column("predicted")
    for i, (truth, guess) in enumerate(zip(y, predicted, strict=True)):
        mark = "[green]✓[/]" if truth == guess else "[red]✗[/]"
        table.add_row(str(int(picked[i])), str(int(truth)), f"{guess} {mark}")
    console.print(table)
    right = sum(int(t == p) for t, p in zip(y, predicted, strict=True))
    console.print(f"  {right}/{count} right, {elapsed_ms:.1f} ms per request")


def write_sample(test: Path, path: Path) -> Path:
    """One test image as the JSON an endpoint takes, for `naiad endpoints invoke`."""
    image = np.load(test / "digits.npz")["x"][:1]
    path.write_text(json.dumps({"inputs": image.round(4).tolist()}))
    return path


def clean(client: naiad.Client) -> None:
    """Delete the endpoint and the model (jobs and runs stay, as history)."""
    with contextlib.suppress(NotFound):
        client.endpoints.delete(ENDPOINT, wait=True)
        console.print(f"  deleted the endpoint {ENDPOINT!r}")
    with contextlib.suppress(NotFound):
        client.models.delete(MODEL)
        console.print(f"  deleted the model {MODEL!r}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m naiad.quickstart", description=__doc__)
    parser.add_argument("--clean", action="store_true", help="Delete and redo everything.")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--procs", type=int, default=2, help="Training processes (DDP).")
    args = parser.parse_args(argv)
    started = time.monotonic()
    home = HomeLayout(default_home())
    url = ensure_server()
    client = naiad.Client()
    console.print(f"[bold]Naiad[/] server at {url}, home {home.root}")
    try:
        if args.clean:
            clean(client)
        step(1, "Data: the bundled 8x8 digits as input channels")
        data = prepare_data(home.quickstart / "data")
        step(2, f"Training: the digits CNN as a {args.procs}-process DDP job")
        job = train(client, data, args.epochs, args.procs, fresh=args.clean)
        step(3, "Evaluation job on the test split")
        version = register(client, job.name)
        ref = f"{version.name}:{version.version}"
        evaluation = evaluate(client, ref, data["test"])
        console.print(evaluation_table([evaluation]))
        if evaluation.confusion_matrix:
            console.print(matrix_table(evaluation))
        accuracy = evaluation.metrics.get("accuracy", 0.0)
        if accuracy < MIN_ACCURACY:
            raise SystemExit(f"Test accuracy {accuracy:.4f} is under {MIN_ACCURACY}.")
        step(4, "Registry and endpoint")
        client.models.set_alias(MODEL, "production", version.version)
        console.print(
            f"  registered {ref} ({version.format}, lineage: job {job.name}); "
            f"{MODEL}@production -> {ref}"
        )
        endpoint = deploy(client, ref)
        console.print(
            f"  endpoint {ENDPOINT!r} is {endpoint.endpoint.status}: {endpoint.endpoint.url} "
            "(batches up to 64 requests, waiting at most 5 ms)"
        )
        step(5, "Predictions from the endpoint")
        predict(endpoint, data["test"])
    except NaiadError as exc:
        raise SystemExit(f"Error: {exc.message}") from None
    step(6, "Where to look next")
    token = home.token_file.read_text().strip() if home.token_file.exists() else ""
    sample = write_sample(data["test"], home.quickstart / "sample.json")
    console.print(f"  Console:  {url}/?token={token}")
    console.print(f"  API docs: {url}/api/v1/docs")
    for command in (
        f"naiad jobs show {job.name}",
        f"naiad runs show {job.run_id}",
        f"naiad models show {MODEL} --matrix",
        f"naiad endpoints show {ENDPOINT} --watch",
        f"naiad endpoints invoke {ENDPOINT} --file {sample}",
        f"naiad models quantize {ref}",
        "naiad server status    # or `naiad server stop`: the server runs in the background",
    ):
        console.print(f"  .venv/bin/{command}")
    console.print(f"[bold green]Done[/] in {time.monotonic() - started:.0f} s.")


if __name__ == "__main__":
    main()
