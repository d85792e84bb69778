// A grid of metric charts for one run or several overlaid (compare). Series come from the
// server downsampled (min/max per bucket) and load when a chart scrolls into view.
import { api, path } from "../api.js";
import { h, replace, errorBox } from "../dom.js";
import { drawLines, seriesTraces, purge } from "../charts.js";
import { pool } from "../poll.js";

export class MetricCharts {
  /** runs: [{id, name, color}]; options: shared chart options (see chart_options.js). */
  constructor({ runs, options, maxPoints = 1000, signal, wide = false }) {
    this.runs = runs;
    this.options = options;
    this.maxPoints = maxPoints;
    this.signal = signal;
    this.wide = wide;
    this.charts = new Map();
    this.el = h("div", { class: "charts" });
    this.observer = new IntersectionObserver((entries) => this.onVisible(entries), { rootMargin: "200px" });
    signal.addEventListener("abort", () => {
      this.observer.disconnect();
      for (const c of this.charts.values()) purge(c.plot);
    });
  }

  /** Add a chart for each key not shown yet (keys appear while a run trains). */
  setKeys(keys) {
    for (const key of keys) {
      if (this.charts.has(key)) continue;
      const plot = h("div", { class: "plot placeholder", dataset: { key } }, "Loading…");
      const points = h("span", { class: "muted small" });
      const card = h(
        "figure",
        { class: `chart${this.wide ? " wide" : ""}`, dataset: { key } },
        h("h3", {}, h("span", {}, key), points),
        plot,
      );
      card.style.margin = "0";
      const chart = { key, card, plot, points, series: new Map(), visible: false, loaded: false };
      this.charts.set(key, chart);
      this.el.append(card);
      this.observer.observe(card);
    }
  }

  onVisible(entries) {
    for (const entry of entries) {
      const chart = this.charts.get(entry.target.dataset.key);
      if (!chart) continue;
      chart.visible = entry.isIntersecting;
      if (chart.visible && !chart.loaded) {
        chart.loaded = true;
        this.load(chart).catch((err) => this.fail(chart, err));
      }
    }
  }

  fail(chart, err) {
    if (err.name === "AbortError") return;
    replace(chart.plot, errorBox(err));
    chart.plot.classList.add("placeholder");
  }

  async load(chart) {
    await pool(this.runs, 4, async (run) => {
      const series = await api(path("runs", run.id, "metrics", chart.key), {
        query: { max_points: this.maxPoints },
        signal: this.signal,
      }).catch((err) => {
        if (err.status === 404 && this.runs.length > 1) return null; // that run lacks the key
        throw err;
      });
      if (series) chart.series.set(run.id, series);
    });
    await this.draw(chart);
  }

  async draw(chart) {
    if (this.signal.aborted) return;
    const legend = this.runs.length > 1;
    const traces = [];
    let total = 0;
    for (const run of this.runs) {
      const series = chart.series.get(run.id);
      if (!series) continue;
      total += series.total_points;
      traces.push(
        ...seriesTraces(series, { name: run.name, color: run.color, options: this.options, legend }),
      );
    }
    if (chart.plot.classList.contains("placeholder")) {
      chart.plot.classList.remove("placeholder");
      chart.plot.replaceChildren();
    }
    await drawLines(chart.plot, traces, this.options, { legend });
    chart.points.textContent = `${total.toLocaleString("en-US")} points`;
    chart.plot.dataset.points = String(total);
    if (!chart.plot.dataset.rendered) {
      chart.plot.dataset.rendered = "1";
      performance.mark(`naiad:chart:${chart.key}`);
    }
  }

  /** Redraw every loaded chart (chart options changed). */
  redraw() {
    for (const chart of this.charts.values())
      if (chart.series.size) this.draw(chart).catch((e) => this.fail(chart, e));
  }

  /** Fetch again the charts on screen (a live run). */
  async refresh() {
    const live = [...this.charts.values()].filter((c) => c.loaded && c.visible);
    await pool(live, 3, (chart) => this.load(chart).catch((err) => this.fail(chart, err)));
  }
}
