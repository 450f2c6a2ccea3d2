// Policies: each policy's rules in words, its per-rule counters (GET
// /policies/{ref}/stats) and its connection log (GET /policies/{ref}/log,
// then live policy-log entries from the stream).
import { h, replace, table, labelChips, byName, ago } from "../lib/dom.js";
import { get, q, can } from "../lib/api.js";
import { list, onPolicyLog } from "../lib/live.js";
import { title, objLink, netLink, deleteButton, networkIndex, createForm, select, parsePorts, reloader } from "../lib/ui.js";
import { navigate } from "../app.js";

function peerText(p) {
  if (p.cidr) return `${p.cidr}${p.except?.length ? ` except ${p.except.join(", ")}` : ""}`;
  return p.selector ? `containers ${p.selector}` : "every container of the network";
}
function portText(p) {
  const port = p.port ? (p.endPort ? `${p.port}-${p.endPort}` : `${p.port}`) : "any port";
  return `${p.protocol || "TCP"} ${port}`;
}

// rulesText says what a policy does, one line per rule.
export function rulesText(p) {
  const lines = [];
  const dir = (rules, name, word) => {
    if (rules === null || rules === undefined) return;
    if (rules.length === 0) lines.push(`${name}: ${p.action === "deny" ? "nothing denied" : "nothing allowed (isolated)"}`);
    rules.forEach((r, i) => {
      const peers = r.peers?.length ? r.peers.map(peerText).join(" or ") : "anywhere";
      const ports = r.ports?.length ? r.ports.map(portText).join(", ") : "any port";
      lines.push(`${name}[${i}]: ${p.action} ${word} ${peers} on ${ports}`);
    });
  };
  dir(p.ingress, "ingress", "from");
  dir(p.egress, "egress", "to");
  return lines;
}

export function mount(el, params, query) {
  return params.name ? detail(el, params.network, params.name) : index(el, query);
}

// createPolicy builds a policy of one rule; richer ones come from syctl
// apply or the API.
function createPolicy() {
  if (!can("operator")) return null;
  return createForm({
    label: "Create policy", kind: "policy", path: "/api/v1/policies",
    fields: [
      h("label", {}, "Name", h("input", { name: "name", required: true, autocomplete: "off", placeholder: "db-from-web" })),
      h("label", {}, "Network", select("network", "network", "", undefined, { required: true })),
      h("label", {}, "Applies to", h("input", { name: "selector", autocomplete: "off", placeholder: "app=db (empty: all)" })),
      h("label", {}, "Action", h("select", { name: "action" }, h("option", { value: "allow" }, "allow"), h("option", { value: "deny" }, "deny"))),
      h("label", {}, "Direction", h("select", { name: "direction" }, h("option", { value: "ingress" }, "ingress (from)"), h("option", { value: "egress" }, "egress (to)"))),
      h("label", {}, "Peers", h("input", { name: "peers", dataset: { fields: "ingress[0].peers egress[0].peers" }, autocomplete: "off", placeholder: "app=web, or 10.0.0.0/8; empty: nothing" })),
      h("label", {}, "Ports", h("input", { name: "ports", dataset: { fields: "ingress[0].ports egress[0].ports" }, autocomplete: "off", placeholder: "80, 5432/TCP; empty: all" })),
      h("label", {}, "Priority", h("input", { name: "priority", type: "number", autocomplete: "off", placeholder: "1000" })),
    ],
    build: (f) => {
      const peers = f.get("peers").trim();
      const rules = peers === "" ? [] : [{
        peers: [/^\d+\.\d+\.\d+\.\d+\/\d+$/.test(peers) ? { cidr: peers } : { selector: peers }],
        ports: parsePorts(f.get("ports"), "ports", true),
      }];
      const body = { name: f.get("name").trim(), network: f.get("network"), selector: f.get("selector").trim(), action: f.get("action"), [f.get("direction")]: rules };
      if (f.get("priority")) body.priority = Number(f.get("priority"));
      return body;
    },
  });
}

function index(el, query) {
  return networkIndex(el, query, "Policies", (net) => table([
    { title: "Policy", cell: (p) => objLink("policy", p) },
    { title: "Network", cell: (p) => netLink(p.network) },
    { title: "Applies to", cell: (p) => h("code", {}, p.selector || "(all)") },
    { title: "Priority", cell: (p) => p.priority },
    { title: "Rules", cell: (p) => rulesText(p).map((l) => h("div", { class: "rule" }, l)) },
    { title: "", cell: (p) => deleteButton("policy", p) },
  ], list("policy").filter((p) => !net || p.network === net).sort((a, b) => b.priority - a.priority || byName(a, b)),
  { label: "Policies", empty: "No policies: every container may reach every other of its network.", key: (p) => `${p.network}/${p.name}` }), createPolicy());
}

function detail(el, network, name) {
  const info = h("div", {});
  const stats = h("div", {});
  const logBody = h("tbody", {});
  const ref = `${encodeURIComponent(name)}`;
  el.append(title(`Policy ${name}`, h("span", { class: "muted" }, `on network ${network}`)), info,
    h("h2", {}, "Counters per rule"), stats,
    h("h2", {}, "Connection log"), h("div", { class: "scroll log card" }, h("table", { class: "grid", "aria-label": "Policy log" },
      h("thead", {}, h("tr", {}, ["Time", "Host", "Rule", "Verdict", "Source", "Destination"].map((t) => h("th", {}, t)))), logBody)));
  const logRow = (e) => h("tr", {}, h("td", {}, ago(e.time)), h("td", {}, e.host), h("td", {}, e.rule), h("td", {}, e.verdict),
    h("td", { class: "mono" }, `${e.source.container || e.source.ip}${e.source.port ? ":" + e.source.port : ""}`),
    h("td", { class: "mono" }, `${e.destination.container || e.destination.ip}${e.destination.port ? ":" + e.destination.port : ""} ${e.protocol}`));
  let policyID = "";
  get(`/api/v1/policies/${ref}/log${q({ network, limit: 100 })}`).then((r) => {
    logBody.prepend(...r.items.slice().reverse().map(logRow));
    if (!r.items.length) logBody.append(h("tr", { class: "empty" }, h("td", { colspan: 6, class: "muted" }, "No connection logged yet (a policy logs with log: true).")));
  }).catch((e) => logBody.append(h("tr", {}, h("td", { colspan: 6, class: "form-error" }, e.message))));
  const off = onPolicyLog((e) => {
    if (e.policyId !== policyID) return;
    logBody.querySelector("tr.empty")?.remove();
    logBody.prepend(logRow(e));
  });
  const reload = reloader(loadStats);
  let seq = 0;
  async function loadStats() {
    const my = ++seq;
    try {
      const s = await get(`/api/v1/policies/${ref}/stats${q({ network })}`);
      if (my === seq) replace(stats, table([
        { title: "Rule", cell: (r) => r.rule },
        { title: "Direction", cell: (r) => r.direction },
        { title: "Packets", cell: (r) => r.packets },
        { title: "Bytes", cell: (r) => r.bytes },
        { title: "Connections", cell: (r) => r.connections },
        { title: "Hosts", cell: (r) => r.hosts.map((x) => h("span", { class: "chip" }, `${x.host}: ${x.connections}`)) },
      ], s.rules, { label: "Rule counters", empty: "No counted rules." }));
    } catch (e) {
      if (my === seq) replace(stats, h("p", { class: "form-error" }, e.message));
    }
  }
  return {
    update(kinds) {
      const p = list("policy").find((x) => x.network === network && x.name === name);
      if (!p) return replace(info, h("p", {}, "No such policy. ", h("a", { href: "/policies" }, "All policies")));
      policyID = p.id;
      replace(info, h("div", { class: "toolbar" }, h("a", { href: `/reachability/${encodeURIComponent(network)}` }, "Reachability"),
        deleteButton("policy", p, "operator", () => navigate("/policies"))),
        h("dl", { class: "props card" },
          h("dt", {}, "Applies to"), h("dd", {}, h("code", {}, p.selector || "(every container)")),
          h("dt", {}, "Action"), h("dd", {}, p.action),
          h("dt", {}, "Priority"), h("dd", {}, p.priority),
          h("dt", {}, "Rules"), h("dd", {}, rulesText(p).map((l) => h("div", { class: "rule" }, l))),
          h("dt", {}, "Log"), h("dd", {}, p.log ? "on" : "off"),
          h("dt", {}, "Labels"), h("dd", {}, labelChips(p.labels)),
          h("dt", {}, "Revision"), h("dd", {}, p.revision)));
      if (kinds.has("*") || kinds.has("policy")) reload();
    },
    destroy: off,
  };
}
