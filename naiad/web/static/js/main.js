// The console's entry point: who is signed in, the routes and which nav section each
// belongs to.
import { h, replace } from "./dom.js";
import { route, start } from "./router.js";
import { may, role, signedIn } from "./session.js";

route("/experiments", () => import("./pages/experiments.js"), "experiments");
route("/experiments/:name", () => import("./pages/runs.js"), "experiments");
route("/runs", () => import("./pages/runs.js"), "experiments");
route("/runs/:id", () => import("./pages/run.js"), "experiments");
route("/compare", () => import("./pages/compare.js"), "experiments");
route("/jobs", () => import("./pages/jobs.js"), "jobs");
route("/jobs/:name", () => import("./pages/job.js"), "jobs");
route("/tuning", () => import("./pages/tuning.js"), "tuning");
route("/tuning/:name", () => import("./pages/tuning_job.js"), "tuning");
route("/models", () => import("./pages/models.js"), "models");
route("/models/:name", () => import("./pages/model.js"), "models");
route("/endpoints", () => import("./pages/endpoints.js"), "endpoints");
route("/endpoints/:name", () => import("./pages/endpoint.js"), "endpoints");
route("/notebooks", () => import("./pages/notebooks.js"), "notebooks");
route("/audit", () => import("./pages/audit.js"), "audit");
route("/users", () => import("./pages/users.js"), "users");

/** "alice editor" beside Log out; the machine owner's token reads "admin token admin". */
function showWho(me) {
  const who = document.getElementById("who");
  const name = me.user ? me.name : "admin token";
  const held = me.read_only ? `${role()} (read-only key)` : role();
  who.title = `Signed in as ${name}, role ${held}`;
  replace(who, h("span", { class: "name" }, name), " ", h("span", { class: "chip" }, held));
}

/** Links to pages only some roles may use (Users and Audit: a server admin's) stay hidden
 * from the rest; the server refuses their calls anyway. */
function showLinks() {
  for (const a of document.querySelectorAll(".top nav a[data-needs]")) a.hidden = !may(a.dataset.needs);
}

// The pages ask may() as they draw, so the role is known before the first one; without
// it they draw as for a viewer, and the top bar says why.
try {
  showWho(await signedIn());
  showLinks();
} catch (err) {
  const who = document.getElementById("who");
  who.classList.add("unknown");
  who.textContent = `Role unknown: ${err.message}`;
}
start(document.getElementById("main"), () => import("./pages/notfound.js"));
