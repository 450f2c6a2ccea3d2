// ui.js: pieces the pages share: titles, object links, selects fed from
// the live state, delete buttons (only for roles that may), the create-form
// frame (field errors from problem+json, progress of ?wait=realized).
import { h, replace, byName } from "./dom.js";
import { can, write, showProblem, clearProblems, request, ApiError } from "./api.js";
import { list, reread } from "./live.js";
import { setQuery } from "../app.js";

export const title = (text, ...extra) => h("div", { class: "toolbar" }, h("h1", { id: "page-title" }, text), ...extra);

// path is the console URL of an object.
export function path(kind, o) {
  const e = encodeURIComponent;
  switch (kind) {
    case "host": return `/hosts/${e(o.name)}`;
    case "network": return `/networks/${e(o.name)}`;
    default: return `/${kind === "policy" ? "policies" : kind + "s"}/${e(o.network)}/${e(o.name)}`;
  }
}
export const objLink = (kind, o) => h("a", { href: path(kind, o) }, o.name);
export const hostLink = (name) => name ? h("a", { href: `/hosts/${encodeURIComponent(name)}` }, name) : "";
export const netLink = (name) => name ? h("a", { href: `/networks/${encodeURIComponent(name)}` }, name) : "";

// apiPath is the REST path of an object (scoped kinds by ?network=).
export function apiPath(kind, o) {
  const plural = kind === "policy" ? "policies" : `${kind}s`;
  const e = encodeURIComponent;
  return `/api/v1/${plural}/${e(o.name)}${o.network && kind !== "network" && kind !== "host" ? `?network=${e(o.network)}` : ""}`;
}

// select builds a <select> of the live objects of kind (names), with an
// optional "any" first entry.
export function select(kind, name, value, any, attrs = {}) {
  const names = list(kind).sort(byName).map((o) => o.name);
  // A deep link may name an object before the lists have loaded: the
  // wanted value is kept until it can be chosen or the user chooses.
  const sel = h("select", { name, dataset: value ? { want: value } : {}, onchange: () => delete sel.dataset.want, ...attrs },
    any !== undefined ? h("option", { value: "" }, any) : null,
    names.map((n) => h("option", { value: n, selected: n === value }, n)));
  return sel;
}

// refill keeps a select's options in step with the live objects, keeping
// its value.
export function refill(sel, kind, any) {
  const v = sel.dataset.want || sel.value;
  replace(sel, any !== undefined ? h("option", { value: "" }, any) : null,
    list(kind).sort(byName).map((o) => h("option", { value: o.name, selected: o.name === v }, o.name)));
}

// deleteButton: for operators (admins for tokens) only; the server still
// enforces. Asks first; errors go to alert.
export function deleteButton(kind, o, role = "operator", after) {
  if (!can(role)) return null;
  return h("button", { type: "button", class: "danger", "aria-label": `Delete ${kind} ${o.name}`, dataset: { action: "delete" },
    onclick: async (ev) => {
      if (!confirm(`Delete ${kind} ${o.name}?`)) return;
      ev.target.disabled = true;
      try {
        await request("DELETE", kind === "token" ? `/api/v1/tokens/${encodeURIComponent(o.id)}` : apiPath(kind, o));
        after?.();
      } catch (e) {
        ev.target.disabled = false;
        alert(e instanceof ApiError ? `${e.status} ${e.message}` : String(e));
      }
    } }, "Delete");
}

// createForm frames a create form: fields, a submit button, the progress
// line; submit(body) builds the request from the form's values. wait:
// whether the write waits for realization.
export function createForm({ label, fields, build, path: apiP, wait = true, done, kind }) {
  const progress = h("div", { class: "progress", role: "status", hidden: true });
  const form = h("form", { class: "create card", "aria-label": label, novalidate: true, onsubmit: async (ev) => {
    ev.preventDefault();
    clearProblems(form);
    const btn = form.querySelector("button[type=submit]");
    let body;
    try { body = build(new FormData(form)); } catch (e) { showProblem(form, new ApiError(400, e.problem || { detail: e.message, field: e.field })); return; }
    btn.disabled = true;
    try {
      const out = wait ? await write("POST", apiP, body, progress) : await request("POST", apiP, body);
      form.reset();
      if (wait && kind) reread(kind, out || body);
      done?.(out, body);
    } catch (e) {
      showProblem(form, e);
    } finally {
      btn.disabled = false;
    }
  } }, ...fields, h("button", { type: "submit", class: "primary" }, label));
  return h("div", {}, form, progress);
}

// parsePorts reads "80, 443/UDP, 8080-8090" into port objects; field names
// the form field for an error; range: whether "a-b" is allowed (endPort).
export function parsePorts(s, field, range) {
  return s.split(",").map((p) => p.trim()).filter(Boolean).map((p) => {
    const m = p.match(/^(\d+)(?:-(\d+))?(?:\/(TCP|UDP|SCTP))?$/i);
    if (!m || (m[2] && !range)) throw fieldError(field, `"${p}" is not a port${range ? ", a range a-b" : ""} with an optional /TCP, /UDP or /SCTP`);
    const out = { port: Number(m[1]), protocol: (m[3] || "TCP").toUpperCase() };
    if (m[2]) out.endPort = Number(m[2]);
    return out;
  });
}

// fieldError makes an error a form shows next to the field (client-side
// checks the API cannot make, e.g. a malformed label list).
export function fieldError(field, detail) {
  const e = new Error(detail);
  e.field = field;
  return e;
}

// networkIndex is the list page of a network-scoped kind, filtered by a
// network (kept in the URL); render(network) gives the table.
export function networkIndex(el, query, heading, render, form = null) {
  const net = select("network", "network", query.network, "any network", { "data-filter": true });
  net.addEventListener("input", () => { setQuery({ network: net.value }); update(); });
  const body = h("div", {});
  el.append(title(heading), form, h("div", { class: "toolbar" }, h("label", {}, "Network", net)), body);
  function update(kinds) {
    if (!kinds || kinds.has("*") || kinds.has("network")) {
      refill(net, "network", "any network");
      form?.querySelectorAll("select[name=network]").forEach((s) => refill(s, "network"));
    }
    replace(body, render(net.value));
  }
  return { update };
}

// reloader wraps a page's read of the API so that at most one runs at a
// time: calls while one runs make one more run after it (a burst of events
// costs two reads, not one per batch).
export function reloader(fn) {
  let running = false;
  let again = false;
  const load = async () => {
    if (running) { again = true; return; }
    running = true;
    try { await fn(); } finally {
      running = false;
      if (again) { again = false; load(); }
    }
  };
  return load;
}
