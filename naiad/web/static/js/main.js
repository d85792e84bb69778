// The console's entry point: the routes and which nav section each belongs to.
import { route, start } from "./router.js";

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

start(document.getElementById("main"), () => import("./pages/notfound.js"));
