// #/jobs/NAME: status, timeline, hyperparameters, the live log per rank; for an editor
// Stop, Run again (the same request, as a new job) and, once Completed, Register model.
import { api, path } from "../api.js";
import { h, link, kvTable, replace, errorBox } from "../dom.js";
import { badge, fmtTime, fmtValue, span, TERMINAL } from "../format.js";
import { every } from "../poll.js";
import { timeline } from "../parts/timeline.js";
import { logTail } from "../parts/log_tail.js";
import { actionButton, field, formButton, go, nameInput } from "../parts/actions.js";
import { may } from "../session.js";

export default async function render(view) {
  const { main, params, signal } = view;
  let job = await api(path("jobs", params.name), { signal });
  view.title(job.name);
  const top = h("div");
  const steps = h("div");
  const resizes = h("div");
  const problem = h("div");
  const forms = h("div");
  const again = actionButton("Run again", { action: "rerun", problem, busy: "Starting…" }, async () => {
    const next = await api(path("jobs", job.name, "rerun"), { method: "POST", signal });
    go("jobs", next.name);
  });
  const register = formButton(
    "Register model",
    {
      action: "register",
      slot: forms,
      title: `Register the model ${job.name} saved`,
      submit: "Register",
      fields: () => [field("Model name", nameInput("model"))],
    },
    async (data) => {
      const model = data.get("model").trim();
      await api(path("models", model, "versions"), { method: "POST", body: { job: job.name }, signal });
      go("models", model);
    },
  );
  const stop = h("button", { type: "button", class: "danger", "data-action": "stop" }, "Stop");
  stop.addEventListener("click", async () => {
    stop.disabled = true;
    stop.textContent = "Stopping…";
    replace(problem);
    try {
      job = await api(path("jobs", job.name, "stop"), { method: "POST", signal });
      draw();
    } catch (err) {
      if (err.name === "AbortError") return;
      replace(problem, errorBox(err));
      stop.disabled = false;
      stop.textContent = "Stop";
    }
  });

  function draw() {
    const done = TERMINAL.has(job.status);
    const editor = may("editor", job.project);
    stop.hidden = done || !editor;
    again.hidden = !done || !editor;
    register.hidden = job.status !== "Completed" || !editor;
    if (job.status === "Stopping") {
      stop.disabled = true;
      stop.textContent = "Stopping…";
    }
    replace(
      top,
      h("div", { class: "crumbs" }, link("#/jobs", "Jobs"), " / "),
      h(
        "div",
        { class: "head" },
        h(
          "div",
          {},
          h("h1", {}, job.name, badge(job.status)),
          h(
            "ul",
            { class: "facts" },
            job.command
              ? h("li", {}, "command ", h("b", { class: "mono" }, job.command.join(" ")))
              : h("li", {}, "entrypoint ", h("b", { class: "mono" }, job.entrypoint)),
            h("li", {}, "processes ", h("b", {}, `${nodeCount(job)} × ${job.processes_per_node}`)),
            job.gpus ? h("li", {}, "GPUs per node ", h("b", {}, String(job.gpus))) : null,
            h("li", {}, "attempt ", h("b", {}, `${job.attempt + 1} of ${job.max_retries + 1}`)),
            h("li", {}, "created ", h("b", {}, fmtTime(job.created_at))),
            job.started_at ? h("li", {}, "ran for ", h("b", {}, span(job.started_at, job.ended_at))) : null,
            h("li", {}, "run ", link(`#/runs/${encodeURIComponent(job.run_id)}`, "metrics and artifacts")),
          ),
        ),
        h("div", { class: "actions" }, stop, again, register),
      ),
      // While it runs the timeline says as much; the reason matters once it waits or ends.
      job.status_reason && !["Starting", "Running"].includes(job.status)
        ? h("p", { class: job.status === "Failed" ? "alert" : "note" }, job.status_reason)
        : null,
    );
    replace(steps, timeline(job.transitions, done));
    replace(resizes, job.max_nodes ? resizeTable(job.events) : null);
  }
  draw();

  replace(
    main,
    top,
    problem,
    forms,
    h(
      "div",
      { class: "grid2" },
      h("section", {}, h("h2", {}, "Timeline"), steps, resizes),
      h(
        "section",
        {},
        h("h2", {}, "Hyperparameters"),
        kvTable(
          Object.entries(job.hyperparameters).map(([k, v]) => [k, fmtValue(v)]),
          "None.",
        ),
        h("h2", {}, "Inputs"),
        kvTable(Object.entries(job.inputs), "None."),
        h("h2", {}, "Output"),
        h("p", { class: "mono small" }, job.output_uri),
      ),
    ),
    h("h2", {}, "Logs"),
    logTail(job.name, { signal, ranks: (job.max_nodes || job.nodes) * job.processes_per_node }),
  );

  if (TERMINAL.has(job.status)) return;
  every(
    1000,
    async () => {
      job = await api(path("jobs", job.name), { signal });
      draw();
      return !TERMINAL.has(job.status);
    },
    signal,
  );
}

// "2", or an elastic job's "1–4" (it runs on as few as the first, grows to the second).
function nodeCount(job) {
  return job.max_nodes ? `${job.nodes}–${job.max_nodes}` : String(job.nodes);
}

// An elastic job's resizes: from how many workers to how many, at which step, and why.
function resizeTable(events) {
  const title = h("h2", {}, "Resizes");
  if (!events.length) return h("div", {}, title, h("p", { class: "muted" }, "No resizes yet."));
  const rows = events.map((e) =>
    h(
      "tr",
      {},
      h("td", {}, fmtTime(e.at)),
      h("td", {}, `${e.from_workers} → ${e.to_workers}`),
      h("td", {}, e.step === null ? "—" : String(e.step)),
      h("td", {}, e.reason),
    ),
  );
  const head = h("tr", {}, ["When", "Workers", "Step", "Why"].map((c) => h("th", { scope: "col" }, c)));
  return h(
    "div",
    { "data-part": "resizes" },
    title,
    h("div", { class: "scroll-x" }, h("table", {}, h("thead", {}, head), h("tbody", {}, rows))),
  );
}
