"""The SageMaker-compatible API through boto3 against Naiad's own SDK, on one live server.

A live ``naiad server`` (a fresh home, warm start on, as a user starts it) is driven the
way a SageMaker user drives it, with boto3 alone, and the same work goes through Naiad's
SDK in the same session; the two alternate, so neighbours in time share the machine's load.

1. Training. Script mode: a ``sourcedir.tar.gz`` put with boto3's ``s3`` client into a
   bucket of Naiad's own S3 API, a small CSV channel, a script that prints a
   ``train_loss=`` line at once (a MetricDefinition matches it) and a few more.
   ``create_training_job``, then ``DescribeTrainingJob`` every 20 ms: the first answer
   InProgress, the first with SecondaryStatus Training, the first whose
   FinalMetricDataList holds the metric, Completed. Baseline: the same script and channel
   through ``client.training_jobs.create`` (which packs and uploads the source itself),
   polled every 20 ms: Running, the first metric on its run, Completed. Both clocks start
   before the code is shipped. Each job waits for the server's warm standby first.
2. Endpoints. ``create_model`` from a model.tar.gz in a bucket (TorchScript ``model.pt``
   + ``code/inference.py``), ``create_endpoint_config``, then ``create_endpoint`` to the
   first DescribeEndpoint InService, polled every 20 ms; baseline:
   ``client.endpoints.deploy`` of the version CreateModel registered, to InService.
3. Invocations. Threads at concurrency 8 for a fixed window: ``sagemaker-runtime``
   ``invoke_endpoint`` (a boto3 client per thread, every request signed), the same body
   POSTed with the Bearer token to ``/endpoints/NAME/invocations`` over httpx (a client
   per thread), and the replica's own port the same way. Then ``bench/loadgen.py``'s cheap
   asyncio client replays one signed InvokeEndpoint and sends the Bearer request, so the
   server's share of the protocol shows without boto3's.
4. One call. Where a call's time goes: boto3's own work (validation, serialization, SigV4
   signing, parsing; the network answered by a stub), the server's answer to the same
   signed request replayed over httpx, and Naiad's SDK and bare REST call beside them.

    python bench/sagemaker.py               # about 3 minutes on 2 cores
    python bench/sagemaker.py --quick       # one round of each: a smoke test
"""

import argparse
import io
import json
import math
import os
import statistics
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import loadgen
import psutil
from _common import Row, Sections, machine, say, write_json

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results" / "sagemaker.json"
ROLE = "arn:aws:iam::111122223333:role/SageMakerRole"
ECR = "763104351884.dkr.ecr.us-east-1.amazonaws.com"
BUCKET = "bench"
METRIC, REGEX = "train:loss", r"train_loss=([0-9.]+)"
POLL_S = 0.02
TIMEOUT_S = 180.0
MODEL = "Doubler"  # the SageMaker model; Naiad registers it as "doubler"
BODY = b'{"x": [1.0, 2.0, 3.0, 4.0]}'
JSON = "application/json"

TRAIN = """\
import argparse, os, time
parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=4)
parser.add_argument("--pause", type=float, default=0.2)
args, _ = parser.parse_known_args()
rows = open(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "train.csv")).read().split()
for epoch in range(args.epochs):
    if epoch:
        time.sleep(args.pause)
    print(f"epoch {epoch} rows {len(rows)} train_loss={1 / (epoch + 1):.4f}", flush=True)
with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.txt"), "w") as f:
    f.write("trained")
"""

HANDLER = """\
import json, os
import torch

def model_fn(model_dir):
    return torch.jit.load(os.path.join(model_dir, "model.pt"))

def input_fn(body, content_type):
    return torch.tensor(json.loads(body)["x"], dtype=torch.float32)

def output_fn(prediction, accept):
    return json.dumps({"y": prediction.tolist()}), "application/json"
"""


@dataclass(frozen=True)
class Sizes:
    rounds: int = 3  # training jobs and endpoints each way, alternating
    epochs: int = 4  # metric lines the script prints, the first at once
    pause_s: float = 0.2  # between them
    concurrency: int = 8
    window_s: float = 5.0
    warmup_s: float = 1.0
    load_rounds: int = 2  # every invocation line, in turn
    calls: int = 100  # one-call figures: medians of this many


QUICK = Sizes(rounds=1, window_s=2.0, load_rounds=1, calls=20)


def tar_gz(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def model_archive() -> bytes:
    """What SageMaker's PyTorch inference container takes: a TorchScript model that
    doubles its input, with its handler in code/."""
    import torch

    class Double(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 2.0

    model = io.BytesIO()
    torch.jit.save(torch.jit.script(Double()), model)
    return tar_gz({"model.pt": model.getvalue(), "code/inference.py": HANDLER.encode()})


@dataclass
class Bench:
    server: Any  # naiad.testing.live.LiveServer
    client: Any  # naiad.Client
    boto: dict[str, Any]  # boto3.client(service, **boto): this server, the admin's pair
    source: Path  # the script's directory, for the SDK
    data: Path  # the channel's directory, for the SDK
    sizes: Sizes

    def aws(self, service: str, **kwargs: Any) -> Any:
        import boto3

        return boto3.session.Session().client(service, **self.boto, **kwargs)

    @property
    def bearer(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.server.token}"}


def wait_warm(client: Any) -> bool:
    """Wait for the warm standby, as a job submitted to an idle server finds it."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if client.health().get("warm_start"):
            return True
        time.sleep(0.2)
    return False


def since(t0: float) -> float:
    return time.perf_counter() - t0


# -- 1. training ----------------------------------------------------------------------


def channel(uri: str) -> dict[str, Any]:
    source = {"S3DataType": "S3Prefix", "S3Uri": uri, "S3DataDistributionType": "FullyReplicated"}
    return {"ChannelName": "train", "DataSource": {"S3DataSource": source}}


def server_marks(b: Bench, name: str, wall0: float) -> dict[str, float]:
    """When the server recorded the job's transitions, from the same wall clock."""
    job = b.client.training_jobs.get(name).job
    marks = {t.status: t.at.timestamp() - wall0 for t in job.transitions}
    nan = float("nan")
    return {f"server_{k.lower()}": marks.get(k, nan) for k in ("Starting", "Running", "Completed")}


def sagemaker_job(b: Bench, sm: Any, s3: Any, name: str) -> dict[str, float]:
    sizes = b.sizes
    key = f"{name}/source/sourcedir.tar.gz"  # where the SageMaker Python SDK puts it
    hyperparameters = {
        "epochs": str(sizes.epochs),
        "pause": str(sizes.pause_s),
        "sagemaker_program": json.dumps("train.py"),
        "sagemaker_submit_directory": json.dumps(f"s3://{BUCKET}/{key}"),
        "sagemaker_region": json.dumps("us-east-1"),
    }
    algorithm = {
        "TrainingImage": f"{ECR}/pytorch-training:2.5-cpu-py311",
        "TrainingInputMode": "File",
        "MetricDefinitions": [{"Name": METRIC, "Regex": REGEX}],
    }
    warm = wait_warm(b.client)
    wall0, t0 = time.time(), time.perf_counter()
    s3.put_object(Bucket=BUCKET, Key=key, Body=tar_gz({"train.py": TRAIN.encode()}))
    out = {"code_shipped": since(t0)}
    sm.create_training_job(
        TrainingJobName=name,
        RoleArn=ROLE,
        AlgorithmSpecification=algorithm,
        HyperParameters=hyperparameters,
        InputDataConfig=[channel(f"s3://{BUCKET}/data/train")],
        OutputDataConfig={"S3OutputPath": f"s3://{BUCKET}/output"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        StoppingCondition={"MaxRuntimeInSeconds": 600},
    )
    out["create_returned"] = since(t0)
    while True:
        job = sm.describe_training_job(TrainingJobName=name)
        now = since(t0)
        status = job["TrainingJobStatus"]
        if status in ("InProgress", "Completed"):
            out.setdefault("in_progress", now)
        if job["SecondaryStatus"] in ("Training", "Uploading", "Completed"):
            out.setdefault("running", now)
        if any(m["MetricName"] == METRIC for m in job.get("FinalMetricDataList", [])):
            out.setdefault("first_metric", now)
        if status in ("Completed", "Failed", "Stopped"):
            if status != "Completed":
                raise RuntimeError(f"training job {name} {status}: {job.get('FailureReason')}")
            out["completed"] = now
            break
        if now > TIMEOUT_S:
            raise TimeoutError(f"training job {name} still {status} after {TIMEOUT_S} s")
        time.sleep(POLL_S)
    return out | server_marks(b, name.lower(), wall0) | {"warm": float(warm)}


def sdk_job(b: Bench, name: str) -> dict[str, float]:
    from naiad.core.status import Status

    warm = wait_warm(b.client)
    wall0, t0 = time.time(), time.perf_counter()
    handle = b.client.training_jobs.create(
        name=name,
        entrypoint="train.py",
        source_dir=b.source,
        experiment="bench-sdk",
        hyperparameters={"epochs": b.sizes.epochs, "pause": b.sizes.pause_s},
        inputs={"train": str(b.data)},
        metric_definitions={METRIC: REGEX},
    )
    out = {"create_returned": since(t0)}
    run_id = handle.job.run_id
    while True:
        job = handle.refresh()
        now = since(t0)
        if job.status in ("Running", "Completed"):
            out.setdefault("running", now)
        if "first_metric" not in out and METRIC in b.client.runs.get(run_id).metrics:
            out["first_metric"] = since(t0)
        if Status(job.status).terminal:
            if job.status != "Completed":
                raise RuntimeError(f"job {name} {job.status}: {job.status_reason}")
            out["completed"] = now
            out.setdefault("first_metric", now)
            break
        if now > TIMEOUT_S:
            raise TimeoutError(f"job {name} still {job.status} after {TIMEOUT_S} s")
        time.sleep(POLL_S)
    return out | server_marks(b, name, wall0) | {"warm": float(warm)}


def training(b: Bench) -> dict[str, Any]:
    sm, s3 = b.aws("sagemaker"), b.aws("s3")
    out: dict[str, Any] = {"sagemaker": [], "sdk": []}
    # The first call of each API after the server's start pays one-time costs (the server
    # loads botocore's SageMaker model): recorded, then out of the rounds' way.
    t0 = time.perf_counter()
    sm.list_training_jobs()
    out["first_sagemaker_call_s"] = since(t0)
    t0 = time.perf_counter()
    b.client.training_jobs.list()
    out["first_sdk_call_s"] = since(t0)
    for i in range(b.sizes.rounds):
        runs = [
            ("sagemaker", lambda i=i: sagemaker_job(b, sm, s3, f"Bench-SM-{i}")),
            ("sdk", lambda i=i: sdk_job(b, f"bench-sdk-{i}")),
        ]
        for kind, run in runs if i % 2 == 0 else runs[::-1]:
            out[kind].append(run())
            r = out[kind][-1]
            say(
                f"  round {i + 1} {kind}: running {r['running']:.2f} s, first metric "
                f"{r['first_metric']:.2f} s, completed {r['completed']:.2f} s"
            )
    wait_warm(b.client)  # the refilled standby's imports are over before what follows
    return out


# -- 2. endpoints ---------------------------------------------------------------------


def setup_model(b: Bench, sm: Any, s3: Any) -> dict[str, Any]:
    """The archive in a bucket, CreateModel (registers a Naiad version), the config."""
    archive = model_archive()
    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    s3.put_object(Bucket=BUCKET, Key="model/model.tar.gz", Body=archive)
    out["put_model_s"] = since(t0)
    t0 = time.perf_counter()
    sm.create_model(
        ModelName=MODEL,
        ExecutionRoleArn=ROLE,
        PrimaryContainer={
            "Image": f"{ECR}/pytorch-inference:2.5-cpu-py311",
            "ModelDataUrl": f"s3://{BUCKET}/model/model.tar.gz",
            "Environment": {"SAGEMAKER_PROGRAM": "inference.py"},
        },
    )
    out["create_model_s"] = since(t0)
    t0 = time.perf_counter()
    sm.create_endpoint_config(
        EndpointConfigName=MODEL,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": MODEL,
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
                "InitialVariantWeight": 1.0,
            }
        ],
    )
    out["create_config_s"] = since(t0)
    versions = b.client.models.versions(MODEL.lower())
    out["version"] = f"{MODEL.lower()}:{versions[-1].version}"
    return out


def endpoint_marks(b: Bench, name: str, wall0: float) -> dict[str, Any]:
    """The server's InService time, and every transition with its reason (for outliers)."""
    endpoint = b.client.endpoints.get(name).endpoint
    served = [t.at.timestamp() - wall0 for t in endpoint.transitions if t.status == "InService"]
    return {
        "server_in_service": served[0] if served else float("nan"),
        "transitions": [
            (t.status, round(t.at.timestamp() - wall0, 3), t.reason) for t in endpoint.transitions
        ],
        "restarts": sum(r.restarts for v in endpoint.variants for r in v.live),
    }


def sagemaker_endpoint(b: Bench, sm: Any, name: str) -> dict[str, Any]:
    wall0, t0 = time.time(), time.perf_counter()
    sm.create_endpoint(EndpointName=name, EndpointConfigName=MODEL)
    out = {"create_returned": since(t0)}
    while True:
        endpoint = sm.describe_endpoint(EndpointName=name)
        now = since(t0)
        if endpoint["EndpointStatus"] == "InService":
            out["in_service"] = now
            break
        if endpoint["EndpointStatus"] == "Failed":
            raise RuntimeError(f"endpoint {name} failed: {endpoint.get('FailureReason')}")
        if now > TIMEOUT_S:
            raise TimeoutError(f"endpoint {name} still {endpoint['EndpointStatus']}")
        time.sleep(POLL_S)
    return out | endpoint_marks(b, name.lower(), wall0)


def sdk_endpoint(b: Bench, version: str, name: str) -> dict[str, Any]:
    wall0, t0 = time.time(), time.perf_counter()
    handle = b.client.endpoints.deploy(name, model=version)
    out = {"create_returned": since(t0)}
    while True:  # what handle.wait() checks, every 20 ms
        endpoint = handle.refresh()
        now = since(t0)
        if endpoint.status == "InService" and not endpoint.pending_variants:
            out["in_service"] = now
            break
        if endpoint.status == "Failed":
            raise RuntimeError(f"endpoint {name} failed: {endpoint.status_reason}")
        if now > TIMEOUT_S:
            raise TimeoutError(f"endpoint {name} still {endpoint.status}")
        time.sleep(POLL_S)
    return out | endpoint_marks(b, name, wall0)


def remove_endpoint(b: Bench, name: str, sm: Any | None = None) -> None:
    """Delete (through the API that made it) and wait until its replicas are gone."""
    from naiad.testing.endpoints import kill_replicas, replica_pids

    if sm is not None:
        sm.delete_endpoint(EndpointName=name)
    else:
        b.client.endpoints.delete(name)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if not any(e.name == name.lower() for e in b.client.endpoints.list()):
            break
        time.sleep(0.1)
    while replica_pids(b.server.home) and time.monotonic() < deadline:
        time.sleep(0.1)
    kill_replicas(b.server.home)  # none by now, unless a replica ignored its stop


def endpoints(b: Bench) -> dict[str, Any]:
    sm, s3 = b.aws("sagemaker"), b.aws("s3")
    out: dict[str, Any] = {"setup": setup_model(b, sm, s3), "sagemaker": [], "sdk": []}
    version = out["setup"]["version"]
    for i in range(b.sizes.rounds):
        runs = [
            ("sagemaker", f"Bench-SM-{i}", lambda n: sagemaker_endpoint(b, sm, n), sm),
            ("sdk", f"bench-sdk-{i}", lambda n: sdk_endpoint(b, version, n), None),
        ]
        for kind, name, run, api in runs if i % 2 == 0 else runs[::-1]:
            out[kind].append(run(name))
            say(f"  round {i + 1} {kind}: InService {out[kind][-1]['in_service']:.2f} s")
            remove_endpoint(b, name, api)
    return out


# -- 3. invocations -------------------------------------------------------------------


def cpu_s(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def thread_load(
    b: Bench, make: Callable[[], Callable[[], bool]], pids: dict[str, int]
) -> dict[str, float]:
    """``concurrency`` threads, each with a client of its own from ``make()``, sending back
    to back; requests that end inside the window count. The CPU of this process and of
    ``pids`` over the window, per request."""
    sizes = b.sizes
    n = sizes.concurrency
    latencies: list[list[float]] = [[] for _ in range(n)]
    errors = [0] * n
    problems: list[str] = []
    window: dict[str, float] = {}

    def open_window() -> None:  # run once, when every thread has its client
        window["start"] = time.perf_counter() + sizes.warmup_s
        window["end"] = window["start"] + sizes.window_s

    ready = threading.Barrier(n + 1, action=open_window)

    def worker(k: int) -> None:
        try:
            call = make()
            call()  # connection open, first-call costs paid before the clock
        except Exception as exc:
            problems.append(f"{type(exc).__name__}: {exc}")
            ready.abort()
            return
        ready.wait()
        start, end, mine = window["start"], window["end"], latencies[k]
        while (sent := time.perf_counter()) < end:
            try:
                ok = call()
            except Exception as exc:
                ok = False
                if not problems:
                    problems.append(f"{type(exc).__name__}: {str(exc)[:300]}")
            done = time.perf_counter()
            if start <= done <= end:
                if ok:
                    mine.append(done - sent)
                else:
                    errors[k] += 1

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(n)]
    for thread in threads:
        thread.start()
    try:
        ready.wait(timeout=60)
    except threading.BrokenBarrierError:
        raise RuntimeError(f"a load thread could not start: {problems}") from None
    time.sleep(max(0.0, window["start"] - time.perf_counter()))
    cpu0 = {"client": time.process_time()} | {k: cpu_s(p) for k, p in pids.items()}
    time.sleep(max(0.0, window["end"] - time.perf_counter()))
    cpu1 = {"client": time.process_time()} | {k: cpu_s(p) for k, p in pids.items()}
    for thread in threads:
        thread.join(timeout=60)
    ordered = sorted(x for mine in latencies for x in mine)
    done = len(ordered)
    out = {
        "rps": done / sizes.window_s,
        "p50_ms": loadgen.percentile(ordered, 50) * 1000,
        "p99_ms": loadgen.percentile(ordered, 99) * 1000,
        "errors": float(sum(errors)),
    }
    for k in cpu0:
        out[f"{k}_cpu_us"] = (cpu1[k] - cpu0[k]) / max(done, 1) * 1e6
    if problems:
        say(f"    errors: {problems[0]}")
    return out


def capture(client: Any, call: Callable[[], Any]) -> Any:
    """The request botocore sends for ``call()``, signed (it is sent as usual too)."""
    seen: list[Any] = []

    def grab(request: Any, **_: Any) -> None:
        seen.append(request)

    client.meta.events.register("before-send", grab, unique_id="bench-capture")
    try:
        call()
    finally:
        client.meta.events.unregister("before-send", unique_id="bench-capture")
    return seen[-1]


def headers_of(request: Any) -> dict[str, str]:
    out = {}
    for name, value in request.headers.items():
        out[name] = value.decode() if isinstance(value, bytes) else str(value)
    return out


def body_of(request: Any) -> bytes:
    body = request.body or b""
    return body.encode() if isinstance(body, str) else bytes(body)


def invocations(b: Bench) -> dict[str, Any]:
    """Serve one endpoint made through the SageMaker API and load it three ways (threads),
    then the signed and the Bearer request from the asyncio load generator."""
    from naiad.testing.endpoints import replica_pids

    sm = b.aws("sagemaker")
    name = "Bench-Load"
    sagemaker_endpoint(b, sm, name)
    replica = b.client.endpoints.get(name.lower()).refresh().variants[0].live[0]
    pids = {"server": b.server.process.pid, "replica": replica_pids(b.server.home)[0]}
    front = f"{b.server.url}/endpoints/{name.lower()}/invocations"
    port = f"http://127.0.0.1:{replica.port}/invocations"
    clients: list[Any] = []

    def boto3_invoke() -> Callable[[], bool]:
        runtime = b.aws("sagemaker-runtime")

        def call() -> bool:
            reply = runtime.invoke_endpoint(
                EndpointName=name, ContentType=JSON, Accept=JSON, Body=BODY
            )
            return json.loads(reply["Body"].read())["y"] == [2.0, 4.0, 6.0, 8.0]

        return call

    def httpx_post(url: str, headers: dict[str, str]) -> Callable[[], Callable[[], bool]]:
        def make() -> Callable[[], bool]:
            client = httpx.Client(headers={**headers, "content-type": JSON}, timeout=30)
            clients.append(client)
            return lambda: client.post(url, content=BODY).status_code == 200

        return make

    runtime = b.aws("sagemaker-runtime")
    signed = capture(
        runtime,
        lambda: runtime.invoke_endpoint(
            EndpointName=name, ContentType=JSON, Accept=JSON, Body=BODY
        ),
    )
    replayed = headers_of(signed)
    content_type = replayed.pop("Content-Type", JSON)
    for drop in ("Host", "Content-Length"):
        replayed.pop(drop, None)
    lines: list[tuple[str, Callable[[], dict[str, float]]]] = [
        ("boto3", lambda: thread_load(b, boto3_invoke, pids)),
        ("front_door", lambda: thread_load(b, httpx_post(front, b.bearer), pids)),
        ("replica", lambda: thread_load(b, httpx_post(port, {}), pids)),
        ("loadgen_signed", lambda: asyncio_load(b, signed.url, content_type, replayed, pids)),
        ("loadgen_bearer", lambda: asyncio_load(b, front, JSON, b.bearer, pids)),
    ]
    out: dict[str, Any] = {key: [] for key, _ in lines}
    try:
        for i in range(b.sizes.load_rounds):
            for key, line in lines:
                out[key].append(line())
                r = out[key][-1]
                say(
                    f"  round {i + 1} {key}: {r['rps']:,.0f} req/s, p50 {r['p50_ms']:.2f} ms, "
                    f"p99 {r['p99_ms']:.2f} ms, errors {r['errors']:.0f}"
                )
                time.sleep(0.5)
    finally:
        for client in clients:
            client.close()
    out["endpoint"] = name
    return out


def asyncio_load(
    b: Bench, url: str, content_type: str, headers: dict[str, str], pids: dict[str, int]
) -> dict[str, float]:
    sizes = b.sizes
    server = pids["server"]
    result = loadgen.run(
        url,
        [BODY],
        sizes.concurrency,
        sizes.window_s,
        sizes.warmup_s,
        content_type=content_type,
        headers=headers,
        server_cpu=lambda: cpu_s(server),
    )
    done = max(result.requests, 1)
    return {
        "rps": result.rps,
        "p50_ms": result.p50_ms,
        "p99_ms": result.p99_ms,
        "errors": float(result.errors + result.failures),
        "client_cpu_us": result.client_cpu * sizes.window_s / done * 1e6,
        "server_cpu_us": result.server_cpu * sizes.window_s / done * 1e6,
    }


# -- 4. one call ----------------------------------------------------------------------


class _Raw(io.BytesIO):
    """An answer's body as urllib3 would hand it to botocore."""

    def stream(self, **_: Any) -> Any:
        yield self.getvalue()


def stubbed(b: Bench, service: str, answer: httpx.Response, **config: Any) -> Any:
    """A boto3 client whose requests are validated, serialized, signed and parsed as
    usual, but answered by ``answer`` without a network hop."""
    from botocore.awsrequest import AWSResponse, HeadersDict
    from botocore.config import Config

    client = b.aws(service, config=Config(**config)) if config else b.aws(service)

    def respond(request: Any, **_: Any) -> Any:
        headers = HeadersDict(dict(answer.headers))
        return AWSResponse(request.url, answer.status_code, headers, _Raw(answer.content))

    client.meta.events.register("before-send", respond)
    return client


def median_ms(call: Callable[[], Any], n: int) -> float:
    for _ in range(3):
        call()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def boto3_parts(
    b: Bench, service: str, answer: httpx.Response, call: Callable[[Any], Any], n: int
) -> dict[str, float]:
    """boto3's own milliseconds for ``call(client)``, and what validation and SigV4 add."""
    from botocore import UNSIGNED

    n *= 4  # no network: cheap, and the differences are small
    full = median_ms(lambda c=stubbed(b, service, answer): call(c), n)
    unvalidated = median_ms(
        lambda c=stubbed(b, service, answer, parameter_validation=False): call(c), n
    )
    unsigned = median_ms(
        lambda c=stubbed(b, service, answer, signature_version=UNSIGNED): call(c), n
    )
    return {"own": full, "validation": full - unvalidated, "signing": full - unsigned}


def replay(http: httpx.Client, request: Any) -> Callable[[], httpx.Response]:
    """Send botocore's signed ``request`` again, as it was (the signature stays valid for
    15 minutes): the server verifies it and answers as it would boto3."""
    url, body, headers = request.url, body_of(request), headers_of(request)
    return lambda: http.post(url, content=body, headers=headers)


def one_call(b: Bench, job: str, endpoint: str) -> dict[str, Any]:
    n = b.sizes.calls
    sm, runtime = b.aws("sagemaker"), b.aws("sagemaker-runtime")
    out: dict[str, Any] = {}

    def describe(client: Any) -> Any:
        return client.describe_training_job(TrainingJobName=job)

    def invoke(client: Any) -> bytes:
        reply = client.invoke_endpoint(
            EndpointName=endpoint, ContentType=JSON, Accept=JSON, Body=BODY
        )
        return reply["Body"].read()

    front = f"{b.server.url}/endpoints/{endpoint.lower()}/invocations"
    bearer = {**b.bearer, "content-type": JSON}
    rest: dict[str, Callable[[httpx.Client], Any]] = {
        "describe": lambda http: http.get(
            f"{b.server.url}/api/v1/jobs/{job.lower()}", headers=b.bearer
        ),
        "invoke": lambda http: http.post(front, content=BODY, headers=bearer),
    }
    sdk: dict[str, Callable[[], Any]] = {
        "describe": lambda: b.client.training_jobs.get(job.lower()),
        "invoke": lambda: b.client.endpoints.invoke(endpoint.lower(), BODY),
    }
    with httpx.Client(timeout=30) as http:
        for key, client, service, call in (
            ("describe", sm, "sagemaker", describe),
            ("invoke", runtime, "sagemaker-runtime", invoke),
        ):
            again = replay(http, capture(client, lambda c=client, f=call: f(c)))
            answer = again()
            if answer.status_code != 200:
                raise RuntimeError(f"the replayed {key} request got {answer.status_code}")
            out[key] = {
                "boto3": median_ms(lambda c=client, f=call: f(c), n),
                "replayed": median_ms(again, n),
                "sdk": median_ms(sdk[key], n),
                "rest": median_ms(lambda h=http, k=key: rest[k](h), n),
            } | boto3_parts(b, service, answer, call, n)
    return out


# -- the table ------------------------------------------------------------------------


def med(records: list[dict[str, float]], key: str) -> float:
    values = [r[key] for r in records if key in r and not math.isnan(r[key])]
    return statistics.median(values) if values else float("nan")


def over(value: float | None, baseline: float | None) -> float | None:
    """value / baseline, when both were measured."""
    if value is None or baseline is None or math.isnan(value) or math.isnan(baseline):
        return None
    return value / baseline if baseline else None


def training_rows(tr: dict[str, Any]) -> list[Row]:
    sm, sdk = tr["sagemaker"], tr["sdk"]
    for r in [*sm, *sdk]:
        r["job_s"] = r["server_completed"] - r["server_running"]
        r["seen_late_s"] = r["completed"] - r["server_completed"]
    n, warm = len(sm), sum(r["warm"] for r in [*sm, *sdk])

    def row(figure: str, key: str | None, base: str | None, note: str = "") -> Row:
        value = med(sm, key) if key else None
        return Row("Training", figure, "s", value, med(sdk, base) if base else None, False,
                   note=note)  # fmt: skip

    per_round = ", ".join(
        f"{a['completed']:.2f}/{c['completed']:.2f}" for a, c in zip(sm, sdk, strict=True)
    )
    return [
        Row("Training", "first call after the server's start: ListTrainingJobs vs jobs.list",
            "s", tr["first_sagemaker_call_s"], tr["first_sdk_call_s"], False,
            note="one-time costs, kept out of the rounds below"),
        row("sourcedir.tar.gz put in a bucket (S3 API)", "code_shipped", None,
            "the SDK packs and uploads inside create()"),
        row("create call returned", "create_returned", "create_returned",
            "boto3: after the S3 put; SDK: pack + PUT /sources + POST /jobs"),
        row("first DescribeTrainingJob InProgress", "in_progress", None,
            "InProgress from creation on (Naiad's Pending)"),
        row("SecondaryStatus Training vs SDK status Running", "running", "running"),
        row("first metric: FinalMetricDataList vs the run's metrics", "first_metric",
            "first_metric", "the MetricDefinition matched the script's first line"),
        row("Completed", "completed", "completed",
            f"median of {n} each, polled every 20 ms; per round (boto3/SDK) {per_round}; "
            f"{warm:.0f}/{2 * n} jobs found the warm standby"),
        row("server's Starting transition (the scheduler took the job)", "server_starting",
            "server_starting", "per round (boto3/SDK) " + ", ".join(
                f"{a['server_starting']:.3f}/{c['server_starting']:.3f}"
                for a, c in zip(sm, sdk, strict=True))),
        row("server's Running transition", "server_running", "server_running"),
        row("server's Completed transition", "server_completed", "server_completed"),
        row("the job itself: server's Running to Completed", "job_s", "job_s"),
        row("Completed seen by the poll after the server's transition", "seen_late_s",
            "seen_late_s"),
    ]  # fmt: skip


def endpoint_rows(ep: dict[str, Any]) -> list[Row]:
    sm, sdk, setup = ep["sagemaker"], ep["sdk"], ep["setup"]
    n = len(sm)
    return [
        Row("Endpoints", "model.tar.gz put in a bucket (S3 API)", "s", setup["put_model_s"],
            None, False),
        Row("Endpoints", "create_model (registers Naiad version " + setup["version"] + ")",
            "s", setup["create_model_s"], None, False),
        Row("Endpoints", "create_endpoint_config", "s", setup["create_config_s"], None, False),
        Row("Endpoints", "create_endpoint vs endpoints.deploy returned", "s",
            med(sm, "create_returned"), med(sdk, "create_returned"), False),
        Row("Endpoints", "first DescribeEndpoint InService vs SDK InService", "s",
            med(sm, "in_service"), med(sdk, "in_service"), False,
            note=f"median of {n} each, polled every 20 ms; per round "
            + ", ".join(f"{a['in_service']:.2f}/{c['in_service']:.2f}"
                        for a, c in zip(sm, sdk, strict=True))),
        Row("Endpoints", "server's InService transition", "s", med(sm, "server_in_service"),
            med(sdk, "server_in_service"), False),
    ]  # fmt: skip


def invocation_rows(inv: dict[str, Any], sizes: Sizes) -> list[Row]:
    m = {k: {f: med(v, f) for f in v[0]} for k, v in inv.items() if isinstance(v, list) and v}
    c = sizes.concurrency
    threads = f"threads, c={c}, {sizes.window_s:g} s windows, median of {sizes.load_rounds}"
    rows = []
    for a, base, label in (
        ("boto3", "front_door", "boto3 invoke_endpoint vs httpx to the front door"),
        ("boto3", "replica", "boto3 invoke_endpoint vs httpx to the replica's port"),
        ("front_door", "replica", "httpx to the front door vs httpx to the replica's port"),
        ("loadgen_signed", "loadgen_bearer", "loadgen: signed InvokeEndpoint vs Bearer"),
    ):
        note = threads if not a.startswith("loadgen") else f"asyncio, c={c}, one request replayed"
        rows += [
            Row("Invocations", label, "req/s", m[a]["rps"], m[base]["rps"], True, note=note),
            Row("Invocations", label, "p50 ms", m[a]["p50_ms"], m[base]["p50_ms"], False),
            Row("Invocations", label, "p99 ms", m[a]["p99_ms"], m[base]["p99_ms"], False),
        ]
    rows += [
        Row("Invocations", "client CPU per request: boto3 vs httpx (front door)", "us",
            m["boto3"]["client_cpu_us"], m["front_door"]["client_cpu_us"], False,
            note="this process, all threads"),
        Row("Invocations", "server CPU per request: InvokeEndpoint vs Bearer (threads)", "us",
            m["boto3"]["server_cpu_us"], m["front_door"]["server_cpu_us"], False,
            note="the naiad server process (gateway, SigV4, front door, proxy hop)"),
        Row("Invocations", "server CPU per request: signed vs Bearer (loadgen)", "us",
            m["loadgen_signed"]["server_cpu_us"], m["loadgen_bearer"]["server_cpu_us"], False),
        Row("Invocations", "replica CPU per request: via boto3 vs via the front door", "us",
            m["boto3"]["replica_cpu_us"], m["front_door"]["replica_cpu_us"], False),
    ]  # fmt: skip
    errors = sum(r["errors"] for k, v in inv.items() if isinstance(v, list) for r in v)
    rows.append(Row("Invocations", "non-2xx answers and failures, all lines", "count", errors,
                    None, False))  # fmt: skip
    return rows


def one_call_rows(calls: dict[str, Any], n: int) -> list[Row]:
    rows = []
    for key, name, sdk in (
        ("describe", "DescribeTrainingJob", "client.training_jobs.get"),
        ("invoke", "InvokeEndpoint", "client.endpoints.invoke"),
    ):
        d = calls[key]
        rows += [
            Row("One call", f"{name}: boto3 vs {sdk}", "ms", d["boto3"], d["sdk"], False,
                note=f"median of {n}, one thread, keep-alive"),
            Row("One call", f"{name}: the server's part: signed request replayed vs Naiad's "
                "REST call (httpx)", "ms", d["replayed"], d["rest"], False),
            Row("One call", f"{name}: boto3's own part (the network stubbed)", "ms", d["own"],
                None, False, note=f"the SDK's: its call minus the REST call, "
                f"{d['sdk'] - d['rest']:+.3f} ms (two medians apart: noise around zero)"),
            Row("One call", f"{name}: of boto3's part, parameter validation", "ms",
                d["validation"], None, False, note="against parameter_validation=False"),
            Row("One call", f"{name}: of boto3's part, SigV4 signing", "ms", d["signing"], None,
                False, note="against an UNSIGNED client"),
        ]  # fmt: skip
    return rows


def fmt(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def table(rows: list[Row]) -> str:
    head = ["section", "figure", "unit", "value", "baseline", "value / baseline", "note"]
    body = []
    for r in rows:
        ratio = over(r.naiad, r.baseline)
        body.append([r.section, r.figure, r.unit, fmt(r.naiad), fmt(r.baseline),
                     "-" if ratio is None else f"{ratio:.2f}", r.note])  # fmt: skip
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(head), rule, *(line(cells) for cells in body)])


def report(sections: Sections, rows: list[Row], json_path: Path | None, sizes: Sizes) -> None:
    """The table (value / baseline is a plain quotient: for seconds, > 1 means the
    SageMaker path took longer), the load averages, and the JSON record."""
    print(table(rows))
    print(f"\n1-minute load average: {', '.join(f'{k} {v:.2f}' for k, v in sections.load.items())}")
    if json_path is not None:
        import boto3
        import torch

        meta = machine(boto3=boto3.__version__, torch=torch.__version__) | {
            "sizes": asdict(sizes),
            "load": sections.load,
            "raw": sections.raw,
            "errors": sections.errors,
            "columns": "naiad: the value (the SageMaker path unless the figure says otherwise); "
            "baseline: the Naiad path; ratio: how many times better the value is",
            "value_over_baseline": {
                f"{r.section}: {r.figure} ({r.unit})": over(r.naiad, r.baseline) for r in rows
            },
        }
        write_json(json_path, rows, meta)
        say(f"wrote {json_path}")
    if sections.errors:
        sys.exit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round of each: a smoke test")
    parser.add_argument("--json", type=Path, default=RESULTS, help="default: %(default)s")
    args = parser.parse_args()
    sizes = QUICK if args.quick else Sizes()

    import naiad
    from naiad.testing.endpoints import kill_replicas
    from naiad.testing.live import LiveServer

    sections = Sections()
    raw, measure = sections.raw, sections.measure
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="naiad-bench-sagemaker-") as tmp:
        root = Path(tmp)
        source, data = root / "source", root / "data"
        source.mkdir()
        data.mkdir()
        (source / "train.py").write_text(TRAIN)
        (data / "train.csv").write_bytes(b"1,2\n3,4\n5,6\n")
        server = LiveServer(home=root / "home")  # `naiad server`, warm start on by default
        raw["server_start_s"] = server.start()
        try:
            client = naiad.Client(url=server.url, token=server.token)
            b = Bench(server, client, client.keys.boto3_kwargs(), source, data, sizes)
            s3 = b.aws("s3")
            s3.create_bucket(Bucket=BUCKET)
            s3.put_object(Bucket=BUCKET, Key="data/train/train.csv", Body=b"1,2\n3,4\n5,6\n")
            trained = measure("training", training, b)
            measure("endpoints", endpoints, b)
            served = measure("invocations", invocations, b)
            if trained and served:
                measure("one call", one_call, b, "Bench-SM-0", served["endpoint"])
        finally:
            server.stop()
            kill_replicas(server.home)
    raw["total_s"] = time.monotonic() - started
    say(f"done in {raw['total_s']:.0f} s")

    rows: list[Row] = []
    builders: list[tuple[str, Callable[[Any], list[Row]]]] = [
        ("training", training_rows),
        ("endpoints", endpoint_rows),
        ("invocations", lambda r: invocation_rows(r, sizes)),
        ("one call", lambda r: one_call_rows(r, sizes.calls)),
    ]
    for name, build in builders:
        if raw.get(name):
            rows += build(raw[name])
    for name, error in sections.errors.items():
        rows.append(Row(name, f"{name} FAILED", "", None, None, True, note=error))
    report(sections, rows, args.json, sizes)


if __name__ == "__main__":
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")  # no IMDS lookups by boto3
    main()
