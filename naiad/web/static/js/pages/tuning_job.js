// #/tuning/NAME: a search's status and settings, its best trial, the objective by trial,
// the params against the objective, their importances, every trial, and (for an editor)
// Stop. Live while the search runs.
import { api, path } from "../api.js";
import { h, link, kvTable, replace, table, errorBox } from "../dom.js";
import { badge, fmtDuration, fmtNum, fmtTime, fmtValue, span, TERMINAL } from "../format.js";
import { loadPlotly, purge } from "../charts.js";
import { every } from "../poll.js";
import { setQuery } from "../router.js";
import { arrow, trialsDone } from "./tuning.js";
import { drawImportances, drawObjective, drawParcoords, trialValue } from "../parts/tuning_charts.js";
import { may } from "../session.js";

const MIN_FOR_IMPORTANCE = 3; // what the server's fANOVA needs

function outcomeBadge(outcome) {
  return h("span", { class: `badge o-${outcome}`, dataset: { outcome } }, outcome);
}

function kpi(label, value, cls) {
  return h(
    "div",
    { class: `kpi${cls ? " " + cls : ""}` },
    h("div", { class: "v" }, value),
    h("div", { class: "k" }, label),
  );
}

function runLink(trial, text = "run") {
  return trial.run_id ? link(`#/runs/${encodeURIComponent(trial.run_id)}`, text) : null;
}

function jobLink(trial) {
  return trial.job
    ? link(`#/jobs/${encodeURIComponent(trial.job)}`, trial.job)
    : h("span", { class: "muted" }, "(deleted)");
}

function rangeText(r) {
  if (r.type === "categorical") return (r.values || []).map(fmtValue).join(", ");
  return `${r.min} … ${r.max}`;
}

function spaceTable(space) {
  return table(
    ["Param", "Type", "Range", "Scaling"],
    space.map((r) =>
      h(
        "tr",
        {},
        h("th", { scope: "row", class: "mono" }, r.name),
        h("td", {}, r.type),
        h("td", { class: "mono" }, rangeText(r)),
        h("td", {}, r.type === "categorical" ? "" : r.scaling === "auto" ? "linear" : r.scaling),
      ),
    ),
    { class: "space" },
  );
}

function settings(job) {
  const t = job.template;
  const fixed = Object.entries(t.hyperparameters || {});
  return kvTable([
    ["Strategy", job.strategy],
    ["Early stopping", job.early_stopping],
    ["Objective", `${job.objective.metric} (${job.objective.direction})`],
    ...(job.objective.regex
      ? [["Read from the log by", h("span", { class: "mono" }, job.objective.regex)]]
      : []),
    ["Budget", `${job.max_trials} trials, ${job.parallel} at once`],
    ["Time limit", job.max_runtime_s ? fmtDuration(job.max_runtime_s * 1000) : "none"],
    ["Fails after", `${job.max_failed_trials} failed trials`],
    ...(job.seed !== null && job.seed !== undefined ? [["Seed", String(job.seed)]] : []),
    ...(job.warm_start.length
      ? [["Warm start from", job.warm_start.map((n) => [link(`#/tuning/${encodeURIComponent(n)}`, n), " "])]]
      : []),
    [
      "Each trial runs",
      h("span", { class: "mono" }, t.entrypoint ?? (t.command || []).join(" ")),
    ],
    [
      "Fixed hyperparameters",
      fixed.length ? fixed.map(([k, v]) => `${k}=${fmtValue(v)}`).join(", ") : "none",
    ],
    ["Experiment", link(`#/experiments/${encodeURIComponent(t.experiment)}`, t.experiment)],
  ]);
}

function bestCard(job) {
  const best = job.best;
  if (!best)
    return h(
      "p",
      { class: "muted" },
      job.counts.running ? "No trial has completed yet." : "No trial completed with a value.",
    );
  return h(
    "div",
    { class: "card best-trial" },
    h(
      "div",
      { class: "best-head" },
      h(
        "div",
        {},
        h("div", { class: "best-value" }, fmtNum(best.value)),
        h(
          "div",
          { class: "muted small" },
          `${job.objective.metric} ${arrow(job.objective.direction)}, trial ${best.number}`,
        ),
      ),
      h("div", { class: "best-links" }, runLink(best, "Run"), jobLink(best)),
    ),
    kvTable(Object.entries(best.params).map(([k, v]) => [k, h("span", { class: "mono" }, fmtValue(v))])),
  );
}

function trialsTable(job, trials) {
  const names = job.space.map((r) => r.name);
  const bestNumber = job.best ? job.best.number : null;
  if (!trials.length) return h("p", { class: "empty" }, "No trials yet; the first start in a moment.");
  return table(
    [
      h("th", { class: "num", scope: "col" }, "#"),
      "Outcome",
      "Job",
      ...names.map((n) => h("th", { scope: "col", class: "mono" }, n)),
      h("th", { class: "num mono", scope: "col" }, job.objective.metric),
      h("th", { class: "num", scope: "col" }, "Last step"),
      "Ran for",
      "Reason",
      "",
    ],
    trials.map((t) =>
      h(
        "tr",
        {
          class: t.number === bestNumber ? "best" : null,
          dataset: { trial: String(t.number), outcome: t.outcome },
        },
        h(
          "td",
          { class: "num" },
          t.number === bestNumber ? h("span", { title: "best trial" }, "★ ") : null,
          String(t.number),
        ),
        h("td", {}, outcomeBadge(t.outcome)),
        h("td", { class: "job" }, jobLink(t), t.status ? [" ", badge(t.status)] : null),
        names.map((n) => h("td", { class: "mono" }, fmtValue(t.params[n]))),
        h("td", { class: "num" }, trialValue(t) === null ? "" : fmtNum(t.value)),
        h("td", { class: "num" }, t.last_step ?? ""),
        h("td", {}, span(t.created_at, t.ended_at)),
        h("td", { class: "why" }, t.reason || ""),
        h("td", {}, runLink(t)),
      ),
    ),
    { class: "trials" },
  );
}

export default async function render(view) {
  loadPlotly().catch(() => {}); // plotly.js loads while the data comes; a failure shows per chart
  const { main, params, signal, query } = view;
  let sort = query.get("sort") === "objective" ? "objective" : "number";
  let xMode = query.get("x") === "time" ? "time" : "number";
  const base = path("tuning-jobs", params.name);
  let job = await api(base, { signal });
  let trials = await api(`${base}/trials`, { query: { sort }, signal });
  let importances = null; // null: not asked yet
  let importanceFor = -1; // the completed count the importances were computed for
  view.title(`${job.name} · Tuning`);

  const top = h("div");
  const problem = h("div");
  const counts = h("div", { class: "kpis" });
  const best = h("div");
  const plots = {
    objective: h("div", { class: "plot", dataset: { figure: "objective" } }),
    parcoords: h("div", { class: "plot", dataset: { figure: "parcoords" } }),
    importances: h("div", { class: "plot", dataset: { figure: "importances" } }),
  };
  const notes = {
    objective: h("p", { class: "muted chart-note" }),
    parcoords: h("p", { class: "muted chart-note" }),
    importances: h("p", { class: "muted chart-note" }),
  };
  signal.addEventListener("abort", () => Object.values(plots).forEach(purge));
  const trialsBox = h("div");

  let stopAsked = false;
  const stop = h("button", { type: "button", class: "danger", "data-action": "stop" }, "Stop");
  stop.addEventListener("click", async () => {
    stop.disabled = true;
    stop.textContent = "Stopping…";
    replace(problem);
    try {
      job = await api(`${base}/stop`, { method: "POST", signal });
      stopAsked = true;
      drawHead();
    } catch (err) {
      if (err.name === "AbortError") return;
      replace(problem, errorBox(err));
      stop.disabled = false;
      stop.textContent = "Stop";
    }
  });

  function drawHead() {
    const done = TERMINAL.has(job.status);
    stop.hidden = done || !may("editor", job.project);
    if (job.status === "Stopping" || stopAsked) {
      stop.disabled = true;
      stop.textContent = "Stopping…";
    }
    replace(
      top,
      h("div", { class: "crumbs" }, link("#/tuning", "Tuning"), " / "),
      h(
        "div",
        { class: "head" },
        h(
          "div",
          {},
          h("h1", {}, job.name, badge(job.status)),
          h(
            "ul",
            { class: "facts" },
            h(
              "li",
              {},
              "objective ",
              h("b", { class: "mono" }, job.objective.metric),
              ` (${job.objective.direction})`,
            ),
            h("li", {}, "strategy ", h("b", {}, job.strategy)),
            h("li", {}, "early stopping ", h("b", {}, job.early_stopping)),
            h(
              "li",
              {},
              "trials ",
              h("b", { dataset: { fact: "trials" } }, `${trialsDone(job)} of ${job.max_trials}`),
              " done",
            ),
            h("li", {}, "parallel ", h("b", {}, String(job.parallel))),
            h("li", {}, "created ", h("b", {}, fmtTime(job.created_at))),
            h("li", {}, "ran for ", h("b", {}, span(job.created_at, job.ended_at))),
          ),
        ),
        stop,
      ),
      // While it runs the figures say as much; the reason matters once it waits or ends.
      job.status_reason && job.status !== "Running"
        ? h(
            "p",
            { class: job.status === "Failed" ? "alert" : "note", dataset: { reason: "" } },
            job.status_reason,
          )
        : null,
    );
    const c = job.counts;
    replace(
      counts,
      kpi("complete", fmtNum(c.complete), "o-complete"),
      kpi("pruned", fmtNum(c.pruned), "o-pruned"),
      kpi("failed", fmtNum(c.failed), "o-failed"),
      kpi("stopped", fmtNum(c.stopped), "o-stopped"),
      kpi("running", fmtNum(c.running), "o-running"),
      kpi("budget left", fmtNum(Math.max(0, job.max_trials - trialsDone(job) - c.running))),
    );
    replace(best, bestCard(job));
  }

  // A figure shows its plot, or a sentence while there is nothing to plot yet.
  async function figure(key, show, sentence, draw) {
    plots[key].hidden = !show;
    notes[key].hidden = show;
    notes[key].textContent = show ? "" : sentence;
    if (!show) return;
    try {
      await draw(plots[key]);
    } catch (err) {
      if (err.name === "AbortError") return;
      replace(notes[key], errorBox(err));
      notes[key].hidden = false;
    }
  }

  async function drawFigures() {
    const objective = { metric: job.objective.metric, direction: job.objective.direction };
    const plotted = trials.some((t) => (xMode === "time" ? t.ended_at : true) && t.outcome !== "running");
    await figure("objective", plotted, "Points appear as trials end.", (el) =>
      drawObjective(el, trials, { ...objective, xMode }),
    );
    const complete = trials.filter((t) => t.outcome === "complete" && trialValue(t) !== null);
    await figure("parcoords", complete.length > 0, "A line appears for each trial that completes.", (el) =>
      drawParcoords(el, job.space, trials, objective),
    );
    const enough =
      job.counts.complete >= MIN_FOR_IMPORTANCE && importances && Object.keys(importances).length;
    await figure(
      "importances",
      Boolean(enough),
      job.counts.complete < MIN_FOR_IMPORTANCE
        ? `Importances show once ${MIN_FOR_IMPORTANCE} trials have completed (${job.counts.complete} so far).`
        : "The completed trials do not yet tell the params apart (they scored alike, or " +
          "tried the same values).",
      (el) => drawImportances(el, importances),
    );
  }

  async function loadImportances() {
    const complete = job.counts.complete;
    if (complete < MIN_FOR_IMPORTANCE || complete === importanceFor) return;
    importances = await api(`${base}/importances`, { signal });
    importanceFor = complete;
  }

  const sortPick = h(
    "select",
    {
      name: "sort",
      "aria-label": "Order of the trials",
      onchange: async (e) => {
        sort = e.target.value;
        remember();
        trials = await api(`${base}/trials`, { query: { sort }, signal });
        replace(trialsBox, trialsTable(job, trials));
      },
    },
    [
      ["number", "In the order they ran"],
      ["objective", "Best objective first"],
    ].map(([v, t]) => h("option", { value: v, selected: v === sort }, t)),
  );
  const xPick = h(
    "select",
    {
      name: "x",
      "aria-label": "X axis",
      onchange: (e) => {
        xMode = e.target.value;
        remember();
        drawFigures();
      },
    },
    [
      ["number", "Trial number"],
      ["time", "Time each trial ended"],
    ].map(([v, t]) => h("option", { value: v, selected: v === xMode }, t)),
  );
  function remember() {
    const q = new URLSearchParams();
    if (sort !== "number") q.set("sort", sort);
    if (xMode !== "number") q.set("x", xMode);
    setQuery(q);
  }

  drawHead();
  await loadImportances().catch(() => {});
  replace(trialsBox, trialsTable(job, trials));
  replace(
    main,
    top,
    problem,
    counts,
    h(
      "div",
      { class: "grid2" },
      h("section", {}, h("h2", {}, "Best trial"), best),
      h("section", {}, h("h2", {}, "Search"), settings(job), h("h3", {}, "Space"), spaceTable(job.space)),
    ),
    h(
      "div",
      { class: "head section" },
      h("h2", {}, "Objective by trial"),
      h("label", { class: "inline" }, "X axis", xPick),
    ),
    h(
      "div",
      { class: "tuning-figures" },
      h(
        "figure",
        { class: "chart objective" },
        h(
          "h3",
          {},
          h("span", {}, `${job.objective.metric} of each trial`),
          h("span", { class: "muted" }, "the line: best so far"),
        ),
        plots.objective,
        notes.objective,
      ),
      h(
        "figure",
        { class: "chart importances" },
        h("h3", {}, h("span", {}, "Param importance"), h("span", { class: "muted" }, "fANOVA")),
        plots.importances,
        notes.importances,
      ),
    ),
    h("h2", {}, "Params against the objective"),
    h(
      "p",
      { class: "muted small" },
      "One line per completed trial, coloured by the objective from purple (worst) to amber " +
        "(best). Drag along an axis to keep the trials in that range.",
    ),
    h("figure", { class: "chart wide parcoords" }, plots.parcoords, notes.parcoords),
    h(
      "div",
      { class: "head section" },
      h("h2", {}, "Trials"),
      h("label", { class: "inline" }, "Order", sortPick),
    ),
    trialsBox,
  );
  await drawFigures();

  if (TERMINAL.has(job.status)) return;
  let seen = JSON.stringify(trials) + importanceFor;
  every(
    2000,
    async () => {
      job = await api(base, { signal });
      trials = await api(`${base}/trials`, { query: { sort }, signal });
      await loadImportances().catch(() => {});
      drawHead();
      const now = JSON.stringify(trials) + importanceFor;
      if (now !== seen) {
        seen = now;
        replace(trialsBox, trialsTable(job, trials));
        await drawFigures();
      }
      return !TERMINAL.has(job.status);
    },
    signal,
  );
}
