// dom.js: building DOM without innerHTML (every value is text, so nothing
// the API returns can inject markup), and small formatting helpers.

// h(tag, attrs, ...children): attrs may hold on* handlers, class, dataset,
// and plain attributes; children are nodes, strings, numbers or arrays
// (null and false are skipped).
export function h(tag, attrs, ...children) {
  const svg = tag.startsWith("svg:");
  const el = svg ? document.createElementNS("http://www.w3.org/2000/svg", tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "style") setStyle(el, v);
    else if (k === "value" && !svg) el.value = v;
    else if (k === "checked" || k === "selected" || k === "disabled") el[k] = !!v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

// setStyle applies "prop: value; ..." through the CSSOM: the console's
// Content-Security-Policy refuses style attributes.
function setStyle(el, css) {
  for (const decl of css.split(";")) {
    const i = decl.indexOf(":");
    if (i > 0) el.style.setProperty(decl.slice(0, i).trim(), decl.slice(i + 1).trim());
  }
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// replace swaps el's children for the given ones.
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// link to a console path (the router intercepts it).
export const link = (href, ...children) => h("a", { href }, ...children);

export function ago(t) {
  if (!t) return "never";
  const s = Math.round((Date.now() - new Date(t).getTime()) / 1000);
  if (s < 60) return `${Math.max(s, 0)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return new Date(t).toISOString().slice(0, 16).replace("T", " ");
}

export const labelText = (labels) => Object.entries(labels || {}).map(([k, v]) => `${k}=${v}`).join(", ");

export function labelChips(labels) {
  return Object.entries(labels || {}).map(([k, v]) => h("span", { class: "chip" }, `${k}=${v}`));
}

// parseLabels reads "a=b, c=d" into an object (null when malformed).
export function parseLabels(s) {
  const out = {};
  for (const part of s.split(",").map((p) => p.trim()).filter(Boolean)) {
    const i = part.indexOf("=");
    if (i <= 0) return null;
    out[part.slice(0, i).trim()] = part.slice(i + 1).trim();
  }
  return out;
}

// matches says whether labels satisfy "k=v" terms (comma-separated; a bare
// "k" needs the key).
export function matches(labels, filter) {
  if (!filter) return true;
  return filter.split(",").map((p) => p.trim()).filter(Boolean).every((term) => {
    const i = term.indexOf("=");
    if (i < 0) return labels && term in labels;
    return labels && labels[term.slice(0, i).trim()] === term.slice(i + 1).trim();
  });
}

export function statusBadge(s) {
  const cls = { Ready: "ok", running: "ok", healthy: "ok", realized: "ok", NotReady: "bad", failed: "bad",
    unhealthy: "bad", pending: "warn", unchecked: "muted", behind: "warn" }[s] || "muted";
  return h("span", { class: `badge ${cls}` }, s);
}

// table builds a table from column specs {title, cell(row), sort?}.
export function table(cols, rows, opts = {}) {
  return h("div", { class: "scroll" },
    h("table", { class: "grid", "aria-label": opts.label || null },
      h("thead", {}, h("tr", {}, cols.map((c) => h("th", { scope: "col" }, c.title)))),
      h("tbody", {}, rows.length === 0
        ? h("tr", {}, h("td", { colspan: cols.length, class: "muted" }, opts.empty || "Nothing here yet."))
        : rows.map((r) => h("tr", { dataset: { key: opts.key ? opts.key(r) : "" } }, cols.map((c) => h("td", {}, c.cell(r))))))));
}

// byName sorts objects by name, numbers by value (host-2 before host-10).
const collator = new Intl.Collator("en", { numeric: true });
export const byName = (a, b) => collator.compare(a.name, b.name);
