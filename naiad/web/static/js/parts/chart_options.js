// The controls every chart on a page shares: smoothing, log scale, x by step or time.
// Remembered in this browser.
import { h } from "../dom.js";

const KEY = "naiad.chartOptions";

export function loadOptions() {
  const fallback = { smoothing: 0, logY: false, xMode: "step" };
  try {
    return { ...fallback, ...JSON.parse(localStorage.getItem(KEY) || "{}") };
  } catch {
    return fallback;
  }
}

/** The control bar; onChange(options) after every change. */
export function chartOptions(options, onChange) {
  const save = () => {
    localStorage.setItem(KEY, JSON.stringify(options));
    onChange(options);
  };
  const shown = h("output", { class: "mono", for: "smoothing" }, options.smoothing.toFixed(2));
  return h(
    "div",
    { class: "toolbar", role: "group", "aria-label": "Chart options" },
    h(
      "label",
      { class: "inline" },
      "Smoothing",
      h("input", {
        id: "smoothing",
        type: "range",
        min: "0",
        max: "0.99",
        step: "0.01",
        value: String(options.smoothing),
        oninput: (e) => {
          options.smoothing = Number(e.target.value);
          shown.textContent = options.smoothing.toFixed(2);
        },
        onchange: save,
      }),
      shown,
    ),
    h(
      "label",
      { class: "inline" },
      h("input", {
        type: "checkbox",
        name: "logY",
        checked: options.logY,
        onchange: (e) => {
          options.logY = e.target.checked;
          save();
        },
      }),
      "Log scale",
    ),
    h(
      "label",
      { class: "inline" },
      "X axis",
      h(
        "select",
        {
          name: "xMode",
          onchange: (e) => {
            options.xMode = e.target.value;
            save();
          },
        },
        [
          ["step", "Step"],
          ["relative", "Relative time"],
          ["wall", "Wall time"],
        ].map(([v, t]) => h("option", { value: v, selected: options.xMode === v }, t)),
      ),
    ),
    h("span", { class: "muted small" }, "Drag to zoom, double-click to reset."),
  );
}
