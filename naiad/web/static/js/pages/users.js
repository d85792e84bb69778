// #/users: who may sign in and with which role, and the projects with their members (a
// server admin's page: anyone else is shown the server's 403 sentence). Every failed call
// shows the server's sentence beside what was tried; nothing fails silently.
import { api, path } from "../api.js";
import { h, replace, table, errorBox } from "../dom.js";
import { fmtTime } from "../format.js";
import { signedIn } from "../session.js";
import { actionButton, formButton, field } from "../parts/actions.js";

const ROLES = ["viewer", "editor", "admin"];
const PASSWORD_NOTE = "8 or more characters";

const roleSelect = (attrs, selected = "viewer") =>
  h(
    "select",
    { name: "role", ...attrs },
    ROLES.map((r) => h("option", { value: r, selected: r === selected }, r)),
  );

const passwordInput = (attrs = {}) =>
  h("input", { type: "password", name: "password", autocomplete: "new-password", ...attrs });

const textInput = (attrs) =>
  h("input", { type: "text", autocomplete: "off", spellcheck: "false", maxlength: 63, ...attrs });

const header = (text) => h("th", { scope: "col" }, h("span", { class: "sr-only" }, text));

/** The users, the projects and each project's members (default has none: everyone's role
 * there is their own). */
async function load(signal) {
  const [users, projects] = await Promise.all([api("/users", { signal }), api("/projects", { signal })]);
  const members = await Promise.all(
    projects.map((p) => (p.name === "default" ? [] : api(path("projects", p.name, "members"), { signal }))),
  );
  return { users, projects: projects.map((p, i) => ({ ...p, members: members[i] })) };
}

/** A select that makes its call on change; a refusal shows in `problem` and puts the
 * select back to what it was. */
function liveSelect(select, problem, call) {
  let was = select.value;
  select.addEventListener("change", async () => {
    replace(problem);
    select.disabled = true;
    try {
      await call(select.value);
      was = select.value;
    } catch (err) {
      if (err.name === "AbortError") return;
      select.value = was;
      replace(problem, errorBox(err));
    } finally {
      select.disabled = false;
    }
  });
  return select;
}

/** actionButton with a label naming what it acts on ("Disable bob"). */
function rowButton(text, label, options, call) {
  const button = actionButton(text, options, call);
  button.setAttribute("aria-label", label);
  return button;
}

/** A form that makes one call; its refusal shows under it and it stays filled to correct.
 * `done` (a sentence) shows instead once the call succeeds. */
function callForm(attrs, parts, note, call) {
  const result = h("div", { "aria-live": "polite" });
  const submit = parts.at(-1);
  const form = h("form", attrs, h("div", { class: "toolbar" }, parts), note, result);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    replace(result);
    try {
      const done = await call();
      form.reset();
      replace(result, h("p", { class: "note", role: "status" }, done));
    } catch (err) {
      if (err.name !== "AbortError") replace(result, errorBox(err));
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

export default async function render(view) {
  const { main, signal } = view;
  view.title("Users");
  const me = await signedIn().catch(() => null);
  const isMe = (name) => Boolean(me && me.user && me.name === name);

  const usersNotice = h("div", { "aria-live": "polite" });
  const usersBody = h("div");
  const passwordSlot = h("div");
  const projectsBody = h("div");
  let state;

  async function refresh() {
    state = await load(signal);
    drawUsers();
    drawProjects();
  }

  /** A write, then the page drawn again from the server's answer. */
  const then = (call) => async () => {
    await call();
    await refresh();
  };

  function userRow(u) {
    const name = u.name;
    const user = path("users", name);
    const patch = (body) => api(user, { method: "PATCH", body, signal });
    const role = isMe(name)
      ? h("span", {}, u.role, " ", h("span", { class: "chip" }, "you"))
      : liveSelect(roleSelect({ "aria-label": `Role of ${name}` }, u.role), usersNotice, async (r) => {
          await patch({ role: r });
          await refresh();
        });
    const actions = [];
    if (!isMe(name)) {
      const toggle = u.disabled ? "Enable" : "Disable";
      actions.push(
        rowButton(
          toggle,
          `${toggle} ${name}`,
          { action: toggle.toLowerCase(), problem: usersNotice },
          then(() => patch({ disabled: !u.disabled })),
        ),
      );
    }
    const setPassword = formButton(
      "Set password",
      {
        action: "password",
        slot: passwordSlot,
        title: `Set the password of ${name}`,
        submit: "Set password",
        fields: () => [
          field("New password", passwordInput({ required: true })),
          h("span", { class: "muted small" }, PASSWORD_NOTE),
        ],
      },
      async (data) => {
        await patch({ password: data.get("password") });
        replace(passwordSlot, h("p", { class: "note", role: "status" }, `The password of ${name} is set.`));
        await refresh();
      },
    );
    setPassword.setAttribute("aria-label", `Set password of ${name}`);
    actions.push(setPassword);
    if (!isMe(name)) {
      actions.push(
        rowButton(
          "Delete",
          `Delete ${name}`,
          {
            action: "delete",
            problem: usersNotice,
            cls: "danger",
            ask: `Delete user ${name} and every key of theirs? What they created keeps their name.`,
          },
          then(() => api(user, { method: "DELETE", signal })),
        ),
      );
    }
    return h(
      "tr",
      { class: u.disabled ? "disabled" : null, dataset: { name } },
      h("td", {}, h("b", {}, name)),
      h("td", {}, role),
      h("td", {}, u.disabled ? "Disabled" : "Enabled"),
      h("td", {}, u.has_password ? "Set" : h("span", { class: "muted" }, "None (keys only)")),
      h("td", {}, fmtTime(u.created_at)),
      h("td", {}, u.created_by || h("span", { class: "muted" }, "—")),
      h("td", {}, h("div", { class: "row-actions" }, actions)),
    );
  }

  function drawUsers() {
    replace(
      usersBody,
      state.users.length
        ? table(
            ["Name", "Role", "Sign-in", "Password", "Created", "Created by", header("Actions")],
            state.users.map(userRow),
            { class: "users" },
          )
        : h("p", { class: "empty" }, "No users yet: only the admin token signs in. Add one above."),
    );
  }

  function memberRow(project, m, problem) {
    const where = path("projects", project, "members", m.user);
    const select = roleSelect({ "aria-label": `Role of ${m.user} in ${project}` }, m.role);
    const role = liveSelect(select, problem, async (r) => {
      await api(where, { method: "PUT", body: { role: r }, signal });
      await refresh();
    });
    const remove = rowButton(
      "Remove",
      `Remove ${m.user} from ${project}`,
      { action: "remove-member", problem },
      then(() => api(where, { method: "DELETE", signal })),
    );
    return h("tr", { dataset: { user: m.user } }, h("td", {}, m.user), h("td", {}, role), h("td", {}, remove));
  }

  function projectCard(p) {
    const problem = h("div", { "aria-live": "polite" });
    const about = [
      p.description ? h("p", {}, p.description) : null,
      p.created_at
        ? h("p", { class: "muted small" }, "Created ", fmtTime(p.created_at), p.created_by ? ` by ${p.created_by}` : "")
        : null,
    ];
    if (p.name === "default") {
      return h(
        "section",
        { class: "card project", dataset: { project: p.name }, "aria-label": `Project ${p.name}` },
        h("h3", {}, p.name),
        about,
        h("p", { class: "muted small" }, "Everyone holds their own role here, the one in the users table above."),
      );
    }
    const members = p.members.length
      ? table(["User", "Role", header("Actions")], p.members.map((m) => memberRow(p.name, m, problem)), {
          class: "members",
        })
      : h("p", { class: "muted" }, "No members: only server admins reach it.");
    const taken = new Set(p.members.map((m) => m.user));
    const candidates = state.users.filter((u) => !taken.has(u.name) && u.role !== "admin");
    const who = h(
      "select",
      { name: "user", required: true, "aria-label": `User to add to ${p.name}` },
      candidates.map((u) => h("option", { value: u.name }, u.name)),
    );
    const role = roleSelect({ "aria-label": `Role in ${p.name}` });
    const add = h("button", { type: "submit" }, "Add member");
    const addForm = h(
      "form",
      { class: "toolbar", "aria-label": `Add a member to ${p.name}` },
      who,
      h("span", { class: "muted" }, "as"),
      role,
      add,
    );
    addForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      add.disabled = true;
      replace(problem);
      try {
        const where = path("projects", p.name, "members", who.value);
        await api(where, { method: "PUT", body: { role: role.value }, signal });
        await refresh();
      } catch (err) {
        if (err.name !== "AbortError") replace(problem, errorBox(err));
      } finally {
        add.disabled = false;
      }
    });
    const remove = rowButton(
      "Delete project",
      `Delete project ${p.name}`,
      {
        action: "delete-project",
        problem,
        cls: "danger",
        ask: `Delete project ${p.name}? Only an empty project can be deleted.`,
      },
      then(() => api(path("projects", p.name), { method: "DELETE", signal })),
    );
    return h(
      "section",
      { class: "card project", dataset: { project: p.name }, "aria-label": `Project ${p.name}` },
      h("div", { class: "head" }, h("h3", {}, p.name), remove),
      about,
      members,
      candidates.length ? addForm : h("p", { class: "muted small" }, "No one to add: admins hold admin everywhere."),
      problem,
    );
  }

  function drawProjects() {
    replace(projectsBody, h("div", { class: "projects" }, state.projects.map(projectCard)));
  }

  // the add-user form
  const newName = textInput({ id: "new-user-name", name: "name", required: true, placeholder: "alice" });
  const newRole = roleSelect({ id: "new-user-role" });
  const newPassword = passwordInput({ id: "new-user-password" });
  const addUser = callForm(
    { "aria-label": "Add user" },
    [
      h("label", { class: "inline", for: "new-user-name" }, "Name"),
      newName,
      h("label", { class: "inline", for: "new-user-role" }, "Role"),
      newRole,
      h("label", { class: "inline", for: "new-user-password" }, "Password"),
      newPassword,
      h("button", { type: "submit", class: "primary" }, "Add user"),
    ],
    h(
      "p",
      { class: "muted small" },
      `The password must be ${PASSWORD_NOTE}; without one, the user signs in only with keys an admin makes.`,
    ),
    async () => {
      const name = newName.value.trim();
      const body = { name, role: newRole.value };
      if (newPassword.value) body.password = newPassword.value;
      await api("/users", { method: "POST", body, signal });
      await refresh();
      return `Added user ${name}.`;
    },
  );

  // the create-project form
  const projectName = textInput({ id: "new-project-name", name: "name", required: true, placeholder: "vision" });
  const projectAbout = h("input", { id: "new-project-about", type: "text", name: "description", maxlength: 2000 });
  const createProject = callForm(
    { "aria-label": "Create project" },
    [
      h("label", { class: "inline", for: "new-project-name" }, "Name"),
      projectName,
      h("label", { class: "inline", for: "new-project-about" }, "Description"),
      h("span", { class: "grow" }, projectAbout),
      h("button", { type: "submit", class: "primary" }, "Create project"),
    ],
    null,
    async () => {
      const name = projectName.value.trim();
      const body = { name, description: projectAbout.value.trim() };
      await api("/projects", { method: "POST", body, signal });
      await refresh();
      return `Created project ${name}.`;
    },
  );

  try {
    state = await load(signal);
  } catch (err) {
    if (err.name === "AbortError") throw err;
    replace(main, h("h1", {}, "Users"), errorBox(err)); // a 403 for anyone but an admin
    return;
  }
  drawUsers();
  drawProjects();
  replace(
    main,
    h("h1", {}, "Users"),
    h(
      "p",
      { class: "muted" },
      "Who may sign in, and with which role: a user's role holds in the default project, and an " +
        "admin's everywhere. A disabled user's keys and sessions are refused at once.",
    ),
    addUser,
    usersNotice,
    usersBody,
    passwordSlot,
    h("h2", {}, "Projects"),
    h("p", { class: "muted" }, "Members hold the role given here in their project; only an empty one can be deleted."),
    createProject,
    projectsBody,
  );
}
