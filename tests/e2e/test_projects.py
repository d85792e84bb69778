"""Projects: what a project holds (experiments and their runs, jobs, models) is readable
and writable only by those with a role in it; lists show only what the caller may see;
the role is read on every call, so taking it away works at once."""

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

import naiad
from naiad.core.errors import Conflict, Forbidden
from naiad.testing.live import LiveServer

PROBE = """
import os, httpx
token = os.path.join(os.environ["HOME_UNDER_TEST"], "admin_token")
print("admin_token", "readable" if os.path.exists(token) else "hidden")
head = {"authorization": "Bearer " + os.environ["NAIAD_TOKEN"]}
for run in os.environ["RUNS"].split(","):
    answer = httpx.get(os.environ["NAIAD_URL"] + "/api/v1/runs/" + run, headers=head)
    print("probe", run, answer.status_code)
"""
SCRIPT = """
import os, torch
from torch import nn
net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).eval()
torch.jit.script(net).save(os.path.join(os.environ["SM_MODEL_DIR"], "model.pth"))
"""


def _key(live: LiveServer, user: str) -> str:
    answer = httpx.post(
        f"{live.url}/api/v1/login", json={"user": user, "password": f"{user}-password"}
    )
    assert answer.status_code == 201, answer.text
    return answer.json()["token"]


def test_a_project_is_closed_to_those_without_a_role_in_it(
    live: LiveServer, tmp_path: Path
) -> None:
    admin = naiad.Client(url=live.url, token=live.token)
    admin.users.create("vis", role="viewer", password="vis-password")  # editor in vision only
    admin.users.create("out", role="editor", password="out-password")  # no role in vision
    made = subprocess.run(
        [sys.executable, "-m", "naiad.cli.main", "projects", "create", "vision"],
        env=live.environ(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    admin.projects.set_member("vision", "vis", "editor")

    vis = naiad.Client(url=live.url, token=_key(live, "vis"), project="vision")
    out = naiad.Client(url=live.url, token=_key(live, "out"))
    out_in_vision = naiad.Client(url=live.url, token=_key(live, "out"), project="vision")

    assert {(p.name, p.role) for p in vis.projects.list()} == {
        ("default", "viewer"),
        ("vision", "editor"),
    }
    vis.experiments.create("resnets")
    run = vis.runs.create("resnets", name="r1")
    assert run.project == "vision" and run.created_by == "vis"
    source = tmp_path / "src"
    source.mkdir()
    (source / "train.py").write_text(textwrap.dedent(SCRIPT))
    job = vis.training_jobs.create(name="vision-job", entrypoint="train.py", source_dir=source)
    assert job.job.project == "vision" and job.job.experiment == "vision-jobs"
    assert job.wait(timeout=120).status == "Completed"
    version = vis.models.register("vision-net", job="vision-job", input_shape=[-1, 1, 8, 8])
    assert vis.models.get_model("vision-net").project == "vision"

    # out holds no role in vision: every read and write of its objects is refused, by name
    missing = r"needs the viewer role in project 'vision'.*'out', who has no role there"
    with pytest.raises(Forbidden, match=missing):
        out.runs.get(run.id)
    with pytest.raises(Forbidden, match=missing):
        out.experiments.get("resnets")
    with pytest.raises(Forbidden, match=missing):
        out.training_jobs.get("vision-job")
    with pytest.raises(Forbidden, match=missing):
        out.models.versions("vision-net")
    with pytest.raises(Forbidden, match="editor role in project 'vision'"):
        out.runs.log_params(run.id, {"lr": 1})
    with pytest.raises(Forbidden, match="in project 'vision'"):
        out.runs.compare([run.id])
    with pytest.raises(Forbidden, match="in project 'vision'"):
        out_in_vision.experiments.list()
    with pytest.raises(Forbidden, match="A run in experiment 'resnets' needs the editor role"):
        out.runs.create("resnets", name="sneaky")
    # ... and lists leave it out
    assert run.id not in {r.id for r in out.runs.list()}
    assert "vision-job" not in {j.name for j in out.training_jobs.list()}
    assert "vision-net" not in {m.name for m in out.models.list()}
    assert "resnets" not in {e.name for e in out.experiments.list()}

    # vis sees both projects, or only vision when it names it; the admin sees everything
    assert run.id in {r.id for r in vis.runs.list()}
    assert {e.project for e in vis.experiments.list()} == {"vision"}
    assert run.id in {r.id for r in admin.runs.list()}
    assert version.version == 1

    # a job reads what its project and default hold, not another project's
    admin.projects.create("other")
    theirs = naiad.Client(url=live.url, token=live.token, project="other")
    theirs.experiments.create("hidden")
    hidden = theirs.runs.create("hidden", name="h")
    public = admin.runs.create("public", name="p")
    home = str(live.home)
    (source / "probe.py").write_text(textwrap.dedent(PROBE))
    probe = vis.training_jobs.create(
        name="vision-probe",
        entrypoint="probe.py",
        source_dir=source,
        environment={"RUNS": f"{hidden.id},{public.id},{run.id}", "HOME_UNDER_TEST": home},
    )
    assert probe.wait(timeout=120).status == "Completed"
    said = "".join(probe.logs())
    if shutil.which("bwrap"):  # a user's job runs sandboxed where bubblewrap is
        assert "admin_token hidden" in said, said
    assert f"probe {hidden.id} 403" in said
    assert f"probe {public.id} 200" in said and f"probe {run.id} 200" in said

    admin.projects.set_member("vision", "vis", "admin")  # vision's admin, not the server's
    vis.runs.get(run.id)
    with pytest.raises(Forbidden, match="needs the admin role"):
        vis.users.list()
    with pytest.raises(Forbidden, match="needs the admin role"):
        vis.keys.list(user="out")

    with pytest.raises(Conflict, match="still holds"):
        admin.projects.delete("vision")
    admin.projects.remove_member("vision", "vis")
    with pytest.raises(Forbidden, match="no role there"):
        vis.runs.get(run.id)  # at once
