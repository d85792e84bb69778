// Keep the page the person asked for (#/runs/...) across the login redirect: a redirect
// without a fragment keeps the one of the request it answers.
const form = document.querySelector("form.login-card");
if (form && location.hash.startsWith("#/")) form.action = "/login" + location.hash;
