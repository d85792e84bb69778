// A tuning job's figures: each trial's objective with the best so far, the params against
// the objective (parallel coordinates), and each param's share of the objective's variance.
// The trace builders are pure; the draw functions hand them to plotly.js.
import { num } from "../api.js";
import { fmtNum, fmtValue } from "../format.js";
import { drawPlot, loadPlotly, baseLayout, CONFIG, theme } from "../charts.js";

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

function escapeHover(text) {
  return String(text).replace(/[<>&]/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;" })[c]);
}

/** "lr=0.01<br>act=gelu": a trial's params for a hover label. */
function paramLines(params) {
  return Object.entries(params)
    .map(([k, v]) => `${escapeHover(k)}=${escapeHover(fmtValue(v))}`)
    .join("<br>");
}

/** The trial's objective value as a finite number, or null. */
export function trialValue(trial) {
  const v = num(trial.value);
  return v === null || v === undefined || !Number.isFinite(v) ? null : v;
}

/** Where a trial sits on the x axis: its number, or the time it ended (null while running). */
function xOf(trial, xMode) {
  if (xMode === "time") return trial.ended_at ? new Date(trial.ended_at) : null;
  return trial.number;
}

/** The running best of the completed trials, in x order, as a step line's points; it runs
 * on to the last trial that has ended, so the line shows how long the best has held. */
export function bestSoFar(trials, direction, xMode) {
  const better = direction === "minimize" ? (a, b) => a < b : (a, b) => a > b;
  const done = trials
    .filter((t) => t.outcome === "complete" && trialValue(t) !== null && xOf(t, xMode) !== null)
    .sort((a, b) => xOf(a, xMode) - xOf(b, xMode));
  const x = [];
  const y = [];
  let best = null;
  for (const t of done) {
    const v = trialValue(t);
    if (best === null || better(v, best)) best = v;
    x.push(xOf(t, xMode));
    y.push(best);
  }
  const ends = trials
    .filter((t) => t.outcome !== "running")
    .map((t) => xOf(t, xMode))
    .filter((v) => v !== null);
  if (x.length && ends.length) {
    const last = ends.reduce((a, b) => (b > a ? b : a));
    if (last > x[x.length - 1]) {
      x.push(last);
      y.push(best);
    }
  }
  return { x, y };
}

const OUTCOMES = [
  // outcome, legend name, marker symbol, colour variable
  ["complete", "complete", "circle", "--accent"],
  ["pruned", "pruned (stopped early)", "x", "--warn"],
  ["stopped", "stopped", "square-open", "--muted"],
  ["failed", "failed (no value)", "triangle-down", "--bad"],
];

/** The objective chart's traces: one per outcome present (markers), then the best so far.
 * A trial without a value (failed, or stopped before it logged one) sits on a floor line
 * under the others, so it is still seen. */
export function objectiveTraces(trials, { metric, direction, xMode = "number" }) {
  const values = trials.map(trialValue).filter((v) => v !== null);
  const lo = values.length ? Math.min(...values) : 0;
  const hi = values.length ? Math.max(...values) : 1;
  const floor = lo - Math.max((hi - lo) * 0.08, Math.abs(lo) * 0.02, 1e-9);
  const traces = [];
  for (const [outcome, name, symbol, color] of OUTCOMES) {
    const mine = trials.filter((t) => t.outcome === outcome && xOf(t, xMode) !== null);
    // complete and pruned trials have a value; the others show whether or not they have one
    const valued = outcome === "complete" || outcome === "pruned";
    const shown = valued ? mine.filter((t) => trialValue(t) !== null) : mine;
    if (!shown.length) continue;
    const c = cssVar(color) || "#888";
    traces.push({
      type: "scatter",
      mode: "markers",
      name,
      meta: outcome,
      x: shown.map((t) => xOf(t, xMode)),
      y: shown.map((t) => trialValue(t) ?? floor),
      customdata: shown.map((t) => t.number),
      text: shown.map(
        (t) =>
          `trial ${t.number} · ${t.outcome}` +
          (trialValue(t) === null ? "" : `<br>${escapeHover(metric)} ${fmtNum(trialValue(t))}`) +
          (t.last_step === null || t.last_step === undefined ? "" : ` at step ${t.last_step}`) +
          `<br>${paramLines(t.params)}`,
      ),
      hovertemplate: "%{text}<extra></extra>",
      marker: {
        symbol,
        color: c,
        size: outcome === "complete" ? 9 : 10,
        line: { width: outcome === "pruned" || outcome === "failed" ? 0 : 1.5, color: c },
        opacity: outcome === "complete" ? 0.9 : 1,
      },
    });
  }
  const best = bestSoFar(trials, direction, xMode);
  if (best.x.length) {
    traces.push({
      type: "scatter",
      mode: "lines",
      name: "best so far",
      meta: "best",
      x: best.x,
      y: best.y,
      line: { shape: "hv", width: 2, color: cssVar("--ok") || "#2ca02c" },
      hovertemplate: `best so far %{y:.5g}<extra></extra>`,
    });
  }
  return traces;
}

export async function drawObjective(el, trials, { metric, direction, xMode }) {
  const traces = objectiveTraces(trials, { metric, direction, xMode });
  const arrow = direction === "minimize" ? "↓" : "↑";
  await drawPlot(el, traces, {
    hovermode: "closest",
    uirevision: xMode,
    xaxis:
      xMode === "time"
        ? { type: "date", title: { text: "trial ended", standoff: 4 } }
        : { type: "linear", title: { text: "trial", standoff: 4 }, tickformat: "d" },
    yaxis: { title: { text: `${metric} ${arrow}`, standoff: 4 } },
  });
  el.dataset.traces = String(traces.length);
}

function niceLogTicks(lo, hi) {
  const out = [];
  for (let e = Math.ceil(lo - 1e-9); e <= Math.floor(hi + 1e-9); e++) out.push(e);
  return out;
}

/** One axis per param of the space (its whole range; log-scaled ones in powers of ten,
 * categorical ones with their values as tick labels), and the objective last; one line
 * per completed trial. */
export function parcoordsTrace(space, trials, { metric, direction }) {
  const done = trials.filter((t) => t.outcome === "complete" && trialValue(t) !== null);
  const dims = space.map((r) => {
    const values = done.map((t) => t.params[r.name]);
    if (r.type === "categorical") {
      const cats = r.values || [];
      const index = (v) => {
        const i = cats.findIndex((c) => c === v || fmtValue(c) === fmtValue(v));
        return i < 0 ? NaN : i;
      };
      return {
        label: r.name,
        values: values.map(index),
        tickvals: cats.map((_, i) => i),
        ticktext: cats.map((c) => fmtValue(c)),
        range: cats.length > 1 ? [0, cats.length - 1] : [-0.5, 0.5],
      };
    }
    const number = (v) => (typeof v === "number" && Number.isFinite(v) ? v : NaN);
    if (r.scaling === "log" && r.min > 0) {
      const lo = Math.log10(r.min);
      const hi = Math.log10(r.max);
      const ticks = niceLogTicks(lo, hi);
      return {
        label: `${r.name} (log)`,
        values: values.map((v) => (number(v) > 0 ? Math.log10(v) : NaN)),
        tickvals: ticks,
        ticktext: ticks.map((e) => (e < -3 || e > 5 ? `1e${e}` : String(10 ** e))),
        range: [lo, hi],
      };
    }
    const dim = { label: r.name, values: values.map(number), range: [r.min, r.max] };
    if (r.type === "integer") dim.tickformat = "d";
    return dim;
  });
  const scores = done.map(trialValue);
  dims.push({ label: metric, values: scores });
  return {
    type: "parcoords",
    dimensions: dims,
    line: {
      color: scores,
      // purple to amber: mid-tone colours, clear on the light and the dark background;
      // the best trials are amber either way
      colorscale: [
        [0, "#7b61c9"],
        [0.5, "#1f9e89"],
        [1, "#e8a202"],
      ],
      reversescale: direction === "minimize",
      showscale: false, // the objective's own axis, last, says what the colours mean
    },
    labelangle: 0,
    labelside: "top",
  };
}

export async function drawParcoords(el, space, trials, { metric, direction }) {
  const Plotly = await loadPlotly();
  const trace = parcoordsTrace(space, trials, { metric, direction });
  const t = theme();
  trace.labelfont = { size: 12, color: t.text };
  trace.tickfont = { size: 10, color: t.text };
  trace.rangefont = { size: 9, color: t.muted };
  const layout = baseLayout({ margin: { l: 64, r: 48, t: 48, b: 20 } });
  await Plotly.react(el, [trace], layout, CONFIG);
  el.dataset.rendered = "1";
  el.dataset.lines = String(trace.dimensions[0] ? trace.dimensions[0].values.length : 0);
}

/** Importances as horizontal bars, the largest on top. */
export function importanceTrace(importances) {
  const entries = Object.entries(importances).sort((a, b) => a[1] - b[1]);
  return {
    type: "bar",
    orientation: "h",
    x: entries.map(([, v]) => v),
    y: entries.map(([k]) => k),
    text: entries.map(([, v]) => `${(v * 100).toFixed(0)}%`),
    textposition: "auto",
    marker: { color: cssVar("--accent") || "#1f77b4" },
    hovertemplate: "%{y}: %{x:.1%}<extra></extra>",
  };
}

export async function drawImportances(el, importances) {
  const trace = importanceTrace(importances);
  await drawPlot(el, [trace], {
    showlegend: false,
    margin: { l: 12, r: 16, t: 8, b: 36 },
    xaxis: {
      range: [0, 1],
      tickformat: ".0%",
      title: { text: "share of the objective's variance", standoff: 4 },
    },
    yaxis: { automargin: true, ticksuffix: " " },
    bargap: 0.35,
  });
  el.dataset.bars = String(trace.y.length);
}
