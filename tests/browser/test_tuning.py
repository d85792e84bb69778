"""A tuning job in the console: the list, the job's page following the search live, its
figures and trials table matching what the API answers, and Stop."""

import importlib.util

import httpx
import pytest

import naiad

from . import seed
from .conftest import _need, expect, wait_until

pytestmark = pytest.mark.browser

# The markers, parallel coordinates and bars each figure drew, read from plotly's data.
DRAWN = """() => {
  const fig = (name) => document.querySelector(`.plot[data-figure='${name}']`);
  const objective = fig("objective");
  const par = fig("parcoords");
  const bars = fig("importances");
  const traces = {};
  const symbols = {};
  for (const t of (objective && objective.data) || []) {
    traces[t.meta] = t.x.length;
    symbols[t.meta] = t.marker ? t.marker.symbol : null;
  }
  const dims = par && par.data && !par.hidden ? par.data[0].dimensions : [];
  return {
    traces,
    symbols,
    lines: dims.length ? dims[0].values.length : 0,
    axes: dims.map((d) => d.label),
    categories: dims.length ? dims.find((d) => d.label === "act").ticktext : [],
    bars: bars && bars.data && !bars.hidden ? [...bars.data[0].y].sort() : [],
  };
}"""


def expected(job: dict, trials: list[dict], importances: dict[str, float]) -> dict:
    """What the page should draw, from the API's answer."""
    valued = [t for t in trials if t["value"] is not None]
    traces = {}
    for outcome in ("complete", "pruned"):
        if n := sum(t["outcome"] == outcome for t in valued):
            traces[outcome] = n
    for outcome in ("stopped", "failed"):
        if n := sum(t["outcome"] == outcome for t in trials):
            traces[outcome] = n
    complete = traces.get("complete", 0)
    if complete:
        # the best so far: one step per completed trial, held on to the last trial drawn
        last = max(t["number"] for t in trials if t["outcome"] != "running")
        best_at = max(t["number"] for t in valued if t["outcome"] == "complete")
        traces["best"] = complete + (last > best_at)
    enough = job["counts"]["complete"] >= 3 and importances
    return {
        "traces": traces,
        "lines": complete,
        "axes": ["lr (log)", "width", "act", "score"] if complete else [],
        "categories": ["relu", "gelu", "tanh"] if complete else [],
        "bars": sorted(importances) if enough else [],
    }


def test_tuning_list_live_page_figures_and_trials(  # type: ignore[no-untyped-def]
    page, client: naiad.Client, api: httpx.Client, request, shot
) -> None:
    _need(
        request.config,
        importlib.util.find_spec("optuna") is not None,
        "Optuna (pip install -e '.[tune]')",
    )
    seed.tuning_job(client, api, "console-tune", trials=6, parallel=2)

    page.goto("/#/tuning")
    row = page.locator("table.tuning-jobs tr[data-name='console-tune']")
    expect(row).to_contain_text("tpe · asha")
    expect(row.locator("td[data-col='trials']")).to_contain_text("/ 6")
    row.get_by_role("link", name="console-tune").click()

    # The page follows the search to its end without a reload.
    expect(page.locator("main h1")).to_contain_text("console-tune")
    expect(page.locator("main h1 .badge")).to_have_text("Completed", timeout=60_000)
    expect(page.get_by_role("button", name="Stop")).to_be_hidden()
    job = api.get("/tuning-jobs/console-tune").json()
    trials = api.get("/tuning-jobs/console-tune/trials").json()
    importances = api.get("/tuning-jobs/console-tune/importances").json()
    assert job["status"] == "Completed" and len(trials) == 6
    want = expected(job, trials, importances)
    drawn: dict = {}

    def drawn_as_wanted() -> bool:
        drawn.update(page.evaluate(DRAWN))
        return all(drawn[key] == value for key, value in want.items())

    wait_until(drawn_as_wanted, 15, f"the figures to show {want} (they show {drawn})")
    if "pruned" in drawn["traces"]:  # pruned trials are marked apart from complete ones
        assert drawn["symbols"]["pruned"] != drawn["symbols"]["complete"]
    expect(page.locator("[data-fact='trials']")).to_have_text("6 of 6")
    if not want["bars"]:
        expect(page.locator(".chart.importances")).to_contain_text("Importances show once")

    # The trials table: one row per trial, its outcome, a link to its run and its job.
    rows = page.locator("table.trials tbody tr")
    expect(rows).to_have_count(len(trials))
    for trial in trials:
        tr = page.locator(f"table.trials tr[data-trial='{trial['number']}']")
        expect(tr).to_have_attribute("data-outcome", trial["outcome"])
        expect(tr.locator(".badge[data-outcome]")).to_have_text(trial["outcome"])
        expect(tr.get_by_role("link", name="run")).to_have_attribute(
            "href", f"#/runs/{trial['run_id']}"
        )
        expect(tr.get_by_role("link", name=trial["job"])).to_have_attribute(
            "href", f"#/jobs/{trial['job']}"
        )
    best = job["best"]
    if best is not None:
        expect(page.locator(f"table.trials tr.best[data-trial='{best['number']}']")).to_be_visible()
        expect(page.locator(".best-trial").get_by_role("link", name="Run")).to_have_attribute(
            "href", f"#/runs/{best['run_id']}"
        )
    shot(page, "tuning", full_page=True)

    # Best objective first: the order the API gives for sort=objective.
    page.get_by_label("Order of the trials").select_option("objective")
    by_value = api.get("/tuning-jobs/console-tune/trials", params={"sort": "objective"}).json()
    expect(rows.first).to_have_attribute("data-trial", str(by_value[0]["number"]))
    assert "sort=objective" in page.url
    expect(page.locator(".top nav a[aria-current='page']")).to_have_text("Tuning")

    # A trial's run says which search it belongs to, and leads back to it.
    page.locator(f"table.trials tr[data-trial='{trials[1]['number']}']").get_by_role(
        "link", name="run"
    ).click()
    back = page.locator("main .facts li", has_text="trial 1 of")
    expect(back.get_by_role("link", name="console-tune")).to_have_attribute(
        "href", "#/tuning/console-tune"
    )


def test_stop_button_stops_the_search(
    page, client: naiad.Client, api: httpx.Client, request
) -> None:  # type: ignore[no-untyped-def]
    _need(
        request.config,
        importlib.util.find_spec("optuna") is not None,
        "Optuna (pip install -e '.[tune]')",
    )
    # Long trials (400 steps of 0.05 s), so the search is still running when Stop is pressed;
    # no early stopping, so the two running are the first two.
    seed.tuning_job(
        client, api, "console-stop", trials=20, parallel=2, steps=400, early_stopping="none"
    )
    page.goto("/#/tuning/console-stop")
    expect(page.locator("main h1 .badge")).to_have_text("Running", timeout=30_000)
    expect(page.locator("table.trials tr[data-outcome='running']")).to_have_count(2)
    page.get_by_role("button", name="Stop").click()
    expect(page.locator("main h1 .badge")).to_have_text("Stopped", timeout=30_000)
    expect(page.get_by_role("button", name="Stop")).to_be_hidden()
    expect(page.locator("p[data-reason]")).to_contain_text("Stop requested")
    expect(page.locator("table.trials tr[data-outcome='stopped']")).to_have_count(2)
    assert api.get("/tuning-jobs/console-stop").json()["status"] == "Stopped"
