// #/endpoints/NAME: variants and their traffic weights, replicas, batching, the rollout,
// autoscaling and its decisions, and live figures: requests/s, latency percentiles,
// errors, batch sizes. Windows up to five minutes chart the server's second-by-second
// points; longer ones its saved minutes. For an editor: Update to another version of the
// model it serves, Roll back to the version before, and Delete.
import { api, path } from "../api.js";
import { h, link, kvTable, replace, table, errorBox } from "../dom.js";
import { badge, fmtNum, fmtTime } from "../format.js";
import { loadPlotly, PALETTE, drawPlot, purge } from "../charts.js";
import { every } from "../poll.js";
import { timeline } from "../parts/timeline.js";
import { actionButton, field, formButton, go, versionSelect } from "../parts/actions.js";
import { may, mayDelete } from "../session.js";

/** A variant's share of the traffic, as a percentage of all the weights. */
export function share(variant, variants) {
  const total = variants.reduce((a, v) => a + v.weight, 0);
  return total > 0 ? `${Math.round((variant.weight / total) * 1000) / 10}%` : "0%";
}

const ms = (x) => (x === null || x === undefined ? "–" : `${fmtNum(x)} ms`);
const WINDOWS = [
  [10, "last 10 s"],
  [60, "last 60 s"],
  [300, "last 5 min"],
  [3600, "last hour"],
  [86400, "last day"],
  [7 * 86400, "last 7 days"],
];
const LIVE_MAX = 600; // the longest window the live figures cover (the server keeps 10 min)
const modelLink = (ref) => link(`#/models/${encodeURIComponent(ref.split(/[:@]/)[0])}`, ref);

function variantsTable(variants) {
  const heads = [
    "Variant",
    "Model",
    ...["Weight", "Traffic", "Replicas healthy", "Restarts"].map((t) =>
      h("th", { class: "num", scope: "col" }, t),
    ),
  ];
  return table(
    heads,
    variants.map((v) =>
      h(
        "tr",
        {},
        h("td", {}, v.name),
        h("td", {}, modelLink(v.model)),
        h("td", { class: "num" }, fmtNum(v.weight)),
        h("td", { class: "num" }, share(v, variants)),
        h("td", { class: "num" }, replicasText(v)),
        h("td", { class: "num" }, String(v.live.reduce((a, r) => a + r.restarts, 0))),
      ),
    ),
    { class: "variants" },
  );
}

/** "healthy / count", and the autoscaling bounds when the count follows the load. */
function replicasText(v) {
  const count = `${v.live.filter((r) => r.healthy).length} / ${v.replicas}`;
  const a = v.autoscaling;
  return a ? `${count} (${a.min_replicas}–${a.max_replicas})` : count;
}

const secs = (s) => `${fmtNum(s)} s`;

function policyTable(v) {
  const a = v.autoscaling;
  const rows = [
    ["replicas", `${a.min_replicas}–${a.max_replicas}`],
    ["target in flight per replica", fmtNum(a.target_in_flight)],
    ["scale up after", secs(a.scale_up_after_s)],
    ["scale down after", secs(a.scale_down_after_s)],
    ["cool-down", secs(a.cooldown_s)],
  ];
  if (a.min_replicas === 0) {
    rows.push(
      ["to zero after idle", secs(a.idle_after_s)],
      ["cold start timeout", secs(a.cold_start_timeout_s)],
    );
  }
  return h("section", {}, h("h3", {}, v.name), kvTable(rows));
}

/** Each autoscaled variant's policy, and the keeper's latest decisions, newest first. */
function scalingSection(ep) {
  const scaled = ep.variants.filter((v) => v.autoscaling);
  const events = ep.scaling_events || [];
  if (!scaled.length && !events.length) return null;
  const items = events
    .slice()
    .reverse()
    .map((e) =>
      h(
        "li",
        {},
        h("b", {}, `${e.variant}: ${e.from_replicas} → ${e.to_replicas}`),
        h("span", { class: "when" }, fmtTime(e.at)),
        h("span", { class: "why" }, e.reason),
      ),
    );
  return h(
    "section",
    { class: "autoscaling" },
    h("h2", {}, "Autoscaling"),
    h("div", { class: "grid2" }, scaled.map(policyTable)),
    h("h3", {}, "Decisions"),
    items.length
      ? h("ol", { class: "timeline scaling" }, items)
      : h("p", { class: "muted" }, "No autoscaling decisions yet."),
  );
}

function kpi(label, value) {
  return h("div", { class: "kpi" }, h("div", { class: "v" }, value), h("div", { class: "k" }, label));
}

function figuresTable(m) {
  return table(
    [
      "Variant",
      "req/s",
      "p50",
      "p95",
      "p99",
      "proxy p50",
      "proxy p99",
      "Requests",
      "Errors (5xx)",
      "Refused (4xx)",
      "Queue",
      "In flight",
    ].map((t, i) => (i ? h("th", { class: "num", scope: "col" }, t) : t)),
    m.variants.map((v) =>
      h(
        "tr",
        {},
        h("td", {}, v.variant),
        ...[
          fmtNum(v.rps),
          ms(v.latency.p50_ms),
          ms(v.latency.p95_ms),
          ms(v.latency.p99_ms),
          ms(v.proxy_latency.p50_ms),
          ms(v.proxy_latency.p99_ms),
          fmtNum(v.requests),
          fmtNum(v.errors),
          fmtNum(v.client_errors),
          fmtNum(v.queue_depth),
          fmtNum(v.in_flight),
        ].map((x) => h("td", { class: "num" }, x)),
      ),
    ),
    { class: "figures" },
  );
}

/** `history` is variant -> points: live seconds, or steps of saved minutes. */
async function drawCharts(els, m, history) {
  const names = Object.keys(history);
  const color = (i) => PALETTE[i % PALETTE.length];
  const at = (points) => points.map((p) => new Date(p.at * 1000));
  await drawPlot(
    els.rps,
    names.flatMap((n, i) => [
      {
        x: at(history[n]),
        y: history[n].map((p) => p.rps),
        type: "scatter",
        mode: "lines",
        name: `${n} req/s`,
        line: { color: color(i) },
      },
      {
        x: at(history[n]),
        y: history[n].map((p) => p.errors),
        type: "scatter",
        mode: "lines",
        name: `${n} errors`,
        line: { color: color(i), dash: "dot" },
      },
    ]),
    {
      xaxis: { type: "date" },
      yaxis: { title: { text: "per second / errors" }, rangemode: "tozero" },
      hovermode: "x unified",
      uirevision: "rps",
    },
  );
  await drawPlot(
    els.latency,
    names.flatMap((n, i) => [
      {
        x: at(history[n]),
        y: history[n].map((p) => p.p50_ms),
        type: "scatter",
        mode: "lines+markers",
        name: `${n} p50`,
        line: { color: color(i) },
        connectgaps: true,
        marker: { size: 4 },
      },
      {
        x: at(history[n]),
        y: history[n].map((p) => p.p99_ms),
        type: "scatter",
        mode: "lines+markers",
        name: `${n} p99`,
        line: { color: color(i), dash: "dash" },
        connectgaps: true,
        marker: { size: 4 },
      },
    ]),
    {
      xaxis: { type: "date" },
      yaxis: { title: { text: "ms" }, rangemode: "tozero" },
      hovermode: "x unified",
      uirevision: "latency",
    },
  );
  const bars = m.variants.map((v, i) => ({ v, i })).filter(({ v }) => Object.keys(v.batch_sizes).length);
  await drawPlot(
    els.batches,
    bars.map(({ v, i }) => ({
      type: "bar",
      name: v.variant,
      x: Object.keys(v.batch_sizes),
      y: Object.values(v.batch_sizes),
      marker: { color: color(i) },
    })),
    {
      barmode: "group",
      xaxis: { title: { text: "rows per batch" }, type: "category" },
      yaxis: { title: { text: `batches, last ${fmtNum(m.window_s)} s` }, rangemode: "tozero" },
      uirevision: "batches",
      showlegend: bars.length > 1,
      annotations: bars.length
        ? []
        : [
            {
              text: "No batches in the window",
              showarrow: false,
              xref: "paper",
              yref: "paper",
              x: 0.5,
              y: 0.5,
            },
          ],
    },
  );
}

/** The one model version an endpoint serves ("NAME:VERSION"); "" while it serves several
 * variants or rolls out, when Update and Roll back do not apply. */
function servedModel(ep) {
  return ep.variants.length === 1 && !(ep.pending_variants || []).length ? ep.variants[0].model : "";
}

/** Update, Roll back and Delete for `ep`; `versions`: the served model's, newest first. */
function endpointActions(ep, versions, { signal, problem, forms, changed }) {
  const served = servedModel(ep);
  const model = served.slice(0, served.lastIndexOf(":"));
  const now = Number(served.slice(served.lastIndexOf(":") + 1));
  const variant = ep.variants[0];
  const rollTo = async (version) => {
    // the served variant as it is, on another version of its model
    const spec = { model: `${model}:${version}`, replicas: Math.max(1, variant.replicas) };
    if (variant.autoscaling) spec.autoscaling = variant.autoscaling;
    const body = { variants: [spec] };
    changed(await api(path("endpoints", ep.name), { method: "PATCH", body, signal }));
  };
  const others = versions.filter((v) => v.version !== now);
  const before = versions.find((v) => v.version < now); // newest first: the one deployed before
  const out = [];
  if (others.length)
    out.push(
      formButton(
        "Update",
        {
          action: "update",
          slot: forms,
          title: `Serve another version of ${model} at ${ep.name}`,
          submit: "Roll out",
          fields: () => [field("Version", versionSelect(others, others[0].version))],
        },
        (data) => rollTo(data.get("version")),
      ),
    );
  if (before)
    out.push(
      actionButton(
        `Roll back to v${before.version}`,
        { action: "rollback", problem, busy: "Rolling back…" },
        () => rollTo(before.version),
      ),
    );
  if (mayDelete(ep))
    out.push(
      actionButton(
        "Delete",
        {
          action: "delete",
          problem,
          busy: "Deleting…",
          cls: "danger",
          ask: `Delete endpoint ${ep.name}? Its replicas stop and its URL stops answering.`,
        },
        async () => {
          await api(path("endpoints", ep.name), { method: "DELETE", signal });
          go("endpoints");
        },
      ),
    );
  return out;
}

export default async function render(view) {
  loadPlotly().catch(() => {}); // plotly.js starts while the data comes; a failure shows per chart
  const { main, params, signal } = view;
  const name = params.name;
  view.title(name);
  let seconds = 10;
  let ep = await api(path("endpoints", name), { signal });
  const top = h("div");
  const config = h("div");
  const live = h("div");
  const problem = h("div");
  const refused = h("div"); // an action's failure; the refresh clears `problem` as it answers
  const forms = h("div");
  const actions = h("div", { class: "actions" });
  let actionsFor = null; // what the actions were drawn for: the served model, or ""
  const drawActions = async () => {
    const served = ep.status === "Deleting" ? "deleting" : servedModel(ep);
    if (!may("editor", ep.project) || served === actionsFor) return;
    actionsFor = served;
    let versions = [];
    if (served && served !== "deleting") {
      const model = served.slice(0, served.lastIndexOf(":"));
      try {
        versions = await api(path("models", model, "versions"), { signal });
      } catch (err) {
        actionsFor = null; // asked again at the next refresh
        if (err.name !== "AbortError") replace(refused, errorBox(err));
        return;
      }
      versions.sort((a, b) => b.version - a.version);
    }
    const changed = (next) => {
      ep = next;
      replace(forms);
      drawEndpoint();
      drawActions();
    };
    const state = { signal, problem: refused, forms, changed };
    replace(actions, served === "deleting" ? null : endpointActions(ep, versions, state));
  };
  const els = {
    rps: h("div", { class: "plot" }),
    latency: h("div", { class: "plot" }),
    batches: h("div", { class: "plot" }),
  };
  signal.addEventListener("abort", () => Object.values(els).forEach(purge));

  const drawEndpoint = () => {
    replace(
      top,
      h("div", { class: "crumbs" }, link("#/endpoints", "Endpoints"), " / "),
      h(
        "div",
        { class: "head" },
        h(
          "div",
          {},
          h("h1", {}, ep.name, badge(ep.status)),
          h(
            "ul",
            { class: "facts" },
            h("li", {}, "POST ", h("b", { class: "mono" }, ep.url)),
            h("li", {}, "created ", h("b", {}, fmtTime(ep.created_at))),
            h("li", {}, "updated ", h("b", {}, fmtTime(ep.updated_at))),
          ),
        ),
        actions,
      ),
      ep.status_reason
        ? h("p", { class: ep.status === "Failed" ? "alert" : "note" }, ep.status_reason)
        : null,
    );
    replace(
      config,
      h("h2", {}, "Variants"),
      variantsTable(ep.variants),
      ep.pending_variants && ep.pending_variants.length
        ? [h("h3", {}, "Rolling out to"), variantsTable(ep.pending_variants)]
        : null,
      h(
        "div",
        { class: "grid2" },
        h(
          "section",
          {},
          h("h2", {}, "Batching"),
          kvTable([
            ["max batch", fmtNum(ep.batching.max_batch)],
            ["max delay", `${fmtNum(ep.batching.max_delay_ms)} ms`],
            ["queue size", fmtNum(ep.batching.queue_size)],
            ["captured requests", `${fmtNum(ep.capture.fraction * 100)}%`],
          ]),
        ),
        h("section", {}, h("h2", {}, "Timeline"), timeline(ep.transitions, true)),
      ),
      scalingSection(ep),
    );
  };

  const refresh = async () => {
    const saved = seconds > LIVE_MAX;
    const [next, m, past] = await Promise.all([
      api(path("endpoints", name), { signal }),
      api(path("endpoints", name, "metrics"), {
        query: { window: Math.min(seconds, LIVE_MAX), points: 120 },
        signal,
      }),
      saved
        ? api(path("endpoints", name, "metrics", "history"), { query: { since: seconds }, signal })
        : null,
    ]).catch((err) => {
      if (err.name !== "AbortError") replace(problem, errorBox(err));
      return [null, null, null];
    });
    if (!next) return true;
    replace(problem);
    ep = next;
    drawEndpoint();
    drawActions();
    const rps = m.variants.reduce((a, v) => a + v.rps, 0);
    replace(
      live,
      h(
        "div",
        { class: "kpis" },
        kpi("requests/s", fmtNum(rps)),
        kpi("requests", fmtNum(m.variants.reduce((a, v) => a + v.requests, 0))),
        kpi("errors (5xx)", fmtNum(m.variants.reduce((a, v) => a + v.errors, 0))),
        kpi("refused (4xx)", fmtNum(m.variants.reduce((a, v) => a + v.client_errors, 0))),
        kpi("unavailable (503)", fmtNum(m.unavailable)),
        kpi("retried", fmtNum(m.retries)),
      ),
      m.variants.length ? figuresTable(m) : h("p", { class: "muted" }, "No figures yet."),
    );
    await drawCharts(els, m, saved ? past.variants : m.history);
    return true;
  };

  const windowPick = h(
    "select",
    {
      name: "window",
      "aria-label": "Window",
      onchange: (e) => {
        seconds = Number(e.target.value);
        refresh();
      },
    },
    WINDOWS.map(([s, label]) => h("option", { value: String(s), selected: s === seconds }, label)),
  );
  drawEndpoint();
  await drawActions();
  replace(
    main,
    top,
    problem,
    refused,
    forms,
    config,
    h("div", { class: "head section" }, h("h2", {}, "Live"), windowPick),
    live,
    h(
      "div",
      { class: "charts" },
      h(
        "figure",
        { class: "chart", style: { margin: 0 } },
        h("h3", {}, "Requests and errors per second"),
        els.rps,
      ),
      h(
        "figure",
        { class: "chart", style: { margin: 0 } },
        h("h3", {}, "Latency (inside the replicas)"),
        els.latency,
      ),
      h("figure", { class: "chart", style: { margin: 0 } }, h("h3", {}, "Batch sizes"), els.batches),
    ),
  );
  await refresh();
  every(2000, refresh, signal);
}
