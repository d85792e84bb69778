// A tiny element builder: text is always set as text, never parsed as HTML.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "style" && typeof v === "object") Object.assign(el.style, v);
    else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k in el && typeof v !== "string") el[k] = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A link to a console route: link("#/runs/" + id, name). */
export const link = (href, ...children) => h("a", { href }, ...children);

/** An API error (or any error) as the sentence a person can act on. */
export function errorBox(err) {
  const message = err && err.message ? err.message : String(err);
  return h("p", { class: "alert", role: "alert" }, message);
}

export function table(headers, rows, attrs = {}) {
  return h(
    "div",
    { class: "scroll-x" },
    h(
      "table",
      attrs,
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          headers.map((x) => (x instanceof Node ? x : h("th", { scope: "col" }, x))),
        ),
      ),
      h("tbody", {}, rows),
    ),
  );
}

/** key/value pairs as a two-column table; empty -> a quiet line. */
export function kvTable(entries, empty = "None.") {
  if (!entries.length) return h("p", { class: "muted" }, empty);
  return h(
    "div",
    { class: "scroll-x" },
    h(
      "table",
      { class: "kv" },
      h(
        "tbody",
        {},
        entries.map(([k, v]) => h("tr", {}, h("th", { scope: "row" }, k), h("td", {}, v))),
      ),
    ),
  );
}
