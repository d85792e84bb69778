// The status <select> of a list page: its choice is kept in the URL (?status=) and
// handed to onPick, which refreshes the list.
import { h } from "../dom.js";
import { setQuery } from "../router.js";

export function statusFilter(statuses, current, onPick) {
  return h(
    "select",
    {
      name: "status",
      "aria-label": "Status",
      onchange: (e) => {
        const status = e.target.value;
        setQuery(new URLSearchParams(status ? { status } : {}));
        onPick(status);
      },
    },
    statuses.map((s) => h("option", { value: s, selected: s === current }, s || "Any status")),
  );
}
