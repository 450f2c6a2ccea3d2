// api.js: the REST API of openapi/openapi.yaml with the signed-in token.
// Errors are thrown as ApiError holding the RFC 9457 problem.
import { h, replace } from "./dom.js";

const KEY = "switchyard.token";

export const auth = {
  get token() { return sessionStorage.getItem(KEY) || ""; },
  set token(v) { v ? sessionStorage.setItem(KEY, v) : sessionStorage.removeItem(KEY); },
  me: null, // the token as GET /whoami answers it
};

const RANK = { viewer: 1, operator: 2, admin: 3 };
// can says whether the signed-in role reaches role.
export const can = (role) => !!auth.me && (RANK[auth.me.role] || 0) >= RANK[role];

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

let onUnauthorized = () => {};
export function setUnauthorizedHandler(f) { onUnauthorized = f; }

// request sends one API call; body is sent as JSON.
export async function request(method, path, body, opts = {}) {
  const headers = { Authorization: `Bearer ${auth.token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: opts.signal });
  if (res.status === 204) return null;
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { title: text }; }
  if (!res.ok) {
    if (res.status === 401 && !opts.noSignout) onUnauthorized();
    throw new ApiError(res.status, data || { title: res.statusText });
  }
  return data;
}

export const get = (path, opts) => request("GET", path, undefined, opts);

// q builds a query string from the defined values.
export function q(params) {
  const s = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") s.set(k, v);
  const t = s.toString();
  return t ? `?${t}` : "";
}

// listAll reads every page of a list.
export async function listAll(path) {
  const items = [];
  let cont = "";
  for (;;) {
    const page = await get(`${path}${q({ limit: 1000, continue: cont })}`);
    items.push(...page.items);
    if (!page.continue) return items;
    cont = page.continue;
  }
}

// write sends a write that waits for realization, showing its progress in
// the element given: committed, then realized (or which hosts are behind).
// A 504 is not a failure of the write: it is committed, not yet applied.
export async function write(method, path, body, progress) {
  const started = performance.now();
  let ticker = null;
  if (progress) {
    progress.hidden = false;
    const tick = () => replace(progress, h("span", { class: "spinner", "aria-hidden": "true" }),
      ` Waiting for the hosts to apply it… ${((performance.now() - started) / 1000).toFixed(1)} s`);
    tick();
    ticker = setInterval(tick, 250);
  }
  try {
    const sep = path.includes("?") ? "&" : "?";
    const out = await request(method, `${path}${sep}wait=realized&timeout=10s`, body);
    if (progress) replace(progress, h("span", { class: "badge ok" }, "realized"), ` on every host it touched in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    return out;
  } catch (e) {
    if (e instanceof ApiError && (e.status === 504 || e.status === 502) && progress) {
      const hosts = (e.problem.hosts || []).join(", ");
      replace(progress, h("span", { class: `badge ${e.status === 504 ? "warn" : "bad"}` }, e.status === 504 ? "committed, not realized" : "degraded"),
        ` ${e.problem.detail || ""}${hosts ? ` (hosts: ${hosts})` : ""}`);
      return null;
    }
    if (progress) progress.hidden = true;
    throw e;
  } finally {
    clearInterval(ticker);
  }
}

// showProblem puts a problem's message next to the form field it names
// (`labels.app` goes to `labels`, `ports[0].port` to `ports`), or at the
// top of the form.
export function showProblem(form, err) {
  clearProblems(form);
  const p = err instanceof ApiError ? err.problem : { detail: String(err) };
  const field = p.field || "";
  const base = field.split(/[.[]/)[0];
  // A field may also claim API fields by prefix (data-fields="ingress[0].ports ...").
  const claimed = [...form.querySelectorAll("[data-fields]")].find((e) => e.dataset.fields.split(" ").some((p) => field.startsWith(p)));
  const input = field && (form.querySelector(`[name="${CSS.escape(field)}"]`) || claimed || form.querySelector(`[name="${CSS.escape(base)}"]`));
  const msg = p.detail || p.title || "failed";
  if (input) {
    input.setAttribute("aria-invalid", "true");
    const out = h("span", { class: "field-error", role: "alert", dataset: { field } }, msg);
    input.closest("label")?.append(out) || input.after(out);
    input.focus();
  } else {
    form.prepend(h("p", { class: "form-error", role: "alert" }, `${p.status || ""} ${msg}`.trim()));
  }
}

export function clearProblems(form) {
  form.querySelectorAll(".field-error, .form-error").forEach((e) => e.remove());
  form.querySelectorAll("[aria-invalid]").forEach((e) => e.removeAttribute("aria-invalid"));
}
