// #/audit: who wrote what, when and from where (the audit log), newest first.
import { api } from "../api.js";
import { h, replace, table, errorBox } from "../dom.js";
import { fmtTime } from "../format.js";
import { setQuery } from "../router.js";
import { every } from "../poll.js";

const PAGE = 100;

export default async function render(view) {
  const { main, signal, query } = view;
  view.title("Audit log");
  const body = h("div");
  const actor = h("input", {
    type: "search",
    name: "actor",
    value: query.get("actor") || "",
    placeholder: "admin, console, job:NAME, key:ID",
    "aria-label": "Actor",
  });
  let before = null; // an event id: the page shown ends just before it
  const refresh = async () => {
    let events;
    try {
      const who = actor.value.trim();
      events = await api("/audit", { query: { actor: who, limit: PAGE, before }, signal });
    } catch (err) {
      if (err.name !== "AbortError") replace(body, errorBox(err));
      return true;
    }
    const rows = events.map((e) =>
      h(
        "tr",
        { class: e.status >= 400 ? "refused" : null },
        h("td", {}, fmtTime(e.at)),
        h("td", { class: "mono" }, e.actor),
        h("td", { class: "mono" }, e.action),
        h("td", { class: "mono small" }, e.path),
        h("td", { class: "num" }, String(e.status)),
        h("td", { class: "mono small" }, e.client),
      ),
    );
    const older =
      events.length === PAGE
        ? h("button", { type: "button", onclick: () => ((before = events.at(-1).id), refresh()) }, "Older")
        : null;
    replace(
      body,
      events.length
        ? table(["When", "Actor", "Action", "Path", h("th", { class: "num", scope: "col" }, "Status"), "From"], rows, {
            class: "audit",
          })
        : h("p", { class: "empty" }, "No writes recorded" + (actor.value.trim() ? " by that actor." : " yet.")),
      older,
    );
    return true;
  };
  const form = h(
    "form",
    {
      class: "toolbar",
      onsubmit: (ev) => {
        ev.preventDefault();
        before = null;
        const q = new URLSearchParams();
        if (actor.value.trim()) q.set("actor", actor.value.trim());
        setQuery(q);
        refresh();
      },
    },
    h("label", {}, "Actor ", actor),
    h("button", { type: "submit" }, "Filter"),
  );
  replace(
    main,
    h("h1", {}, "Audit log"),
    h("p", { class: "small" }, "Every write to the server: the API, the console and the AWS-compatible APIs. Reads, metric batches and invocations are not recorded."),
    form,
    body,
  );
  await refresh();
  every(5000, () => (before === null ? refresh() : true), signal);
}
