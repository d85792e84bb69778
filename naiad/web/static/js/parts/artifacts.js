// A run's artifacts: browse folders, preview images, text, JSON and HTML, download anything.
import { api, apiText, path, url } from "../api.js";
import { h, replace, errorBox } from "../dom.js";
import { fmtBytes } from "../format.js";

const IMAGES = new Set(["png", "jpg", "jpeg", "gif", "webp", "svg", "bmp", "avif"]);
const TEXT = new Set([
  "txt",
  "log",
  "csv",
  "tsv",
  "md",
  "py",
  "yaml",
  "yml",
  "toml",
  "cfg",
  "ini",
  "sh",
  "out",
  "err",
  "jsonl",
  "xml",
  "ipynb",
]);
const MAX_PREVIEW = 2 * 1024 * 1024;

const ext = (p) => (p.includes(".") ? p.split(".").pop().toLowerCase() : "");
const base = (p) => p.split("/").pop();

export function artifactBrowser(runId, signal) {
  const crumbs = h("div", { class: "crumbs" });
  const list = h("ul", { "aria-label": "Artifacts" });
  const preview = h(
    "div",
    { class: "preview", "aria-live": "polite" },
    h("p", { class: "muted" }, "Pick a file to preview it."),
  );
  const fileUrl = (p) => url(path("runs", runId, "artifacts", p));

  async function show(entry) {
    const kind = ext(entry.path);
    const download = h("a", { href: fileUrl(entry.path), download: base(entry.path) }, "Download");
    const title = h(
      "h3",
      {},
      entry.path,
      " ",
      h("span", { class: "muted small" }, fmtBytes(entry.size)),
      " · ",
      download,
    );
    if (IMAGES.has(kind)) {
      replace(preview, title, h("img", { src: fileUrl(entry.path), alt: entry.path }));
      return;
    }
    if (kind === "html" || kind === "htm") {
      // rendered in a frame the server sandboxes (no script, a unique origin): an
      // executed notebook, a report
      const frame = h("iframe", {
        class: "html-artifact",
        sandbox: "",
        title: entry.path,
        src: `${fileUrl(entry.path)}?view=1`,
      });
      replace(preview, title, frame);
      return;
    }
    if (kind !== "json" && !TEXT.has(kind)) {
      replace(preview, title, h("p", { class: "muted" }, "No preview for this kind of file."));
      return;
    }
    if (entry.size > MAX_PREVIEW) {
      replace(
        preview,
        title,
        h("p", { class: "muted" }, `Too large to preview (${fmtBytes(entry.size)}); download it.`),
      );
      return;
    }
    replace(preview, title, h("p", { class: "muted" }, "Loading…"));
    try {
      let text = await apiText(path("runs", runId, "artifacts", entry.path), { signal });
      if (kind === "json") {
        try {
          text = JSON.stringify(JSON.parse(text), null, 2);
        } catch {
          /* not valid JSON: show it as it is */
        }
      }
      replace(preview, title, h("pre", { class: `mono${kind === "json" ? " json" : ""}` }, text));
    } catch (err) {
      replace(preview, title, errorBox(err));
    }
  }

  async function open(dir) {
    const parts = dir ? dir.split("/") : [];
    replace(
      crumbs,
      h("button", { type: "button", class: "link", onclick: () => open("") }, "artifacts"),
      parts.map((p, i) => [
        " / ",
        h(
          "button",
          { type: "button", class: "link", onclick: () => open(parts.slice(0, i + 1).join("/")) },
          p,
        ),
      ]),
    );
    try {
      const entries = await api(path("runs", runId, "artifacts"), { query: { path: dir }, signal });
      entries.sort((a, b) => b.is_dir - a.is_dir || a.path.localeCompare(b.path));
      replace(
        list,
        entries.length
          ? entries.map((e) =>
              h(
                "li",
                {},
                h(
                  "button",
                  { type: "button", class: "link", onclick: () => (e.is_dir ? open(e.path) : show(e)) },
                  e.is_dir ? `${base(e.path)}/` : base(e.path),
                ),
                h("span", { class: "muted small" }, e.is_dir ? "" : fmtBytes(e.size)),
              ),
            )
          : h("li", { class: "muted" }, dir ? "This folder is empty." : "No artifacts."),
      );
    } catch (err) {
      if (err.name !== "AbortError") replace(list, h("li", {}, errorBox(err)));
    }
  }

  open("");
  return h(
    "div",
    { class: "files" },
    h("div", { class: "card" }, crumbs, list),
    h("div", { class: "card" }, preview),
  );
}
