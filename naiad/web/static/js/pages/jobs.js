// #/jobs: training jobs, newest first, refreshed while any is active.
import { api } from "../api.js";
import { h, link, replace, table, errorBox } from "../dom.js";
import { badge, fmtTime, span, TERMINAL } from "../format.js";
import { every } from "../poll.js";
import { statusFilter } from "../parts/status_filter.js";

const STATUSES = ["", "Pending", "Starting", "Running", "Stopping", "Completed", "Failed", "Stopped"];

export default async function render(view) {
  const { main, signal, query } = view;
  view.title("Jobs");
  let status = query.get("status") || "";
  const body = h("div");
  const pick = statusFilter(STATUSES, status, (picked) => {
    status = picked;
    refresh();
  });

  async function refresh() {
    let jobs;
    try {
      jobs = await api("/jobs", { query: { status }, signal });
    } catch (err) {
      if (err.name !== "AbortError") replace(body, errorBox(err));
      return true;
    }
    const rows = jobs.map((j) =>
      h(
        "tr",
        {},
        h("td", {}, link(`#/jobs/${encodeURIComponent(j.name)}`, j.name)),
        h("td", {}, badge(j.status)),
        h("td", {}, link(`#/experiments/${encodeURIComponent(j.experiment)}`, j.experiment)),
        h("td", { class: "mono" }, j.entrypoint ?? (j.command || []).join(" ")),
        h("td", { class: "num" }, String(j.nodes * j.processes_per_node)),
        h("td", {}, fmtTime(j.created_at)),
        h("td", {}, span(j.started_at, j.ended_at)),
        h("td", {}, link(`#/runs/${encodeURIComponent(j.run_id)}`, "run")),
      ),
    );
    replace(
      body,
      jobs.length
        ? table(
            [
              "Name",
              "Status",
              "Experiment",
              "Entrypoint",
              h("th", { class: "num", scope: "col" }, "Processes"),
              "Created",
              "Ran for",
              "",
            ],
            rows,
          )
        : h(
            "p",
            { class: "empty" },
            status
              ? `No ${status} jobs.`
              : "No jobs yet. Submit one with naiad train or client.training_jobs.create.",
          ),
    );
    return true;
  }

  replace(main, h("div", { class: "head" }, h("h1", {}, "Jobs"), pick), body);
  await refresh();
  every(3000, refresh, signal);
}
