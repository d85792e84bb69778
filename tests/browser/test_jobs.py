"""A training job as it runs: its chart gains points, its log streams, and Stop stops it."""

import textwrap
from pathlib import Path

import pytest

import naiad

from .conftest import expect, wait_until

pytestmark = pytest.mark.browser

# A metric every 0.2 s; 30 s at most, so a slow machine still finds it running to stop.
SCRIPT = """
import time
from naiad import runtime

ctx = runtime.context()
for step in range(ctx.hyperparameters.get_int("steps")):
    ctx.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
    print(f"step {step}", flush=True)
    time.sleep(0.2)
"""

POINTS = "document.querySelector(\".plot[data-key='loss']\")?.dataset.points"


def test_live_chart_logs_and_stop_button(page, client: naiad.Client, tmp_path: Path, shot) -> None:  # type: ignore[no-untyped-def]
    source = tmp_path / "src"
    source.mkdir()
    (source / "train.py").write_text(textwrap.dedent(SCRIPT))
    job = client.training_jobs.create(
        name="console-live",
        entrypoint="train.py",
        source_dir=source,
        hyperparameters={"lr": 0.01, "steps": 150},
    )
    wait_until(lambda: job.status == "Running", 60, "the job to run")

    page.goto(f"/#/runs/{job.job.run_id}")
    expect(page.locator("main h1 .badge")).to_have_text("Running")
    page.wait_for_function(f"Number({POINTS}) > 0", timeout=20_000)
    first = int(page.evaluate(POINTS))
    page.wait_for_function(f"Number({POINTS}) > {first}", timeout=20_000)  # it grows live

    page.get_by_role("link", name="console-live").click()
    expect(page.locator("main h1")).to_contain_text("console-live")
    expect(page.locator("pre.logs")).to_contain_text("step 3", timeout=20_000)
    expect(page.locator("ol.timeline")).to_contain_text("Running")
    shot(page, "job")

    page.get_by_role("button", name="Stop").click()
    expect(page.locator("main h1 .badge")).to_have_text("Stopped", timeout=30_000)
    expect(page.locator("ol.timeline")).to_contain_text("Stopped")
    expect(page.get_by_role("button", name="Stop")).to_be_hidden()
    assert client.training_jobs.get("console-live").status == "Stopped"


# An elastic job's worker: it joins the round's world, says where it resumed, and steps.
ELASTIC = """
import time
from naiad import runtime

runtime.init_distributed()
runtime.checkpoints.latest()
for step in range(40):
    time.sleep(0.2)
"""


def test_an_elastic_job_shows_its_node_range_and_resizes(  # type: ignore[no-untyped-def]
    page, client: naiad.Client, tmp_path: Path
) -> None:
    (tmp_path / "train.py").write_text(textwrap.dedent(ELASTIC))
    job = client.training_jobs.create(
        name="console-elastic", entrypoint="train.py", source_dir=tmp_path, nodes="1:2"
    )
    wait_until(lambda: bool(job.refresh().events), 90, "the job's first round")
    page.goto("/#/jobs/console-elastic")
    expect(page.locator("ul.facts")).to_contain_text("processes 1\u20132 \u00d7 1")  # 1-2 x 1
    resizes = page.locator("[data-part=resizes]")
    expect(resizes).to_contain_text("Resizes")
    expect(resizes.locator("tbody tr").first).to_contain_text("0 \u2192 ")  # 0 -> N
    expect(resizes.locator("tbody tr").first).to_contain_text("started")
    job.stop()
