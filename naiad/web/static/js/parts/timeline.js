// Status transitions as a list with times and reasons, over a bar of time spent in each.
import { h } from "../dom.js";
import { badge, fmtDuration, fmtTime } from "../format.js";

export function timeline(transitions, ended = true) {
  if (!transitions.length) return h("p", { class: "muted" }, "No transitions yet.");
  const times = transitions.map((t) => new Date(t.at).getTime());
  const end = ended ? times[times.length - 1] : Date.now();
  const whole = Math.max(1, end - times[0]);
  const bar = h(
    "div",
    { class: "bar", role: "img", "aria-label": "Time in each status" },
    transitions.map((t, i) => {
      const next = i + 1 < times.length ? times[i + 1] : end;
      const share = ((next - times[i]) / whole) * 100;
      return share > 0
        ? h("span", {
            class: `s-${t.status.toLowerCase()}`,
            style: { width: `${share}%` },
            title: `${t.status}: ${fmtDuration(next - times[i])}`,
          })
        : null;
    }),
  );
  const items = transitions.map((t, i) => {
    const after = i ? ` (+${fmtDuration(times[i] - times[i - 1])})` : "";
    return h(
      "li",
      { class: `s-${t.status.toLowerCase()}` },
      badge(t.status),
      h("span", { class: "when" }, fmtTime(t.at) + after),
      t.reason ? h("span", { class: "why" }, t.reason) : null,
    );
  });
  return h("div", {}, bar, h("ol", { class: "timeline" }, items));
}
