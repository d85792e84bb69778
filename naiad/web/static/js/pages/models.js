// #/models: registered models, their latest version and aliases.
import { api } from "../api.js";
import { h, link, replace, table } from "../dom.js";
import { fmtTime } from "../format.js";

export default async function render(view) {
  view.title("Models");
  const models = await api("/models", { signal: view.signal });
  const rows = models.map((m) =>
    h(
      "tr",
      {},
      h("td", {}, link(`#/models/${encodeURIComponent(m.name)}`, m.name)),
      h("td", { class: "num" }, `v${m.latest_version}`),
      h(
        "td",
        {},
        Object.entries(m.aliases).map(([a, v]) => h("span", { class: "chip" }, `${a} → v${v}`)),
      ),
      h("td", {}, fmtTime(m.created_at)),
    ),
  );
  replace(
    view.main,
    h("h1", {}, "Models"),
    models.length
      ? table(["Name", h("th", { class: "num", scope: "col" }, "Latest"), "Aliases", "Created"], rows)
      : h("p", { class: "empty" }, "No models yet. Register one with naiad models register NAME --job JOB."),
  );
}
