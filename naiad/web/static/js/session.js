// Who is signed in, asked once per page load (GET /users/me). Pages show only the actions
// the role may take; the server checks every call anyway and refuses the rest with a 403.
import { api } from "./api.js";

const ROLES = ["viewer", "editor", "admin"]; // each may do what the ones before may
let me = null; // {name, role, read_only, user} once known
let asked = null;

/** The signed-in principal; the first call asks the server, later ones reuse its answer. */
export function signedIn() {
  asked ??= api("/users/me").then(
    (answer) => (me = answer),
    (err) => {
      asked = null; // ask again next time
      throw err;
    },
  );
  return asked;
}

/** The role this session acts with in `project` (its own role in "default"; a server admin
 * is admin everywhere): a read-only key acts as a viewer whatever its user's. */
export function role(project = "default") {
  if (!me) return "viewer";
  const held = me.role === "admin" || project === "default" ? me.role : me.projects?.[project];
  if (!held) return null;
  return me.read_only ? "viewer" : held;
}

/** Whether the signed-in principal holds `needed` ("viewer", "editor" or "admin") or more,
 * in `project` (the object's `project`; by default, the default project). */
export function may(needed, project = "default") {
  return ROLES.indexOf(role(project)) >= ROLES.indexOf(needed);
}

/** Whether it may delete `thing` (a run, job, model or endpoint): an editor what they created. */
export function mayDelete(thing) {
  const where = thing.project ?? "default";
  return may("admin", where) || (may("editor", where) && thing.created_by === me.name);
}
