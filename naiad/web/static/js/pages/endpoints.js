// #/endpoints: served models, their variants and traffic shares.
import { api } from "../api.js";
import { h, link, replace, table, errorBox } from "../dom.js";
import { badge, fmtTime } from "../format.js";
import { every } from "../poll.js";
import { share } from "./endpoint.js";

export default async function render(view) {
  const { main, signal } = view;
  view.title("Endpoints");
  const body = h("div");
  const refresh = async () => {
    let list;
    try {
      list = await api("/endpoints", { signal });
    } catch (err) {
      if (err.name !== "AbortError") replace(body, errorBox(err));
      return true;
    }
    const rows = list.map((e) =>
      h(
        "tr",
        {},
        h("td", {}, link(`#/endpoints/${encodeURIComponent(e.name)}`, e.name)),
        h("td", {}, badge(e.status)),
        h(
          "td",
          {},
          e.variants.map((v) => h("span", { class: "chip" }, `${v.model} · ${share(v, e.variants)}`)),
        ),
        h("td", { class: "mono small" }, e.url),
        h("td", {}, fmtTime(e.updated_at)),
      ),
    );
    replace(
      body,
      list.length
        ? table(["Name", "Status", "Variants (traffic)", "URL", "Updated"], rows)
        : h(
            "p",
            { class: "empty" },
            "No endpoints. Deploy a model version with naiad endpoints deploy NAME --model MODEL:VERSION.",
          ),
    );
    return true;
  };
  replace(main, h("h1", {}, "Endpoints"), body);
  await refresh();
  every(3000, refresh, signal);
}
