// #/experiments: every experiment with its run count.
import { api } from "../api.js";
import { h, link, replace, table } from "../dom.js";
import { fmtTime } from "../format.js";

export default async function render(view) {
  view.title("Experiments");
  const experiments = await api("/experiments", { signal: view.signal });
  const rows = experiments.map((e) =>
    h(
      "tr",
      {},
      h("td", {}, link(`#/experiments/${encodeURIComponent(e.name)}`, e.name)),
      h("td", { class: "num" }, e.run_count.toLocaleString("en-US")),
      h("td", {}, e.description || ""),
      h(
        "td",
        {},
        Object.entries(e.tags).map(([k, v]) => h("span", { class: "chip" }, `${k}=${v}`)),
      ),
      h("td", {}, fmtTime(e.created_at)),
    ),
  );
  replace(
    view.main,
    h("div", { class: "head" }, h("h1", {}, "Experiments"), link("#/runs", "All runs →")),
    experiments.length
      ? table(
          ["Name", h("th", { class: "num", scope: "col" }, "Runs"), "Description", "Tags", "Created"],
          rows,
        )
      : h(
          "p",
          { class: "empty" },
          "No experiments yet. Start a run with naiad.start_run(experiment=…) or submit a job.",
        ),
  );
}
