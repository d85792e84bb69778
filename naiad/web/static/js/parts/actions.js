// Write actions on a page: a button that makes one call, or a button that opens a small
// form. Either shows the server's sentence when the call fails (a 403 says which role it
// needs); nothing fails silently.
import { h, replace, errorBox } from "../dom.js";

/** A button running `call()` on click, disabled and saying `busy` meanwhile; `ask`, a
 * question to confirm first; a failure is shown in `problem`. */
export function actionButton(text, { action, problem, busy = `${text}…`, ask, cls }, call) {
  const button = h("button", { type: "button", class: cls, dataset: { action } }, text);
  button.addEventListener("click", async () => {
    if (ask && !confirm(ask)) return;
    button.disabled = true;
    button.textContent = busy;
    replace(problem);
    try {
      await call();
    } catch (err) {
      if (err.name !== "AbortError") replace(problem, errorBox(err));
    } finally {
      button.disabled = false;
      button.textContent = text;
    }
  });
  return button;
}

/** A labelled input or select, for `formButton`'s `fields`. */
export const field = (label, input) => h("label", { class: "inline" }, label, input);

/** A text input for a name (of a model, an alias, an endpoint). */
export const nameInput = (name) =>
  h("input", { type: "text", name, required: true, maxlength: 63, autocomplete: "off", spellcheck: "false" });

/** A button opening a form in `slot`: the title, `fields()` (made afresh each time), a
 * `submit` button and Cancel. `call(data)` gets the form's FormData; a failure shows in
 * the form, which stays open to correct. */
export function formButton(text, { action, slot, title, fields, submit }, call) {
  const open = h("button", { type: "button", dataset: { action } }, text);
  open.addEventListener("click", () => {
    const result = h("div", { "aria-live": "polite" });
    const go = h("button", { type: "submit", class: "primary" }, submit);
    const cancel = h("button", { type: "button", class: "quiet", onclick: () => replace(slot) }, "Cancel");
    const form = h(
      "form",
      { class: "card action-form", "aria-label": title, dataset: { form: action } },
      h("h2", {}, title),
      h("div", { class: "toolbar" }, fields(), go, cancel),
      result,
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      go.disabled = true;
      replace(result);
      try {
        await call(new FormData(form));
      } catch (err) {
        if (err.name !== "AbortError") replace(result, errorBox(err));
      } finally {
        go.disabled = false;
      }
    });
    replace(slot, form);
    form.querySelector("input, select").focus();
  });
  return open;
}

/** A select of a model's versions, newest first, each with its aliases. */
export function versionSelect(versions, selected) {
  return h(
    "select",
    { name: "version", required: true },
    versions.map((v) =>
      h(
        "option",
        { value: String(v.version), selected: v.version === selected },
        `v${v.version}${v.aliases.length ? ` (${v.aliases.join(", ")})` : ""}`,
      ),
    ),
  );
}

/** Open a console route, e.g. go("models", name): the router draws its page. */
export function go(...segments) {
  location.hash = "#/" + segments.map(encodeURIComponent).join("/");
}
