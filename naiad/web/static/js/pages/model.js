// #/models/NAME: versions, aliases, evaluations side by side with their confusion
// matrices, and each version's lineage: data -> job -> run -> version -> endpoints serving it.
// For an editor: Set alias, and Deploy a version as a new endpoint.
import { api, path } from "../api.js";
import { h, link, replace, table, errorBox } from "../dom.js";
import { badge, fmtBytes, fmtNum, fmtTime } from "../format.js";
import { pool } from "../poll.js";
import { confusionMatrix } from "../parts/confusion.js";
import { field, formButton, go, nameInput, versionSelect } from "../parts/actions.js";
import { may } from "../session.js";

const arrow = () => h("span", { class: "arrow", "aria-hidden": "true" }, "→");

function lineage(name, v, serving) {
  const l = v.lineage;
  const steps = [];
  // the table channels the job read: source, rows and fingerprint (docs/data.md)
  const data = Object.entries(l.data || {}).sort(([a], [b]) => a.localeCompare(b));
  if (data.length)
    steps.push(
      h(
        "span",
        { class: "lineage-data" },
        data.map(([channel, d], i) => [
          i ? ", " : "",
          `${channel}: `,
          h("span", { class: "mono", title: d.fingerprint }, d.source),
          ` (${fmtNum(d.rows)} rows, ${String(d.fingerprint || "").slice(7, 19)})`,
        ]),
      ),
    );
  if (l.derived_from)
    steps.push(
      h(
        "span",
        {},
        "from ",
        link(`#/models/${encodeURIComponent(l.derived_from.split(":")[0])}`, l.derived_from),
      ),
    );
  if (l.job) steps.push(h("span", {}, "job ", link(`#/jobs/${encodeURIComponent(l.job)}`, l.job)));
  if (l.run_id) steps.push(h("span", {}, link(`#/runs/${encodeURIComponent(l.run_id)}`, "run")));
  steps.push(h("b", {}, `${name}:${v.version}`));
  if (serving.length) {
    steps.push(
      h(
        "span",
        {},
        "endpoint ",
        serving.map((e, i) => [i ? ", " : "", link(`#/endpoints/${encodeURIComponent(e)}`, e)]),
      ),
    );
  }
  return h(
    "div",
    { class: "lineage" },
    steps.flatMap((s, i) => (i ? [arrow(), s] : [s])),
  );
}

function evaluationCard(v, e) {
  const metrics = Object.entries(e.metrics).sort();
  return h(
    "article",
    { class: "card evaluation", dataset: { version: String(v.version) } },
    h(
      "h3",
      {},
      `v${v.version}`,
      " ",
      v.aliases.map((a) => h("span", { class: "chip" }, a)),
      " ",
      badge(e.status),
    ),
    h(
      "p",
      { class: "muted small" },
      "on ",
      h("span", { class: "mono" }, e.input),
      " · job ",
      link(`#/jobs/${encodeURIComponent(e.job)}`, e.job),
    ),
    metrics.length
      ? h(
          "table",
          { class: "kv" },
          h(
            "tbody",
            {},
            metrics.map(([k, x]) =>
              h("tr", {}, h("th", { scope: "row" }, k), h("td", { class: "num" }, fmtNum(x))),
            ),
          ),
        )
      : h("p", { class: "muted" }, e.status === "Completed" ? "No metrics." : "Not finished yet."),
    e.confusion_matrix
      ? [h("h3", {}, "Confusion matrix"), confusionMatrix(e.confusion_matrix, v.classes)]
      : null,
  );
}

export default async function render(view) {
  const { main, params, signal } = view;
  const name = params.name;
  view.title(name);
  const [model, versions] = await Promise.all([
    api(path("models", name), { signal }),
    api(path("models", name, "versions"), { signal }),
  ]);
  versions.sort((a, b) => b.version - a.version);
  // Endpoints are optional here: lineage just stops at the version without them.
  const endpoints = await api("/endpoints", { signal }).catch(() => []);
  const servingOf = (v) =>
    endpoints
      .filter((e) =>
        [...e.variants, ...(e.pending_variants || [])].some((x) => x.model === `${name}:${v.version}`),
      )
      .map((e) => e.name);
  const evaluations = await pool(versions, 4, (v) =>
    api(path("models", name, "versions", v.version, "evaluations"), { signal }).catch((err) => ({
      error: err,
    })),
  );

  const rows = versions.map((v) =>
    h(
      "tr",
      {},
      h("td", { class: "num" }, `v${v.version}`),
      h(
        "td",
        {},
        v.aliases.map((a) => h("span", { class: "chip" }, a)),
      ),
      h("td", {}, v.format, v.quantization ? h("span", { class: "chip" }, v.quantization) : null),
      h("td", { class: "mono small" }, v.signature ? describe(v.signature.inputs) : "any"),
      h("td", { class: "num" }, fmtBytes(v.size_bytes)),
      h("td", {}, lineage(name, v, servingOf(v))),
      h("td", {}, fmtTime(v.created_at)),
    ),
  );

  const cards = [];
  versions.forEach((v, i) => {
    const got = evaluations[i];
    if (got.error) cards.push(h("div", { class: "card" }, h("h3", {}, `v${v.version}`), errorBox(got.error)));
    else for (const e of got) cards.push(evaluationCard(v, e));
  });

  const forms = h("div");
  replace(
    main,
    h("div", { class: "crumbs" }, link("#/models", "Models"), " / "),
    h(
      "div",
      { class: "head" },
      h(
        "div",
        {},
        h("h1", {}, name),
        h(
          "ul",
          { class: "facts" },
          h("li", {}, "latest ", h("b", {}, `v${model.latest_version}`)),
          Object.entries(model.aliases).map(([a, v]) => h("li", {}, `${a} → `, h("b", {}, `v${v}`))),
          h("li", {}, "created ", h("b", {}, fmtTime(model.created_at))),
        ),
      ),
      may("editor", model.project) && versions.length ? actions(view, name, versions, forms) : null,
    ),
    forms,
    h("h2", {}, "Versions and lineage"),
    table(
      [
        "Version",
        "Aliases",
        "Format",
        "Input",
        h("th", { class: "num", scope: "col" }, "Size"),
        "Lineage (job → run → version → endpoint)",
        "Registered",
      ],
      rows,
    ),
    h("h2", {}, "Evaluations"),
    cards.length
      ? h("div", { class: "cards evaluations" }, cards)
      : h("p", { class: "empty" }, `No evaluations yet: naiad models evaluate ${name}:VERSION --input DATA.`),
  );
}

/** Set alias (PUT .../aliases/ALIAS) and Deploy (POST /endpoints), each a small form. */
function actions(view, name, versions, forms) {
  const { signal } = view;
  const latest = versions[0].version;
  const setAlias = formButton(
    "Set alias",
    {
      action: "alias",
      slot: forms,
      title: `Point an alias of ${name} at a version`,
      submit: "Save",
      fields: () => [
        field("Alias", nameInput("alias")),
        field("Version", versionSelect(versions, latest)),
      ],
    },
    async (data) => {
      const alias = data.get("alias").trim();
      const body = { version: Number(data.get("version")) };
      await api(path("models", name, "aliases", alias), { method: "PUT", body, signal });
      await render(view); // the facts and the versions table show the alias
    },
  );
  const deploy = formButton(
    "Deploy",
    {
      action: "deploy",
      slot: forms,
      title: `Serve a version of ${name} at a new endpoint`,
      submit: "Deploy",
      fields: () => [
        field("Endpoint name", nameInput("endpoint")),
        field("Version", versionSelect(versions, latest)),
      ],
    },
    async (data) => {
      const endpoint = data.get("endpoint").trim();
      const variants = [{ model: `${name}:${data.get("version")}` }];
      await api("/endpoints", { method: "POST", body: { name: endpoint, variants }, signal });
      go("endpoints", endpoint);
    },
  );
  return h("div", { class: "actions" }, setAlias, deploy);
}

function describe(spec) {
  const dims = spec.shape.map((d, i) => (i === 0 && d === -1 ? "N" : d === -1 ? "*" : String(d))).join(", ");
  return `${spec.dtype}[${dims}]`;
}
