// #/tuning: hyperparameter searches, newest first, refreshed while any is active.
import { api } from "../api.js";
import { h, link, replace, table, errorBox } from "../dom.js";
import { badge, fmtNum, fmtTime, span } from "../format.js";
import { every } from "../poll.js";
import { statusFilter } from "../parts/status_filter.js";

const STATUSES = ["", "Pending", "Running", "Stopping", "Completed", "Failed", "Stopped"];

/** Trials that have ended, of all the job may run. */
export function trialsDone(job) {
  const c = job.counts;
  return c.complete + c.pruned + c.failed + c.stopped;
}

export function arrow(direction) {
  return direction === "minimize" ? "↓" : "↑";
}

function strategy(job) {
  return job.early_stopping === "none" ? job.strategy : `${job.strategy} · ${job.early_stopping}`;
}

export default async function render(view) {
  const { main, signal, query } = view;
  view.title("Tuning");
  let status = query.get("status") || "";
  const body = h("div");
  const pick = statusFilter(STATUSES, status, (picked) => {
    status = picked;
    refresh();
  });

  async function refresh() {
    let jobs;
    try {
      jobs = await api("/tuning-jobs", { query: { status }, signal });
    } catch (err) {
      if (err.name !== "AbortError") replace(body, errorBox(err));
      return true;
    }
    const rows = jobs.map((j) => {
      const running = j.counts.running;
      return h(
        "tr",
        { dataset: { name: j.name } },
        h("td", {}, link(`#/tuning/${encodeURIComponent(j.name)}`, j.name)),
        h("td", {}, badge(j.status)),
        h("td", {}, strategy(j)),
        h(
          "td",
          { class: "num", dataset: { col: "trials" } },
          `${trialsDone(j)} / ${j.max_trials}`,
          running ? h("span", { class: "muted small" }, ` (${running} running)`) : null,
        ),
        h("td", { class: "mono" }, `${j.objective.metric} ${arrow(j.objective.direction)}`),
        h(
          "td",
          { class: "num", dataset: { col: "best" } },
          j.best ? fmtNum(j.best.value) : h("span", { class: "muted" }, "—"),
        ),
        h("td", {}, fmtTime(j.created_at)),
        h("td", {}, span(j.created_at, j.ended_at)),
      );
    });
    replace(
      body,
      jobs.length
        ? table(
            [
              "Name",
              "Status",
              "Strategy",
              h("th", { class: "num", scope: "col" }, "Trials done"),
              "Objective",
              h("th", { class: "num", scope: "col" }, "Best"),
              "Created",
              "Ran for",
            ],
            rows,
            { class: "tuning-jobs" },
          )
        : h(
            "p",
            { class: "empty" },
            status
              ? `No ${status} tuning jobs.`
              : "No tuning jobs yet. Start a search with naiad tune, or POST /api/v1/tuning-jobs.",
          ),
    );
    return true;
  }

  replace(main, h("div", { class: "head" }, h("h1", {}, "Tuning"), pick), body);
  await refresh();
  every(3000, refresh, signal);
}
