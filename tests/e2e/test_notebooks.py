"""Managed notebook servers on the real server: a real JupyterLab reached only through
Naiad's URL (HTTP and the kernel's WebSocket), a cell that logs a run tagged with the
notebook, stop and start keeping the files, a server SIGKILL that leaves the notebook
and its kernel running and re-attached, and the refusals."""

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

import naiad
from naiad.core.errors import Conflict, InvalidInput, NotFound
from naiad.testing import jupyter as jupyter_kernel
from naiad.testing.jupyter import delete_all_notebooks
from naiad.testing.live import LiveServer

JOBS = Path(__file__).parent / "jobs" / "notebook"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    # pip offline: a notebook's requirements install from what is already there
    offline = {"PIP_NO_INDEX": "1", "PIP_CONFIG_FILE": "/dev/null"}
    live = LiveServer(home=tmp_path_factory.mktemp("naiad") / "home", env=offline)
    live.start()
    try:
        yield live
    finally:
        client = naiad.Client(url=live.url, token=live.token)
        delete_all_notebooks(client)  # their JupyterLabs outlive the server
        live.stop()


def client_of(server: LiveServer) -> naiad.Client:
    return naiad.Client(url=server.url, token=server.token)


def jupyter(server: LiveServer, name: str, method: str, path: str, **kw: Any) -> httpx.Response:
    """A call to the notebook's JupyterLab through Naiad's proxy, with Naiad's token."""
    return httpx.request(
        method,
        f"{server.url}/notebooks/{name}/{path}",
        headers={"authorization": f"Bearer {server.token}"},
        timeout=30,
        **kw,
    )


def execute(server: LiveServer, name: str, kernel: str, code: str) -> str:
    """Run ``code`` in the kernel over its WebSocket through the proxy; its printed text."""
    session = uuid.uuid4().hex
    with connect(
        f"{server.url.replace('http://', 'ws://')}/notebooks/{name}/api/kernels/{kernel}"
        f"/channels?session_id={session}",
        additional_headers={"authorization": f"Bearer {server.token}"},
        open_timeout=30,
    ) as ws:
        return jupyter_kernel.execute(ws, session, code)


def test_a_notebook_through_the_proxy_logs_a_run_and_keeps_its_files(
    server: LiveServer, tmp_path: Path
) -> None:
    client = client_of(server)
    source = tmp_path / "src"
    source.mkdir()
    (source / "hello.txt").write_text("from the source dir\n")
    notebook = client.notebooks.create("explore", source_dir=source, wait=True, timeout=180)
    assert notebook.status == "InService", notebook.status_reason
    assert notebook.url == "/notebooks/explore/lab"

    page = jupyter(server, "explore", "GET", "lab")
    assert page.status_code == 200 and "JupyterLab" in page.text
    listed = jupyter(server, "explore", "GET", "api/contents").json()
    assert [item["name"] for item in listed["content"]] == ["hello.txt"]
    saved = jupyter(
        server,
        "explore",
        "PUT",
        "api/contents/made.txt",
        json={"type": "file", "format": "text", "content": "written in the notebook"},
    )
    assert saved.status_code in (200, 201), saved.text

    kernel = jupyter(server, "explore", "POST", "api/kernels", json={"name": "python3"}).json()
    printed = execute(
        server,
        "explore",
        kernel["id"],
        "import naiad\n"
        "with naiad.start_run(experiment='from-notebook') as run:\n"
        "    run.log_metric('answer', 42.0)\n"
        "print('run', run.id)",
    )
    run_id = printed.split("run ", 1)[1].strip()
    run = client.runs.get(run_id)
    assert run.metrics["answer"].value == 42.0
    assert run.tags["naiad.source.notebook"] == "explore"  # where the run came from

    stopped = client.notebooks.stop("explore", wait=True)
    assert stopped.status == "Stopped"
    refused = jupyter(server, "explore", "GET", "lab")
    assert refused.status_code == 503 and "naiad notebooks start explore" in refused.text
    started = client.notebooks.start("explore", wait=True, timeout=180)
    assert started.status == "InService"
    listed = jupyter(server, "explore", "GET", "api/contents").json()
    assert {item["name"] for item in listed["content"]} == {"hello.txt", "made.txt"}


def test_a_notebook_file_run_as_a_job(server: LiveServer) -> None:
    client = client_of(server)
    client.notebooks.create("runner", wait=True, timeout=180)
    content = json.loads((JOBS / "score.ipynb").read_text())
    saved = jupyter(
        server,
        "runner",
        "PUT",
        "api/contents/score.ipynb",
        json={"type": "notebook", "format": "json", "content": content},
    )
    assert saved.status_code in (200, 201), saved.text
    job = client.notebooks.run_as_job("runner", "score.ipynb", {"lr": 0.2})
    ended = job.wait(timeout=180)
    assert ended.status == "Completed", ended.status_reason
    run = client.runs.get(ended.run_id)
    assert run.metrics["score"].value == 0.4 and run.params["lr"] == 0.2
    assert run.tags["naiad.source.notebook"] == "runner"
    with pytest.raises(InvalidInput, match=r"has no file 'nope\.ipynb'"):
        client.notebooks.run_as_job("runner", "nope.ipynb")


def test_an_idle_notebook_stops_and_keeps_its_files(server: LiveServer) -> None:
    client = client_of(server)
    client.notebooks.create("sleepy", idle_timeout_s=10, wait=True, timeout=180)
    (server.home / "notebooks" / "sleepy" / "files" / "kept.txt").write_text("still here")
    deadline = time.monotonic() + 90
    while (notebook := client.notebooks.get("sleepy")).status != "Stopped":
        assert time.monotonic() < deadline, notebook
        time.sleep(1)
    assert "without activity" in (notebook.status_reason or "")
    assert (server.home / "notebooks" / "sleepy" / "files" / "kept.txt").read_text() == "still here"


def test_a_dead_jupyterlab_is_started_again(server: LiveServer) -> None:
    client = client_of(server)
    client.notebooks.create("phoenix", wait=True, timeout=180)
    record = server.home / "notebooks" / "phoenix" / "notebook.json"
    first = json.loads(record.read_text())["pid"]
    os.killpg(first, signal.SIGKILL)
    deadline = time.monotonic() + 120
    while True:
        notebook = client.notebooks.get("phoenix")
        pid = json.loads(record.read_text())["pid"]
        if notebook.status == "InService" and pid != first:
            break
        assert time.monotonic() < deadline, notebook
        time.sleep(0.5)
    assert notebook.restarts == 1
    assert jupyter(server, "phoenix", "GET", "api/contents").status_code == 200


def test_requirements_give_the_kernels_an_environment_of_their_own(server: LiveServer) -> None:
    client = client_of(server)
    # numpy: already the server's, so pip installs nothing and needs no index
    client.notebooks.create("with-reqs", requirements="numpy\n", wait=True, timeout=240)
    kernel = jupyter(server, "with-reqs", "POST", "api/kernels", json={"name": "python3"}).json()
    printed = execute(server, "with-reqs", kernel["id"], "import sys, numpy\nprint(sys.prefix)")
    assert str(server.home / "envs") in printed  # the cached env, layered over the server's
    files = jupyter(server, "with-reqs", "GET", "api/contents").json()["content"]
    assert [f["name"] for f in files] == ["requirements.txt"]


def test_server_sigkill_leaves_the_notebook_and_its_kernel_running(server: LiveServer) -> None:
    client = client_of(server)
    client.notebooks.create("survivor", wait=True, timeout=180)
    kernel = jupyter(server, "survivor", "POST", "api/kernels", json={"name": "python3"}).json()
    assert execute(server, "survivor", kernel["id"], "x = 7\nprint(x)").strip() == "7"
    record = json.loads((server.home / "notebooks" / "survivor" / "notebook.json").read_text())

    server.kill()
    server.start()
    notebook = client_of(server).notebooks.wait("survivor", timeout=60)
    assert notebook.status == "InService"
    again = json.loads((server.home / "notebooks" / "survivor" / "notebook.json").read_text())
    assert again["pid"] == record["pid"]  # the same JupyterLab, re-attached
    kernels = [k["id"] for k in jupyter(server, "survivor", "GET", "api/kernels").json()]
    assert kernel["id"] in kernels
    assert execute(server, "survivor", kernel["id"], "print(x * 6)").strip() == "42"


def test_refusals(server: LiveServer) -> None:
    client = client_of(server)
    anonymous = httpx.get(f"{server.url}/notebooks/explore/lab", headers={"accept": "text/html"})
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/"
    api = httpx.get(f"{server.url}/notebooks/explore/api/contents")
    assert api.status_code == 401
    from websockets.exceptions import InvalidStatus

    events = f"{server.url.replace('http', 'ws')}/notebooks/explore/api/events/subscribe"
    with pytest.raises(InvalidStatus) as refused_ws:
        connect(events, open_timeout=10).close()
    assert refused_ws.value.response.status_code in (401, 403)  # refused before upgrading
    missing = jupyter(server, "nobody", "GET", "lab")
    assert missing.status_code == 404 and "naiad notebooks ls" in missing.text
    with pytest.raises(InvalidInput, match="not valid"):
        client.notebooks.create("bad name!")
    client.notebooks.create("twice")
    with pytest.raises(Conflict, match="exists"):
        client.notebooks.create("twice")
    client.notebooks.delete("twice", wait=True, timeout=120)
    with pytest.raises(NotFound):
        client.notebooks.get("twice")
    assert not (server.home / "notebooks" / "twice").exists()


def test_cli(server: LiveServer) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "naiad.cli.main", "notebooks", *args],
            capture_output=True,
            text=True,
            timeout=240,
            env=server.environ(),
        )

    made = cli("create", "from-cli", "--wait")
    assert made.returncode == 0, made.stdout + made.stderr
    assert "/notebooks/from-cli/lab" in made.stdout
    listed = cli("ls")
    assert "from-cli" in listed.stdout and "InService" in listed.stdout
    assert cli("stop", "from-cli", "--wait").returncode == 0
    assert "Stopped" in cli("show", "from-cli").stdout
    gone = cli("delete", "from-cli", "--wait")
    assert gone.returncode == 0, gone.stderr
