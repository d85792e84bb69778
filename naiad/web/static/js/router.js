// Hash routes (#/runs/ID?x=1): each page module renders into <main> and stops its polling
// when the route changes (view.signal aborts).
import { ApiError } from "./api.js";
import { h, errorBox, replace } from "./dom.js";

const routes = [];
let current = null;

/** route("/runs/:id", () => import("./pages/run.js"), "experiments") */
export function route(pattern, load, section) {
  const names = [];
  const source = pattern.replace(/:(\w+)/g, (_, name) => {
    names.push(name);
    return "([^/]+)";
  });
  routes.push({ re: new RegExp(`^${source}/?$`), names, load, section });
}

export function parseHash(hash = location.hash) {
  const raw = hash.replace(/^#/, "") || "/";
  const [p, q = ""] = raw.split("?");
  return { path: p, query: new URLSearchParams(q) };
}

/** Change the current route's query without re-rendering (filters, sort, selection). */
export function setQuery(query) {
  const { path } = parseHash();
  const q = query.toString();
  history.replaceState(null, "", `#${path}${q ? "?" + q : ""}`);
}

function match(path) {
  for (const r of routes) {
    const m = r.re.exec(path);
    if (m) {
      const params = {};
      r.names.forEach((name, i) => {
        params[name] = decodeURIComponent(m[i + 1]);
      });
      return { ...r, params };
    }
  }
  return null;
}

function markNav(section) {
  for (const a of document.querySelectorAll(".top nav a")) {
    if (a.dataset.section === section) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

async function render(main, notFound, focus) {
  if (!location.hash.startsWith("#/")) {
    if (!location.hash) history.replaceState(null, "", "#/experiments");
    else return; // an in-page anchor such as the skip link
  }
  const { path, query } = parseHash();
  if (current) current.abort();
  const controller = new AbortController();
  current = controller;
  const found = match(path);
  markNav(found ? found.section : null);
  const view = {
    main,
    params: found ? found.params : {},
    query,
    signal: controller.signal,
    title: (t) => {
      document.title = t ? `${t} · Naiad` : "Naiad";
    },
  };
  replace(main, h("p", { class: "muted" }, "Loading…"));
  try {
    const module = await (found ? found.load() : notFound());
    if (controller.signal.aborted) return;
    await module.default(view);
  } catch (err) {
    if (err.name === "AbortError" || controller.signal.aborted) return;
    if (!(err instanceof ApiError)) console.error(err); // a bug, not a refusal from the API
    replace(main, errorBox(err));
  }
  if (focus && !controller.signal.aborted) main.focus({ preventScroll: true });
}

export function start(main, notFound) {
  window.addEventListener("hashchange", () => render(main, notFound, true));
  render(main, notFound, false);
}
