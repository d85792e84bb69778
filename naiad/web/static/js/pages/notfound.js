// Any route the console does not know.
import { h, link, replace } from "../dom.js";

export default async function render(view) {
  view.title("Not found");
  replace(
    view.main,
    h("h1", {}, "Nothing here"),
    h(
      "p",
      {},
      "The console has no page at ",
      h("code", {}, location.hash || "/"),
      ". It may have moved, or the link is mistyped.",
    ),
    h(
      "p",
      {},
      "Go to ",
      link("#/experiments", "experiments"),
      ", ",
      link("#/jobs", "jobs"),
      ", ",
      link("#/models", "models"),
      " or ",
      link("#/endpoints", "endpoints"),
      ".",
    ),
  );
}
