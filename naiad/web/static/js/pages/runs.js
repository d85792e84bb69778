// #/experiments/NAME and #/runs: the runs table. Sorting, filtering and paging happen on
// the server (POST /runs/search), so 10,000 runs scroll like 10.
import { api, path } from "../api.js";
import { h, link, errorBox, replace } from "../dom.js";
import { badge, fmtNum, fmtTime, fmtValue, span } from "../format.js";
import { setQuery } from "../router.js";
import { VirtualTable } from "../parts/vtable.js";
import { columnChooser } from "../parts/columns.js";
import { rankMetrics } from "../parts/metric_rank.js";

const MAX_COMPARE = 20;

/** metrics.`odd key` when the key has characters the filter grammar does not take bare. */
export function field(kind, key) {
  if (kind === "attributes") return key;
  return /^[A-Za-z_][\w\-./:]*$/.test(key) ? `${kind}.${key}` : `${kind}.\`${key}\``;
}

function quote(text) {
  return `'${text.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
}

/** What a person types in a column's filter box, as a clause of the search language:
 * "> 0.9", "adam", "ad%", "!= sgd", "0.001". */
export function clause(kind, key, text) {
  const raw = text.trim();
  if (!raw) return null;
  const m = /^(<=|>=|!=|=|<|>)\s*(.*)$/.exec(raw);
  let op = m ? m[1] : null;
  let value = m ? m[2].trim() : raw;
  const numeric = value !== "" && !Number.isNaN(Number(value));
  const quoted = /^(['"]).*\1$/.test(value);
  if (!op)
    op =
      value.includes("%") && !numeric
        ? "like"
        : kind === "attributes" && key === "name" && !numeric
          ? "like"
          : "=";
  if (op === "like" && !value.includes("%") && !quoted) value = `%${value}%`;
  let literal;
  if (quoted) literal = value;
  else if (kind === "metrics" || (kind === "params" && numeric && op !== "like")) literal = value;
  else literal = quote(value);
  return `${field(kind, key)} ${op} ${literal}`;
}

const BASE = [
  {
    id: "name",
    kind: null,
    key: "name",
    label: "Name",
    width: 220,
    sort: true,
    filter: true,
    placeholder: "contains",
  },
  {
    id: "status",
    kind: null,
    key: "status",
    label: "Status",
    width: 110,
    sort: true,
    filter: true,
    placeholder: "= Running",
  },
  { id: "start_time", kind: null, key: "start_time", label: "Started", width: 190, sort: true },
  { id: "duration", kind: null, key: "duration", label: "Duration", width: 110 },
];

function dynamicColumn(id) {
  const dot = id.indexOf(".");
  const kind = id.slice(0, dot);
  const key = id.slice(dot + 1);
  const cell = {
    params: (r) => fmtValue(r.params[key]),
    metrics: (r) => (r.metrics[key] ? fmtNum(r.metrics[key].value) : ""),
    tags: (r) => r.tags[key] ?? "",
  }[kind];
  return {
    id,
    kind,
    key,
    label: key,
    width: 130,
    sort: true,
    filter: true,
    cell,
    className: kind === "metrics" ? "num" : null,
    placeholder: kind === "metrics" ? "> 0.9" : kind === "params" ? "= value" : "value",
  };
}

export default async function render(view) {
  const { main, params, query, signal } = view;
  const experiment = params.name || null;
  view.title(experiment ? `Runs of ${experiment}` : "All runs");
  const info = experiment ? await api(path("experiments", experiment), { signal }) : null;

  const storeKey = `naiad.columns.${experiment || "*"}`;
  const stored = JSON.parse(localStorage.getItem(storeKey) || "null");
  let chosen = stored || [];
  const known = { params: new Set(), metrics: new Set(), tags: new Set() };
  const selected = new Set((query.get("sel") || "").split(",").filter(Boolean));
  const filters = {};
  for (const [k, v] of query) if (k.startsWith("f.")) filters[k.slice(2)] = v;
  let expression = query.get("filter") || "";
  let sort = query.get("sort")
    ? { key: query.get("sort"), dir: query.get("dir") === "ASC" ? "ASC" : "DESC" }
    : null;

  const problem = h("div");
  const count = h("span", { class: "muted", "aria-live": "polite" });
  const composed = h("code", { class: "small" });
  const compareButton = h(
    "a",
    { class: "button primary", href: "#/compare", "aria-disabled": "true" },
    "Compare",
  );

  const select = {
    id: "select",
    label: "",
    width: 44,
    header: () => h("span", { class: "muted small" }, "✓"),
    cell: (r) =>
      h("input", {
        type: "checkbox",
        checked: selected.has(r.id),
        "aria-label": `Select ${r.name}`,
        onchange: (e) => {
          if (e.target.checked) selected.add(r.id);
          else selected.delete(r.id);
          e.target.closest("tr").classList.toggle("selected", e.target.checked);
          updateSelection();
        },
      }),
  };
  const base = BASE.map((c) => ({
    ...c,
    kind: null,
    cell: {
      name: (r) => link(`#/runs/${encodeURIComponent(r.id)}`, r.name),
      status: (r) => badge(r.status),
      start_time: (r) => fmtTime(r.start_time),
      duration: (r) => span(r.start_time, r.end_time),
    }[c.id],
  }));
  // Metrics first, then params, then tags: the figures that rank runs stay on screen
  // however many params a sweep has.
  const KIND_ORDER = { metrics: 0, params: 1, tags: 2 };
  const byKind = (ids) =>
    [...ids].sort((a, b) => KIND_ORDER[a.split(".")[0]] - KIND_ORDER[b.split(".")[0]]);
  const columns = () => [select, ...base, ...byKind(chosen).map(dynamicColumn)];

  const kindOf = (c) => (c.kind ? c.kind : "attributes");
  const fullFilter = () => {
    const clauses = [];
    if (expression.trim()) clauses.push(expression.trim());
    for (const c of columns())
      if (filters[c.id]) {
        const cl = clause(kindOf(c), c.key, filters[c.id]);
        if (cl) clauses.push(cl);
      }
    return clauses.join(" and ");
  };
  const orderBy = () => {
    if (!sort) return [];
    const c = columns().find((x) => x.id === sort.key);
    if (!c) return [];
    return [`${field(kindOf(c), c.key)} ${sort.dir}`];
  };

  const saveQuery = () => {
    const q = new URLSearchParams();
    if (expression) q.set("filter", expression);
    if (sort) {
      q.set("sort", sort.key);
      q.set("dir", sort.dir);
    }
    for (const [k, v] of Object.entries(filters)) if (v) q.set(`f.${k}`, v);
    if (selected.size) q.set("sel", [...selected].join(","));
    setQuery(q);
  };

  function updateSelection() {
    const n = selected.size;
    const ok = n >= 2 && n <= MAX_COMPARE;
    compareButton.textContent = n ? `Compare ${n} runs` : "Compare";
    compareButton.href = ok
      ? `#/compare?runs=${[...selected].map(encodeURIComponent).join(",")}`
      : "#/compare";
    compareButton.setAttribute("aria-disabled", ok ? "false" : "true");
    compareButton.title = ok ? "" : `Select 2 to ${MAX_COMPARE} runs to compare them.`;
    saveQuery();
  }
  compareButton.addEventListener("click", (e) => {
    if (compareButton.getAttribute("aria-disabled") === "true") {
      e.preventDefault();
      replace(
        problem,
        h(
          "p",
          { class: "note", role: "status" },
          `Select 2 to ${MAX_COMPARE} runs with the checkboxes to compare them.`,
        ),
      );
    }
  });

  const reload = () => {
    replace(problem);
    composed.textContent = fullFilter() ? `filter: ${fullFilter()}` : "";
    saveQuery();
    table.reset();
  };

  const table = new VirtualTable({
    columns: columns(),
    signal,
    sort,
    filters,
    rowClass: (r) => (selected.has(r.id) ? "selected" : null),
    fetchPage: (offset, limit, sig) =>
      api("/runs/search", {
        method: "POST",
        body: { experiment, filter: fullFilter() || null, order_by: orderBy(), offset, limit },
        signal: sig,
      }),
    onLoaded: (page, first) => {
      for (const r of page.items) {
        for (const k of Object.keys(r.params)) known.params.add(k);
        for (const k of Object.keys(r.metrics)) known.metrics.add(k);
        for (const k of Object.keys(r.tags)) known.tags.add(k);
      }
      count.textContent = `${page.total.toLocaleString("en-US")} run${page.total === 1 ? "" : "s"}`;
      if (first && !stored && !chosen.length) {
        chosen = [
          ...rankMetrics(known.metrics)
            .slice(0, 4)
            .map((k) => `metrics.${k}`),
          ...[...known.params].slice(0, 4).map((k) => `params.${k}`),
        ];
        if (chosen.length) table.setColumns(columns());
      }
    },
    onError: (err) => {
      replace(problem, errorBox(err));
      count.textContent = "";
    },
    onSort: (c) => {
      const next = !sort || sort.key !== c.id ? "ASC" : sort.dir === "ASC" ? "DESC" : null;
      sort = next ? { key: c.id, dir: next } : null;
      table.sort = sort;
      table.renderHead();
      reload();
    },
    onFilter: (c, text) => {
      filters[c.id] = text;
      reload();
    },
  });

  const chooser = columnChooser({
    known,
    chosen: () => chosen,
    onChange: (ids) => {
      chosen = ids;
      localStorage.setItem(storeKey, JSON.stringify(chosen));
      for (const k of Object.keys(filters)) if (!columns().some((c) => c.id === k)) delete filters[k];
      table.setColumns(columns());
      reload();
    },
  });

  const exprInput = h("input", {
    type: "search",
    name: "filter",
    value: expression,
    "aria-label": "Filter expression",
    placeholder: "metrics.acc > 0.9 and params.optimizer = 'adam'",
  });
  const form = h(
    "form",
    {
      class: "toolbar",
      role: "search",
      onsubmit: (e) => {
        e.preventDefault();
        expression = exprInput.value;
        reload();
      },
    },
    h("div", { class: "grow" }, exprInput),
    h("button", { type: "submit" }, "Filter"),
    chooser,
    compareButton,
  );

  const title = experiment
    ? [
        h("div", { class: "crumbs" }, link("#/experiments", "Experiments"), " / "),
        h("h1", {}, experiment, count),
        info && info.description ? h("p", { class: "muted" }, info.description) : null,
      ]
    : [
        h("div", { class: "crumbs" }, link("#/experiments", "Experiments"), " / "),
        h("h1", {}, "All runs", count),
      ];
  replace(main, ...title, form, composed, problem, table.el);
  composed.textContent = fullFilter() ? `filter: ${fullFilter()}` : "";
  updateSelection();
  table.render(true);
}
