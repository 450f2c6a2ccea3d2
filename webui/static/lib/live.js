// live.js: the console's copy of the intent, kept current by one event
// stream (GET /api/v1/events, read with fetch because EventSource cannot
// send the Authorization header). It loads every list once, then applies
// each event's object; after a disconnect it resumes from the last
// revision it has (`since`), and after a 410 (the log was pruned past it)
// it reloads the lists. Pages subscribe and re-render their live parts.
import { auth, get, listAll, ApiError } from "./api.js";

export const KINDS = ["host", "network", "container", "service", "policy"];
const PLURAL = { host: "hosts", network: "networks", container: "containers", service: "services", policy: "policies" };

export const state = {
  rev: 0,
  loaded: false,
  connected: false,
  hosts: new Map(), networks: new Map(), containers: new Map(), services: new Map(), policies: new Map(),
  endpoints: new Map(), // "<service id>/<container id>" -> EndpointHealth
  events: [], // the events seen since the console loaded, newest last
};
export const MAX_EVENTS = 500;

const subs = new Set();
const logSubs = new Set();
let pending = new Set();
let scheduled = false;

// subscribe calls f(kinds changed) after every batch of events; it returns
// the unsubscribe function.
export function subscribe(f) { subs.add(f); return () => subs.delete(f); }
// onPolicyLog calls f(entry) for each policy log entry streamed.
export function onPolicyLog(f) { logSubs.add(f); return () => logSubs.delete(f); }

function changed(kind) {
  pending.add(kind);
  if (scheduled) return;
  scheduled = true;
  queueMicrotask(() => {
    scheduled = false;
    const kinds = pending;
    pending = new Set();
    for (const f of subs) {
      try { f(kinds); } catch (e) { console.warn("console: a page failed to update", e); }
    }
  });
}

export const list = (kind) => [...state[PLURAL[kind]].values()];
export const byNameIn = (kind, name) => list(kind).find((o) => o.name === name);

let controller = null;
let loadedRev = 0;

// start loads the intent and follows the stream until stop().
export async function start() {
  stop();
  controller = new AbortController();
  const signal = controller.signal;
  await load(signal);
  follow(signal);
}

export function stop() {
  controller?.abort();
  controller = null;
  state.connected = false;
}

async function load(signal) {
  const { revision } = await get("/api/v1/revision", { signal });
  const lists = await Promise.all(KINDS.map((k) => listAll(`/api/v1/${PLURAL[k]}`)));
  KINDS.forEach((k, i) => {
    const m = state[PLURAL[k]];
    m.clear();
    for (const o of lists[i]) m.set(o.id, o);
  });
  state.endpoints.clear();
  loadedRev = revision;
  state.rev = revision;
  state.loaded = true;
  changed("*");
}

async function follow(signal) {
  let since = state.rev;
  let delay = 500;
  while (!signal.aborted) {
    try {
      await stream(since, signal, () => { delay = 500; });
      since = state.rev;
    } catch (e) {
      if (signal.aborted) return;
      if (e instanceof ApiError && e.status === 410) {
        // Pruned past us: reload, then stream from the new revision.
        try { await load(signal); } catch { /* retried below */ }
        since = state.rev;
      }
    }
    setConnected(false);
    if (signal.aborted) return;
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 8000);
  }
}

function setConnected(v) {
  if (state.connected !== v) { state.connected = v; changed("connection"); }
}

async function stream(since, signal, onOpen) {
  const res = await fetch(`/api/v1/events?since=${since}`, { headers: { Authorization: `Bearer ${auth.token}`, Accept: "text/event-stream" }, signal });
  if (!res.ok) {
    let p = {};
    try { p = await res.json(); } catch { /* not a problem */ }
    throw new ApiError(res.status, p);
  }
  setConnected(true);
  onOpen();
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let i;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      message(buf.slice(0, i));
      buf = buf.slice(i + 2);
    }
  }
}

function message(block) {
  let event = "", data = "", id = "";
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) continue;
    const c = line.indexOf(":");
    const field = c < 0 ? line : line.slice(0, c);
    const val = c < 0 ? "" : line.slice(c + 1).replace(/^ /, "");
    if (field === "event") event = val;
    else if (field === "data") data += (data ? "\n" : "") + val;
    else if (field === "id") id = val;
  }
  if (data) {
    const obj = JSON.parse(data);
    if (event === "policy-log") for (const f of logSubs) f(obj);
    else if (event === "host-status") hostStatus(obj);
    else apply(obj);
  }
  if (id) state.rev = Math.max(state.rev, Number(id));
}

function apply(e) {
  state.events.push(e);
  if (state.events.length > MAX_EVENTS) state.events.splice(0, state.events.length - MAX_EVENTS);
  changed("event");
  // The lists may be newer than the revision read before them: events up
  // to it are already in.
  if (e.revision <= loadedRev && e.kind !== "endpoint") return;
  const m = e.kind === "endpoint" ? state.endpoints : state[PLURAL[e.kind]];
  if (!m) return;
  if (e.action === "deleted") m.delete(e.id);
  else m.set(e.id, e.object);
  if (e.kind === "container" && e.action === "deleted") {
    for (const k of [...state.endpoints.keys()]) if (k.endsWith(`/${e.id}`)) state.endpoints.delete(k);
  }
  changed(e.kind);
}

// reread reads objects again after a write realized: a container's status
// and a host's applied revision change without an event (observed state,
// not intent), and a realized write is when they just changed.
export async function reread(kind, obj) {
  try {
    const [o, hosts] = await Promise.all([
      obj ? get(`/api/v1/${PLURAL[kind]}/${encodeURIComponent(obj.name)}${obj.network && kind !== "network" ? `?network=${encodeURIComponent(obj.network)}` : ""}`) : null,
      listAll("/api/v1/hosts"),
    ]);
    if (o) state[PLURAL[kind]].set(o.id, o);
    for (const x of hosts) state.hosts.set(x.id, x);
    changed(kind);
    changed("host");
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 404)) console.warn("console: reread failed", e);
  }
}

// hostStatus applies a host-status event (observed state, not intent): the
// host's applied revision, and its containers that may have changed status
// with it (not yet running, or failed, or named failed) are read again, one
// request each, at most a few at a time.
const rereading = new Set();
function hostStatus(hs) {
  const h = [...state.hosts.values()].find((x) => x.name === hs.host);
  if (h) {
    h.appliedRevision = hs.appliedRevision;
    changed("host");
  }
  const failed = new Set(hs.failedContainers || []);
  for (const c of state.containers.values()) {
    if (c.host !== hs.host || rereading.has(c.id)) continue;
    const settled = c.status === "running" && !failed.has(c.id);
    if (settled && !hs.failedAll) continue;
    if (c.revision > hs.appliedRevision) continue; // not applied there yet
    rereading.add(c.id);
    get(`/api/v1/containers/${encodeURIComponent(c.id)}`)
      .then((o) => { state.containers.set(o.id, o); changed("container"); })
      .catch((e) => { if (!(e instanceof ApiError && e.status === 404)) console.warn("console: reread failed", e); })
      .finally(() => rereading.delete(c.id));
  }
}
