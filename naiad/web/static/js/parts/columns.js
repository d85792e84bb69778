// The column chooser: every param, metric and tag key seen in the runs loaded so far.
import { h, replace } from "../dom.js";

export function columnChooser({ known, chosen, onChange }) {
  const panel = h("div", { class: "panel" });
  const fill = () => {
    const current = new Set(chosen());
    const groups = ["params", "metrics", "tags"].map((kind) => {
      const keys = [...known[kind]].sort();
      return h(
        "fieldset",
        {},
        h("legend", {}, kind),
        keys.length
          ? keys.map((key) => {
              const id = `${kind}.${key}`;
              return h(
                "label",
                {},
                h("input", {
                  type: "checkbox",
                  checked: current.has(id),
                  value: id,
                  onchange: (e) => {
                    const next = chosen().filter((x) => x !== id);
                    if (e.target.checked) next.push(id);
                    onChange(next);
                  },
                }),
                key,
              );
            })
          : h("p", { class: "muted small" }, "None in the loaded runs."),
      );
    });
    replace(panel, ...groups);
  };
  const menu = h(
    "details",
    {
      class: "menu",
      ontoggle: (e) => {
        if (e.target.open) fill();
      },
    },
    h("summary", {}, "Columns"),
    panel,
  );
  menu.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && menu.open) {
      menu.open = false;
      menu.querySelector("summary").focus();
    }
  });
  return menu;
}
