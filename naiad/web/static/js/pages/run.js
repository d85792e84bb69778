// #/runs/ID: params, tags, live metric charts, system metrics, artifacts and the job's log.
import { api, path } from "../api.js";
import { h, link, kvTable, replace, table } from "../dom.js";
import { badge, fmtNum, fmtTime, fmtValue, span, TERMINAL } from "../format.js";
import { loadPlotly, PALETTE } from "../charts.js";
import { every } from "../poll.js";
import { chartOptions, loadOptions } from "../parts/chart_options.js";
import { MetricCharts } from "../parts/metric_charts.js";
import { artifactBrowser } from "../parts/artifacts.js";
import { logTail } from "../parts/log_tail.js";
import { actionButton, go } from "../parts/actions.js";
import { mayDelete } from "../session.js";

const SYSTEM = "system/";

function header(run, actions) {
  const job = run.tags["naiad.job"];
  const tuning = run.tags["naiad.tuning_job"];
  return [
    h(
      "div",
      { class: "crumbs" },
      link("#/experiments", "Experiments"),
      " / ",
      link(`#/experiments/${encodeURIComponent(run.experiment)}`, run.experiment),
      " / ",
    ),
    h(
      "div",
      { class: "head" },
      h(
        "div",
        {},
        h("h1", {}, run.name, badge(run.status)),
        h(
          "ul",
          { class: "facts" },
          h("li", {}, "id ", h("b", { class: "mono" }, run.id)),
          h("li", {}, "started ", h("b", {}, fmtTime(run.start_time))),
          run.end_time ? h("li", {}, "ended ", h("b", {}, fmtTime(run.end_time))) : null,
          h("li", {}, "duration ", h("b", {}, span(run.start_time, run.end_time))),
          job ? h("li", {}, "job ", link(`#/jobs/${encodeURIComponent(job)}`, job)) : null,
          tuning
            ? h(
                "li",
                {},
                `trial ${run.tags["naiad.trial"]} of `,
                link(`#/tuning/${encodeURIComponent(tuning)}`, tuning),
              )
            : null,
        ),
      ),
      h(
        "div",
        { class: "actions" },
        h(
          "a",
          { class: "button", href: `#/experiments/${encodeURIComponent(run.experiment)}` },
          "All runs of the experiment",
        ),
        actions,
      ),
    ),
    run.status_reason
      ? h("p", { class: run.status === "Failed" ? "alert" : "note" }, run.status_reason)
      : null,
  ];
}

function summaryTable(run) {
  const keys = Object.keys(run.metrics).sort();
  if (!keys.length) return h("p", { class: "muted" }, "No metrics yet.");
  const num = (x) => h("td", { class: "num" }, x);
  return table(
    [
      "Metric",
      ...["Last", "Min", "Max", "Step", "Points"].map((t) => h("th", { class: "num", scope: "col" }, t)),
    ],
    keys.map((k) => {
      const m = run.metrics[k];
      return h(
        "tr",
        {},
        h("td", { class: "mono" }, k),
        num(fmtNum(m.value)),
        num(fmtNum(m.min)),
        num(fmtNum(m.max)),
        num(fmtNum(m.step)),
        num(fmtNum(m.count)),
      );
    }),
  );
}

export default async function render(view) {
  loadPlotly().catch(() => {}); // plotly.js starts while the data comes; a failure shows per chart
  const { main, params, signal } = view;
  let run = await api(path("runs", params.id), { signal });
  view.title(run.name);
  const options = loadOptions();
  const me = [{ id: run.id, name: run.name, color: PALETTE[0] }];
  const charts = new MetricCharts({ runs: me, options, signal });
  const system = new MetricCharts({ runs: me, options, signal, maxPoints: 500 });
  const problem = h("div");
  const remove = mayDelete(run)
    ? actionButton(
        "Delete run",
        {
          action: "delete",
          problem,
          busy: "Deleting…",
          cls: "danger",
          ask: `Delete run ${run.name} with its metrics and artifacts? This cannot be undone.`,
        },
        async () => {
          await api(path("runs", run.id), { method: "DELETE", signal });
          go("experiments", run.experiment);
        },
      )
    : null;
  const top = h("div", {}, header(run, remove));
  const summary = h("div", {}, summaryTable(run));
  const noMetrics = h("p", { class: "muted" }, "No metrics logged yet.");
  const systemSection = h(
    "details",
    { class: "system", open: true },
    h("summary", {}, h("h2", { style: { display: "inline" } }, "System metrics")),
    system.el,
  );
  systemSection.hidden = true;

  const placeKeys = (keys) => {
    const user = keys.filter((k) => !k.startsWith(SYSTEM));
    const sys = keys.filter((k) => k.startsWith(SYSTEM));
    charts.setKeys(user);
    system.setKeys(sys);
    noMetrics.hidden = user.length > 0;
    systemSection.hidden = sys.length === 0;
  };
  placeKeys(await api(path("runs", run.id, "metrics"), { signal }));

  const job = run.tags["naiad.job"];
  const tags = Object.entries(run.tags).sort();
  replace(
    main,
    top,
    problem,
    h("h2", {}, "Metrics"),
    chartOptions(options, () => {
      charts.redraw();
      system.redraw();
    }),
    noMetrics,
    charts.el,
    systemSection,
    h(
      "div",
      { class: "grid2" },
      h(
        "section",
        {},
        h("h2", {}, "Params"),
        kvTable(
          Object.entries(run.params)
            .sort()
            .map(([k, v]) => [k, fmtValue(v)]),
          "No params.",
        ),
      ),
      h("section", {}, h("h2", {}, "Tags"), kvTable(tags, "No tags.")),
    ),
    h("h2", {}, "Latest values"),
    summary,
    h("h2", {}, "Artifacts"),
    artifactBrowser(run.id, signal),
    job ? [h("h2", {}, "Logs"), logTail(job, { signal, ranks: 0 })] : null,
  );

  if (TERMINAL.has(run.status)) return;
  every(
    2000,
    async () => {
      const [next, keys] = await Promise.all([
        api(path("runs", run.id), { signal }),
        api(path("runs", run.id, "metrics"), { signal }),
      ]);
      run = next;
      replace(top, header(run, remove));
      replace(summary, summaryTable(run));
      placeKeys(keys);
      await Promise.all([charts.refresh(), system.refresh()]);
      return !TERMINAL.has(run.status);
    },
    signal,
  );
}
