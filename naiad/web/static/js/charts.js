// Plotly.js (served from the plotly Python package, loaded on first use) and the chart
// maths the console does itself: smoothing, x by step or time, the min/max band of a
// downsampled series.
import { num } from "./api.js";

export const PALETTE = [
  "#1f77b4",
  "#ff7f0e",
  "#2ca02c",
  "#d62728",
  "#9467bd",
  "#8c564b",
  "#e377c2",
  "#7f7f7f",
  "#bcbd22",
  "#17becf",
  "#393b79",
  "#e7ba52",
  "#637939",
  "#ad494a",
  "#7b4173",
  "#3182bd",
  "#31a354",
  "#e6550d",
  "#756bb1",
  "#636363",
];

let loading = null;

/** window.Plotly, loading /static/vendor/plotly.min.js once. */
export function loadPlotly() {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  if (!loading) {
    loading = new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = "/static/vendor/plotly.min.js";
      script.onload = () =>
        window.Plotly
          ? resolve(window.Plotly)
          : reject(
              new Error(
                "Charts need plotly.js, which ships inside the 'plotly' Python package; install it on the server (pip install plotly).",
              ),
            );
      script.onerror = () => {
        loading = null;
        reject(
          new Error(
            "Charts need plotly.js, which ships inside the 'plotly' Python package; install it on the server (pip install plotly) and reload.",
          ),
        );
      };
      document.head.append(script);
    });
  }
  return loading;
}

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

/** Axis and text colours from the page's (light or dark) palette. */
export function theme() {
  return {
    text: cssVar("--text"),
    muted: cssVar("--muted"),
    grid: cssVar("--soft"),
    line: cssVar("--line"),
    panel: cssVar("--panel"),
  };
}

export function baseLayout(extra = {}) {
  const t = theme();
  return {
    margin: { l: 56, r: 12, t: 8, b: 36 },
    paper_bgcolor: "rgba(0,0,0,0)",
    plot_bgcolor: "rgba(0,0,0,0)",
    font: { color: t.text, size: 11 },
    hoverlabel: { bgcolor: t.panel, bordercolor: t.line, font: { color: t.text } },
    xaxis: { gridcolor: t.grid, zerolinecolor: t.line, linecolor: t.line, automargin: true },
    yaxis: { gridcolor: t.grid, zerolinecolor: t.line, linecolor: t.line, automargin: true },
    legend: { orientation: "h", y: -0.2, font: { size: 11 } },
    ...extra,
  };
}

export const CONFIG = {
  responsive: true,
  displaylogo: false,
  modeBarButtonsToRemove: ["lasso2d", "select2d"],
};

/** TensorBoard's smoothing: an exponential moving average, debiased at the start. */
export function ema(values, weight) {
  if (!weight) return values;
  const out = new Array(values.length);
  let last = 0;
  let n = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isFinite(v)) {
      out[i] = v;
      continue;
    }
    last = last * weight + (1 - weight) * v;
    n += 1;
    out[i] = last / (1 - weight ** n);
  }
  return out;
}

/** x values of a series: "step", "relative" (seconds since its first point) or "wall" time. */
export function xValues(series, mode) {
  if (mode === "wall") return series.timestamps.map((t) => new Date(t * 1000));
  if (mode === "relative") {
    const t0 = series.timestamps.length ? series.timestamps[0] : 0;
    return series.timestamps.map((t) => t - t0);
  }
  return series.steps;
}

export const X_TITLES = { step: "step", relative: "seconds since start", wall: "time" };

function rgba(hex, alpha) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255},${(n >> 8) & 255},${n & 255},${alpha})`;
}

/** The traces of one series: its line (smoothed over a faint raw line) and, when the
 * server downsampled it, the min/max band of each bucket so spikes stay visible. */
export function seriesTraces(series, { name, color, options, legend = false }) {
  const x = xValues(series, options.xMode);
  const values = series.values.map(num);
  const traces = [];
  const group = name;
  if (series.downsampled && series.min && series.max) {
    traces.push({
      x,
      y: series.max.map(num),
      type: "scatter",
      mode: "lines",
      line: { width: 0, color },
      hoverinfo: "skip",
      showlegend: false,
      legendgroup: group,
      name: `${name} max`,
    });
    traces.push({
      x,
      y: series.min.map(num),
      type: "scatter",
      mode: "lines",
      line: { width: 0, color },
      fill: "tonexty",
      fillcolor: rgba(color, 0.15),
      hoverinfo: "skip",
      showlegend: false,
      legendgroup: group,
      name: `${name} min`,
    });
  }
  const smoothing = options.smoothing || 0;
  if (smoothing > 0) {
    traces.push({
      x,
      y: values,
      type: "scatter",
      mode: "lines",
      line: { width: 1, color },
      opacity: 0.3,
      hoverinfo: "skip",
      showlegend: false,
      legendgroup: group,
      name: `${name} raw`,
    });
  }
  traces.push({
    x,
    y: ema(values, smoothing),
    type: "scatter",
    mode: values.length < 2 ? "markers" : "lines",
    line: { width: 1.6, color },
    marker: { color, size: 5 },
    name,
    legendgroup: group,
    showlegend: legend,
    hovertemplate: "%{y:.5g}<extra>" + escapeHover(name) + "</extra>",
  });
  return traces;
}

function escapeHover(text) {
  return String(text).replace(/[<>&]/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;" })[c]);
}

/** Draw or update a line chart, keeping the person's zoom across updates (uirevision). */
export async function drawLines(el, traces, options, { legend = false } = {}) {
  const Plotly = await loadPlotly();
  const layout = baseLayout({
    hovermode: "x unified",
    showlegend: legend,
    uirevision: `${options.xMode}|${options.logY}`,
  });
  layout.xaxis.title = { text: X_TITLES[options.xMode] || "step", standoff: 4 };
  layout.xaxis.type = options.xMode === "wall" ? "date" : "linear";
  layout.yaxis.type = options.logY ? "log" : "linear";
  await Plotly.react(el, traces, layout, CONFIG);
}

export async function purge(el) {
  if (window.Plotly) window.Plotly.purge(el);
}

/** Any other figure (bars, time lines) in the console's theme. */
export async function drawPlot(el, traces, layoutExtra = {}) {
  const Plotly = await loadPlotly();
  const top = {
    legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom", font: { size: 11 } },
    margin: { l: 56, r: 12, t: 28, b: 40 },
  };
  const layout = baseLayout({ ...top, ...layoutExtra });
  for (const axis of ["xaxis", "yaxis"])
    layout[axis] = { ...baseLayout()[axis], ...(layoutExtra[axis] || {}) };
  await Plotly.react(el, traces, layout, CONFIG);
  el.dataset.rendered = "1";
}
