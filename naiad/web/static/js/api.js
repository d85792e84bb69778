// The REST API, as the console uses it: same origin, the session cookie rides along.
// Errors become ApiError whose message is the server's sentence.

export const API = "/api/v1";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** A path from segments, each escaped: path("runs", id, "metrics", "val/acc"). */
export function path(...segments) {
  return "/" + segments.map((s) => String(s).split("/").map(encodeURIComponent).join("/")).join("/");
}

export function url(p, query = {}) {
  const u = new URL(API + p, location.origin);
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined || v === null || v === "") continue;
    for (const item of Array.isArray(v) ? v : [v]) u.searchParams.append(k, item);
  }
  return u.pathname + u.search;
}

async function failure(res) {
  let code = "http_error";
  let message = `The server answered ${res.status} ${res.statusText}.`;
  try {
    const body = await res.json();
    if (body && typeof body.message === "string") {
      message = body.message;
      code = body.error || code;
    }
  } catch {
    /* not JSON: keep the generic sentence */
  }
  if (res.status === 401) {
    // The session ended (the token changed, or the cookie was cleared): back to the login.
    location.reload();
  }
  return new ApiError(res.status, code, message);
}

async function send(p, { method = "GET", body, query, signal } = {}) {
  const init = { method, signal, headers: { accept: "application/json" }, credentials: "same-origin" };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["content-type"] = "application/json";
  }
  let res;
  try {
    res = await fetch(url(p, query), init);
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, "network", "The server did not answer; check that it is running, then retry.");
  }
  if (!res.ok) throw await failure(res);
  return res;
}

/** JSON from the API; null for 204. */
export async function api(p, options) {
  const res = await send(p, options);
  return res.status === 204 ? null : res.json();
}

/** Text from the API (artifact previews). */
export async function apiText(p, options) {
  return (await send(p, options)).text();
}

/** "NaN", "Infinity", "-Infinity" travel as strings; make them numbers again. */
export function num(v) {
  if (typeof v === "number") return v;
  if (v === "NaN") return NaN;
  if (v === "Infinity") return Infinity;
  if (v === "-Infinity") return -Infinity;
  return v == null ? null : Number(v);
}
