// #/notebooks: managed JupyterLab servers: create, open, stop, start, delete (an admin's:
// a notebook's kernels act as the admin), and run one of a notebook's .ipynb files as a
// training job (an editor's).
import { api, path } from "../api.js";
import { h, link, replace, table, errorBox } from "../dom.js";
import { badge, fmtTime } from "../format.js";
import { every } from "../poll.js";
import { may } from "../session.js";

const IDLE_CHOICES = [
  ["15 min", 900],
  ["1 h", 3600],
  ["4 h", 4 * 3600],
  ["1 day", 24 * 3600],
  ["Never", null],
];
const RUNNING = new Set(["Pending", "InService"]);

/** A value typed as NAME=VALUE, as the CLI's --hp reads it: numbers, true/false, or text. */
export function typedValue(text) {
  if (/^[+-]?\d+$/.test(text)) {
    const n = Number(text);
    return Number.isSafeInteger(n) ? n : text;
  }
  const real = Number(text);
  if (text.trim() !== "" && Number.isFinite(real) && !/^0x/i.test(text)) return real;
  const flag = { true: true, false: false }[text.toLowerCase()];
  return flag === undefined ? text : flag;
}

/** "lr=0.1 epochs=3" (spaces or new lines between pairs) as {lr: 0.1, epochs: 3}. */
export function parsePairs(text) {
  const out = {};
  for (const pair of text.split(/\s+/).filter(Boolean)) {
    const at = pair.indexOf("=");
    if (at <= 0) throw new Error(`"${pair}" is not NAME=VALUE; write e.g. lr=0.01 epochs=3.`);
    out[pair.slice(0, at)] = typedValue(pair.slice(at + 1));
  }
  return out;
}

/** The notebook's .ipynb files, as the server lists them (any role that may run one). */
export function notebookFiles(name, signal) {
  return api(path("notebooks", name, "files"), { signal });
}

/** A span in whole minutes (seconds under one): "45 s", "12 min", "1 h 30 min", "2 d 3 h". */
export function roughly(ms) {
  if (ms < 60_000) return `${Math.max(0, Math.round(ms / 1000))} s`;
  const m = Math.floor(ms / 60_000);
  if (m < 60) return `${m} min`;
  const hours = Math.floor(m / 60);
  if (hours < 24) return m % 60 ? `${hours} h ${m % 60} min` : `${hours} h`;
  const days = Math.floor(hours / 24);
  return hours % 24 ? `${days} d ${hours % 24} h` : `${days} d`;
}

function ago(iso) {
  if (!iso) return "";
  const ms = Date.now() - new Date(iso);
  return ms < 60_000 ? "just now" : `${roughly(ms)} ago`;
}

function idleFor(nb) {
  return nb.last_activity_at || nb.started_at;
}

/** "1 h", and for a serving notebook how long until it stops for lack of activity. */
function timeoutCell(nb) {
  if (nb.idle_timeout_s == null) return h("td", {}, "Never");
  const limit = roughly(nb.idle_timeout_s * 1000);
  const since = idleFor(nb);
  if (nb.status !== "InService" || !since) return h("td", {}, limit);
  const left = nb.idle_timeout_s * 1000 - (Date.now() - new Date(since));
  const when = left < 60_000 ? "under a minute" : roughly(left);
  return h("td", {}, limit, h("div", { class: "muted small" }, `stops in ${when} if idle`));
}

export default async function render(view) {
  const { main, signal } = view;
  view.title("Notebooks");
  const notice = h("div", { "aria-live": "polite" });
  const body = h("div");
  const runner = h("div");
  let shown = "";
  let list = [];

  const say = (err) => replace(notice, err ? errorBox(err) : null);

  /** A write, then a refresh; its refusal shows above the table. */
  async function act(button, busy, call) {
    const label = button.textContent;
    button.disabled = true;
    button.textContent = busy;
    try {
      await call();
      say(null);
    } catch (err) {
      if (err.name === "AbortError") return;
      say(err);
    } finally {
      button.disabled = false;
      button.textContent = label;
    }
    shown = "";
    await refresh();
  }

  function actions(nb) {
    const name = nb.name;
    // "Stop explore": each row's buttons say which notebook they act on
    const button = (text, action, onclick, cls) => {
      const attrs = { type: "button", class: cls, "aria-label": `${text} ${name}`, dataset: { action } };
      return h("button", { ...attrs, onclick }, text);
    };
    const post = (verb) => () => api(path("notebooks", name, verb), { method: "POST", signal });
    const out = [];
    const admin = may("admin");
    if (admin && nb.status === "InService") {
      const open = { class: "button", href: nb.url, target: "_blank", rel: "noopener" };
      out.push(h("a", { ...open, "aria-label": `Open ${name}`, dataset: { action: "open" } }, "Open"));
    }
    if (admin && RUNNING.has(nb.status)) {
      const stop = button("Stop", "stop", () => act(stop, "Stopping…", post("stop")));
      out.push(stop);
    }
    if (admin && (nb.status === "Stopped" || nb.status === "Failed")) {
      const start = button("Start", "start", () => act(start, "Starting…", post("start")));
      out.push(start);
    }
    if (may("editor") && nb.status === "InService") {
      out.push(button("Run as job", "run", () => openRunner(name)));
    }
    if (admin && nb.status !== "Deleting") {
      const remove = () => {
        if (!confirm(`Delete notebook ${name} and all its files? This cannot be undone.`)) return;
        act(del, "Deleting…", () => api(path("notebooks", name), { method: "DELETE", signal }));
      };
      const del = button("Delete", "delete", remove, "danger");
      out.push(del);
    }
    return h("td", {}, h("div", { class: "row-actions" }, out));
  }

  /** The row's text as shown, so an unchanged table is left alone (and keeps focus). */
  function signature(nb) {
    const shown = [nb.name, nb.status, nb.status_reason, ago(idleFor(nb)), nb.idle_timeout_s];
    return [...shown, nb.description].join("\u0000");
  }

  async function refresh() {
    try {
      list = await api("/notebooks", { signal });
    } catch (err) {
      if (err.name !== "AbortError") {
        shown = "";
        replace(body, errorBox(err));
      }
      return true;
    }
    const now = list.map(signature).join("\n") + "\n" + Math.floor(Date.now() / 60_000);
    if (now === shown) return true;
    shown = now;
    const rows = list.map((nb) =>
      h(
        "tr",
        { dataset: { name: nb.name } },
        h(
          "td",
          {},
          h("b", {}, nb.name),
          nb.description ? h("div", { class: "muted small" }, nb.description) : null,
        ),
        h("td", {}, badge(nb.status)),
        h("td", { title: fmtTime(idleFor(nb)) }, ago(idleFor(nb)) || h("span", { class: "muted" }, "—")),
        timeoutCell(nb),
        h("td", { class: "why" }, nb.status_reason || ""),
        actions(nb),
      ),
    );
    replace(
      body,
      list.length
        ? table(
            [
              "Name",
              "Status",
              "Last activity",
              "Idle timeout",
              "Reason",
              h("th", { scope: "col" }, h("span", { class: "sr-only" }, "Actions")),
            ],
            rows,
            { class: "notebooks" },
          )
        : h(
            "p",
            { class: "empty" },
            "No notebooks yet.",
            may("admin") ? " Create one above, or: naiad notebooks create NAME." : null,
          ),
    );
    return true;
  }

  function openRunner(name) {
    const loading = h("option", { value: "" }, "Loading…");
    const files = h("select", { id: "run-file", name: "path", required: true }, loading);
    const hp = h("input", {
      id: "run-hp",
      type: "text",
      name: "hyperparameters",
      placeholder: "lr=0.01 epochs=3",
      autocomplete: "off",
      spellcheck: "false",
      class: "mono",
    });
    const go = h("button", { type: "submit", class: "primary", disabled: true }, "Run");
    const cancel = h("button", { type: "button", class: "quiet" }, "Cancel");
    const result = h("div", { "aria-live": "polite" });
    const form = h(
      "form",
      { class: "card runner", "aria-label": `Run a file of ${name} as a training job` },
      h("h2", {}, "Run a file of ", h("span", { class: "mono" }, name), " as a job"),
      h(
        "p",
        { class: "muted small" },
        "The notebook's files are copied as they are now; the job runs the file in a fresh " +
          "kernel, with the values below set after its cell tagged parameters.",
      ),
      h(
        "div",
        { class: "toolbar" },
        h("label", { class: "inline", for: "run-file" }, "Notebook file"),
        files,
        h("label", { class: "inline", for: "run-hp" }, "Hyperparameters"),
        h("span", { class: "grow" }, hp),
        go,
        cancel,
      ),
      result,
    );
    cancel.addEventListener("click", () => replace(runner));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      let hyperparameters;
      try {
        hyperparameters = parsePairs(hp.value);
      } catch (err) {
        replace(result, errorBox(err));
        hp.focus();
        return;
      }
      go.disabled = true;
      go.textContent = "Starting…";
      try {
        const job = await api(path("notebooks", name, "jobs"), {
          method: "POST",
          body: { path: files.value, hyperparameters },
          signal,
        });
        replace(
          result,
          h(
            "p",
            { class: "note", role: "status" },
            "Started training job ",
            link(`#/jobs/${encodeURIComponent(job.name)}`, job.name),
            ".",
          ),
        );
      } catch (err) {
        if (err.name !== "AbortError") replace(result, errorBox(err));
      } finally {
        go.disabled = false;
        go.textContent = "Run";
      }
    });
    replace(runner, form);
    files.focus();
    notebookFiles(name, signal).then(
      (paths) => {
        if (!paths.length) {
          replace(files, h("option", { value: "" }, "No .ipynb files"));
          const hint = `${name} has no .ipynb file yet: save one in JupyterLab first.`;
          replace(result, h("p", { class: "muted" }, hint));
          return;
        }
        replace(files, paths.map((p) => h("option", { value: p }, p)));
        go.disabled = false;
      },
      (err) => {
        if (err.name === "AbortError") return;
        replace(files, h("option", { value: "" }, "—"));
        replace(result, errorBox(err));
      },
    );
  }

  // the create form
  const nameInput = h("input", {
    id: "new-notebook-name",
    type: "text",
    name: "name",
    required: true,
    maxlength: 63,
    pattern: "[A-Za-z0-9](-*[A-Za-z0-9])*",
    title: "Letters, digits and '-', starting and ending with a letter or digit",
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "my-notebook",
  });
  const idle = h(
    "select",
    { id: "new-notebook-idle", name: "idle_timeout_s" },
    IDLE_CHOICES.map(([text, s]) => h("option", { value: s ?? "", selected: s === 3600 }, text)),
  );
  const create = h("button", { type: "submit", class: "primary" }, "Create");
  const createForm = h(
    "form",
    { class: "toolbar", "aria-label": "New notebook" },
    h("label", { class: "inline", for: "new-notebook-name" }, "Name"),
    nameInput,
    h("label", { class: "inline", for: "new-notebook-idle" }, "Stop when idle for"),
    idle,
    create,
  );
  createForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const timeout = idle.value === "" ? null : Number(idle.value);
    const body = { name: nameInput.value.trim(), idle_timeout_s: timeout };
    act(create, "Creating…", async () => {
      await api("/notebooks", { method: "POST", body, signal });
      nameInput.value = "";
    });
  });

  replace(
    main,
    h("div", { class: "head" }, h("h1", {}, "Notebooks")),
    h(
      "p",
      { class: "muted" },
      "JupyterLab servers this server keeps: each opens behind your login, and stops when " +
        "idle with its files kept.",
    ),
    may("admin") ? createForm : null,
    notice,
    body,
    runner,
  );
  await refresh();
  every(3000, refresh, signal);
}
