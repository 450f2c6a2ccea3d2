// app.js: the console's shell: sign-in, the router (one URL per page,
// object and filter; deep links load through index.html), navigation by
// keyboard, the theme, and mounting the pages, which update themselves
// from the live state (lib/live.js) on every event.
import { h, replace } from "./lib/dom.js";
import { auth, can, get, ApiError, setUnauthorizedHandler } from "./lib/api.js";
import * as live from "./lib/live.js";

// Pages: path pattern, module, nav label and key, and the role they need.
const PAGES = [
  { id: "overview", label: "Overview", key: "o", pattern: /^\/(?:overview)?$/ },
  { id: "topology", label: "Topology", key: "t", pattern: /^\/topology$/ },
  { id: "hosts", label: "Hosts", key: "h", pattern: /^\/hosts(?:\/([^/]+))?$/, params: ["name"] },
  { id: "networks", label: "Networks", key: "n", pattern: /^\/networks(?:\/([^/]+))?$/, params: ["name"] },
  { id: "containers", label: "Containers", key: "c", pattern: /^\/containers(?:\/([^/]+)\/([^/]+))?$/, params: ["network", "name"] },
  { id: "services", label: "Services", key: "s", pattern: /^\/services(?:\/([^/]+)\/([^/]+))?$/, params: ["network", "name"] },
  { id: "policies", label: "Policies", key: "p", pattern: /^\/policies(?:\/([^/]+)\/([^/]+))?$/, params: ["network", "name"] },
  { id: "reachability", label: "Reachability", key: "r", pattern: /^\/reachability(?:\/([^/]+))?$/, params: ["network"] },
  { id: "trace", label: "Trace", key: "x", pattern: /^\/trace$/, role: "operator" },
  { id: "events", label: "Events", key: "e", pattern: /^\/events$/ },
  { id: "tokens", label: "Tokens", key: "k", pattern: /^\/tokens$/, role: "admin" },
  { id: "audit", label: "Audit", key: "a", pattern: /^\/audit$/, role: "admin" },
];

const main = document.getElementById("main");
let current = null; // {page, view, unsubscribe}

// navigate goes to a console URL (pushState unless replace).
export function navigate(url, replaceState = false) {
  if (url !== location.pathname + location.search) history[replaceState ? "replaceState" : "pushState"](null, "", url);
  route();
}

// setQuery changes the current URL's query (filters) without a new page.
export function setQuery(params) {
  const s = new URLSearchParams(location.search);
  for (const [k, v] of Object.entries(params)) (v ? s.set(k, v) : s.delete(k));
  const t = s.toString();
  history.replaceState(null, "", location.pathname + (t ? `?${t}` : ""));
}

let routing = 0; // the latest route(): an earlier one still loading its page gives way

async function route() {
  const gen = ++routing;
  current?.unsubscribe?.();
  current?.view?.destroy?.();
  current = null;
  if (!auth.me) return signIn();
  const path = location.pathname.replace(/\/+$/, "") || "/";
  for (const page of PAGES) {
    const m = path.match(page.pattern);
    if (!m) continue;
    if (page.role && !can(page.role)) return notFound(`The ${page.label} page needs ${page.role === "admin" ? "an admin" : "an operator"} token.`);
    const params = {};
    (page.params || []).forEach((p, i) => { params[p] = m[i + 1] ? decodeURIComponent(m[i + 1]) : ""; });
    const query = Object.fromEntries(new URLSearchParams(location.search));
    markNav(page.id);
    document.title = `${page.label} · Switchyard`;
    const mod = await import(`./pages/${page.id}.js`);
    if (gen !== routing) return;
    const el = h("section", { class: `page page-${page.id}`, "aria-labelledby": "page-title" });
    replace(main, el);
    const view = mod.mount(el, params, query) || {};
    const me = { page, view };
    current = me;
    me.unsubscribe = live.subscribe((kinds) => { if (current === me) view.update?.(kinds); });
    if (live.state.loaded) view.update?.(new Set(["*"]));
    return;
  }
  notFound("No such page.");
}

function notFound(msg) {
  markNav("");
  replace(main, h("section", { class: "page" }, h("h1", { id: "page-title" }, "Not found"), h("p", {}, msg, " ", h("a", { href: "/overview" }, "Overview"))));
}

function markNav(id) {
  document.querySelectorAll("#nav a").forEach((a) => (a.dataset.page === id ? a.setAttribute("aria-current", "page") : a.removeAttribute("aria-current")));
}

function buildNav() {
  replace(document.getElementById("nav"), PAGES.filter((p) => !p.role || can(p.role)).map((p) =>
    h("a", { href: `/${p.id}`, dataset: { page: p.id }, title: `${p.label} (g ${p.key})` }, p.label)));
  const keys = [["g + letter", "go to a page: " + PAGES.map((p) => `${p.key} ${p.label}`).join(", ")],
    ["/", "focus the page's filter"], ["j / k", "next / previous row"], ["d", "light / dark / system theme"], ["?", "this help"]];
  replace(document.getElementById("keys"), keys.map(([k, v]) => [h("dt", {}, h("kbd", {}, k)), h("dd", {}, v)]));
}

function signIn(message) {
  markNav("");
  document.getElementById("nav").replaceChildren();
  document.getElementById("signout").hidden = true;
  document.getElementById("whoami").textContent = "";
  const input = h("input", { name: "token", type: "password", autocomplete: "current-password", required: true, placeholder: "sy_…", "aria-describedby": "token-help" });
  const form = h("form", { class: "card signin", onsubmit: async (ev) => {
    ev.preventDefault();
    auth.token = input.value.trim();
    await begin(form);
  } },
  h("h1", { id: "page-title" }, "Sign in"),
  message ? h("p", { class: "form-error", role: "alert" }, message) : null,
  h("label", {}, "API token", input),
  h("p", { id: "token-help", class: "muted" }, "A token from ", h("code", {}, "make run"), "'s output or ", h("code", {}, "syctl"),
    ". It is kept in this tab's session storage only."),
  h("button", { type: "submit", class: "primary" }, "Sign in"));
  replace(main, h("section", { class: "page" }, form));
  input.focus();
}

// begin checks the token with GET /whoami, then loads the state.
async function begin(form) {
  try {
    auth.me = await get("/api/v1/whoami", { noSignout: true });
  } catch (e) {
    auth.token = "";
    auth.me = null;
    const msg = e instanceof ApiError && e.status === 401 ? "That token is not valid (or was revoked)." :
      e instanceof ApiError && e.status === 403 ? "Node tokens cannot use the console." : `Cannot reach the controller: ${e.message}`;
    if (form) {
      form.querySelector(".form-error")?.remove();
      form.querySelector("input").after(h("span", { class: "field-error", role: "alert", dataset: { field: "token" } }, msg));
    } else signIn(msg);
    return;
  }
  document.body.dataset.role = auth.me.role;
  const who = document.getElementById("whoami");
  who.textContent = `${auth.me.name} (${auth.me.role})`;
  who.title = who.textContent;
  document.getElementById("signout").hidden = false;
  buildNav();
  route();
  live.start().catch((e) => console.warn("console: loading failed", e));
}

function signOut(message) {
  live.stop();
  auth.token = "";
  auth.me = null;
  delete document.body.dataset.role;
  history.replaceState(null, "", "/");
  signIn(message);
}

// Theme: system (prefers-color-scheme), light or dark, kept per browser.
const THEMES = ["system", "light", "dark"];
function applyTheme(t) {
  if (t === "system") delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = t;
  document.getElementById("theme").title = `Theme: ${t} (d)`;
}
function cycleTheme() {
  const t = THEMES[(THEMES.indexOf(localStorage.getItem("switchyard.theme") || "system") + 1) % THEMES.length];
  localStorage.setItem("switchyard.theme", t);
  applyTheme(t);
}

let gPending = false;
function onKey(ev) {
  const t = ev.target;
  if (ev.ctrlKey || ev.metaKey || ev.altKey || t.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName)) return;
  if (gPending) {
    gPending = false;
    const p = PAGES.find((p) => p.key === ev.key && (!p.role || can(p.role)));
    if (p && auth.me) { ev.preventDefault(); navigate(`/${p.id}`); document.getElementById("main").focus(); }
    return;
  }
  switch (ev.key) {
    case "g": gPending = true; setTimeout(() => (gPending = false), 1500); break;
    case "/": { const f = main.querySelector("[data-filter]"); if (f) { ev.preventDefault(); f.focus(); } break; }
    case "?": document.getElementById("help").showModal(); break;
    case "d": cycleTheme(); break;
    case "j": case "k": {
      const links = [...main.querySelectorAll("tbody tr td:first-child a, .topo a.node")];
      if (!links.length) break;
      const i = links.indexOf(document.activeElement);
      const n = ev.key === "j" ? Math.min(i + 1, links.length - 1) : Math.max(i - 1, 0);
      links[i < 0 ? 0 : n].focus();
      ev.preventDefault();
      break;
    }
  }
}

function onLiveChange() {
  const dot = document.getElementById("live");
  dot.className = `live ${live.state.connected ? "on" : "off"}`;
  dot.title = live.state.connected ? `Live: following events (revision ${live.state.rev})` : "Reconnecting to the event stream…";
}

function init() {
  applyTheme(localStorage.getItem("switchyard.theme") || "system");
  document.getElementById("theme").addEventListener("click", cycleTheme);
  document.getElementById("signout").addEventListener("click", () => signOut());
  document.addEventListener("keydown", onKey);
  document.addEventListener("click", (ev) => {
    const a = ev.target.closest("a[href]");
    if (!a || ev.defaultPrevented || ev.button !== 0 || ev.ctrlKey || ev.metaKey || ev.shiftKey || a.target) return;
    const url = new URL(a.href, location.href);
    if (url.origin !== location.origin || url.pathname.startsWith("/api/") || a.hasAttribute("download")) return;
    ev.preventDefault();
    if (url.hash && url.pathname === location.pathname) return;
    navigate(url.pathname + url.search);
    main.focus();
  });
  window.addEventListener("popstate", route);
  // Leaving the page (or entering the back/forward cache) closes the event
  // stream, which would otherwise hold one of the browser's six
  // connections to the controller; coming back resumes it.
  window.addEventListener("pagehide", () => live.stop());
  window.addEventListener("pageshow", (ev) => { if (ev.persisted && auth.me) live.start().catch(() => {}); });
  live.subscribe(onLiveChange);
  setUnauthorizedHandler(() => signOut("The token is no longer valid. Sign in again."));
  // make run prints a URL with #token=…: take it and drop it from the URL.
  const m = location.hash.match(/token=([^&]+)/);
  if (m) {
    auth.token = decodeURIComponent(m[1]);
    history.replaceState(null, "", location.pathname + location.search);
  }
  if (auth.token) begin(null);
  else signIn();
}

init();
