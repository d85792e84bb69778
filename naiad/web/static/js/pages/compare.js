// #/compare?runs=A,B,...: 2 to 20 runs. Overlaid curves, the params that differ, and a
// parallel-coordinates view of the params against an objective metric.
import { api, num } from "../api.js";
import { h, link, replace, table } from "../dom.js";
import { badge, fmtNum, fmtValue } from "../format.js";
import { PALETTE, loadPlotly, baseLayout, CONFIG, purge } from "../charts.js";
import { chartOptions, loadOptions } from "../parts/chart_options.js";
import { MetricCharts } from "../parts/metric_charts.js";
import { defaultObjective } from "../parts/metric_rank.js";

const MIN = 2;
const MAX = 20;

function paramTable(cmp, runs, onlyDiffering) {
  const differing = new Set(cmp.differing_params);
  const keys = Object.keys(cmp.params)
    .sort()
    .filter((k) => !onlyDiffering || differing.has(k));
  if (!keys.length)
    return h(
      "p",
      { class: "muted" },
      onlyDiffering ? "Every param is the same in these runs." : "These runs have no params.",
    );
  const heads = [
    "Param",
    ...runs.map((r) => h("th", { scope: "col" }, h("span", { style: { color: r.color } }, "■ "), r.name)),
  ];
  return table(
    heads,
    keys.map((k) =>
      h(
        "tr",
        { class: differing.has(k) ? "differs" : null },
        h("th", { scope: "row", class: "mono" }, k),
        cmp.params[k].map((v) => h("td", {}, fmtValue(v))),
      ),
    ),
    { class: "params" },
  );
}

function metricTable(cmp, runs) {
  const keys = Object.keys(cmp.metrics)
    .filter((k) => !k.startsWith("system/"))
    .sort();
  if (!keys.length) return h("p", { class: "muted" }, "No metrics.");
  const heads = ["Metric (last value)", ...runs.map((r) => h("th", { scope: "col", class: "num" }, r.name))];
  return table(
    heads,
    keys.map((k) =>
      h(
        "tr",
        {},
        h("th", { scope: "row", class: "mono" }, k),
        cmp.metrics[k].map((v) => h("td", { class: "num" }, fmtNum(v))),
      ),
    ),
  );
}

/** One axis per param (numbers as they are, text as categories) and the objective last. */
export function parcoordsDimensions(cmp, objective) {
  const dims = [];
  const keys = Object.keys(cmp.params).sort(
    (a, b) => cmp.differing_params.includes(b) - cmp.differing_params.includes(a) || a.localeCompare(b),
  );
  for (const key of keys) {
    const values = cmp.params[key];
    const numeric = values.every((v) => v === null || (typeof v === "number" && Number.isFinite(v)));
    if (numeric && values.some((v) => v !== null)) {
      dims.push({ label: key, values: values.map((v) => (v === null ? NaN : v)) });
    } else {
      const cats = [...new Set(values.map((v) => fmtValue(v)))].sort();
      dims.push({
        label: key,
        values: values.map((v) => cats.indexOf(fmtValue(v))),
        tickvals: cats.map((_, i) => i),
        ticktext: cats.map((c) => (c === "" ? "(none)" : c)),
        range: [0, Math.max(1, cats.length - 1)],
      });
    }
  }
  if (objective && cmp.metrics[objective]) {
    dims.push({
      label: objective,
      values: cmp.metrics[objective].map((v) => {
        const n = num(v);
        return n === null ? NaN : n;
      }),
    });
  }
  return dims;
}

async function drawParcoords(el, cmp, objective) {
  const Plotly = await loadPlotly();
  const dims = parcoordsDimensions(cmp, objective);
  const color =
    objective && cmp.metrics[objective]
      ? cmp.metrics[objective].map((v) => num(v) ?? NaN)
      : cmp.runs.map((_, i) => i);
  const layout = baseLayout({ margin: { l: 70, r: 70, t: 40, b: 24 } });
  const trace = {
    type: "parcoords",
    dimensions: dims,
    line: {
      color,
      colorscale: "Viridis",
      showscale: Boolean(objective),
      colorbar: { title: { text: objective || "" } },
    },
    labelfont: { size: 12 },
    tickfont: { size: 10 },
  };
  await Plotly.react(el, [trace], layout, CONFIG);
  el.dataset.rendered = "1";
}

export default async function render(view) {
  loadPlotly().catch(() => {}); // plotly.js starts while the data comes; a failure shows per chart
  const { main, query, signal } = view;
  view.title("Compare runs");
  const ids = (query.get("runs") || "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  const crumbs = h("div", { class: "crumbs" }, link("#/experiments", "Experiments"), " / ");
  if (ids.length < MIN || ids.length > MAX) {
    replace(
      main,
      crumbs,
      h("h1", {}, "Compare runs"),
      h(
        "p",
        { class: "note" },
        `Pick ${MIN} to ${MAX} runs with the checkboxes of a runs table, then Compare (this link has ${ids.length}).`,
      ),
      h("p", {}, link("#/runs", "All runs →")),
    );
    return;
  }
  const cmp = await api("/runs/compare", { query: { run_id: ids }, signal });
  const runs = cmp.runs.map((r, i) => ({
    id: r.id,
    name: r.name,
    color: PALETTE[i % PALETTE.length],
    run: r,
  }));
  const options = loadOptions();
  const charts = new MetricCharts({ runs, options, signal, maxPoints: 500 });
  const keys = [...new Set(cmp.runs.flatMap((r) => Object.keys(r.metrics)))]
    .filter((k) => !k.startsWith("system/"))
    .sort();
  charts.setKeys(keys);

  let onlyDiffering = cmp.differing_params.length > 0;
  const params = h("div", {}, paramTable(cmp, runs, onlyDiffering));
  const metricKeys = Object.keys(cmp.metrics)
    .filter((k) => !k.startsWith("system/"))
    .sort();
  // A real figure of merit (val/accuracy, loss), never a counter such as epoch or step.
  let objective = defaultObjective(metricKeys) || metricKeys[0] || null;
  const par = h("div", { class: "plot", style: { height: "380px" } });
  signal.addEventListener("abort", () => purge(par));
  const objectivePick = h(
    "select",
    {
      name: "objective",
      "aria-label": "Objective metric",
      onchange: (e) => {
        objective = e.target.value || null;
        drawParcoords(par, cmp, objective);
      },
    },
    metricKeys.length
      ? metricKeys.map((k) => h("option", { value: k, selected: k === objective }, k))
      : h("option", { value: "" }, "(no metrics)"),
  );

  replace(
    main,
    crumbs,
    h("h1", {}, `Compare ${runs.length} runs`),
    h(
      "ul",
      { class: "facts" },
      runs.map((r) =>
        h(
          "li",
          {},
          h("span", { style: { color: r.color }, "aria-hidden": "true" }, "■ "),
          link(`#/runs/${encodeURIComponent(r.id)}`, r.name),
          " ",
          badge(r.run.status),
        ),
      ),
    ),
    h("h2", {}, "Params"),
    h(
      "label",
      { class: "inline" },
      h("input", {
        type: "checkbox",
        name: "onlyDiffering",
        checked: onlyDiffering,
        onchange: (e) => {
          onlyDiffering = e.target.checked;
          replace(params, paramTable(cmp, runs, onlyDiffering));
        },
      }),
      `Only the ${cmp.differing_params.length} that differ`,
    ),
    params,
    h("h2", {}, "Params against the objective"),
    h(
      "div",
      { class: "toolbar" },
      h("label", { class: "inline" }, "Objective", objectivePick),
      h("span", { class: "muted small" }, "Drag along an axis to keep only the runs in that range."),
    ),
    h("figure", { class: "chart wide parcoords", style: { margin: 0 } }, par),
    h("h2", {}, "Curves"),
    chartOptions(options, () => charts.redraw()),
    keys.length ? charts.el : h("p", { class: "muted" }, "These runs have no metrics."),
    h("h2", {}, "Last values"),
    metricTable(cmp, runs),
  );
  await drawParcoords(par, cmp, objective);
}
