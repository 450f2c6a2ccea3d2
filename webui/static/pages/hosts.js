// Hosts: readiness, address, tunnel type, program revision vs applied,
// containers per host; a host's page lists its containers.
import { h, replace, table, labelChips, byName, statusBadge, ago, matches } from "../lib/dom.js";
import { list, byNameIn } from "../lib/live.js";
import { title, objLink, hostLink, netLink, deleteButton } from "../lib/ui.js";
import { navigate, setQuery } from "../app.js";
import { countBy } from "./networks.js";
import { lag } from "./overview.js";

export function mount(el, params, query) {
  return params.name ? detail(el, params.name) : index(el, query);
}

function index(el, query) {
  const label = h("input", { name: "label", type: "search", placeholder: "zone=a", value: query.label || "", "data-filter": true,
    oninput: () => { setQuery({ label: label.value }); update(); } });
  const body = h("div", {});
  el.append(title("Hosts"), h("div", { class: "toolbar" }, h("label", {}, "Labels", label)), body);
  function update() {
    const per = countBy(list("container"), "host");
    const hosts = list("host").filter((x) => matches(x.labels, label.value)).sort(byName);
    replace(body, table([
      { title: "Host", cell: (x) => hostLink(x.name) },
      { title: "Status", cell: (x) => statusBadge(x.status) },
      { title: "Address", cell: (x) => h("span", { class: "mono" }, x.address) },
      { title: "Tunnel", cell: (x) => x.tunnelType },
      { title: "Agent", cell: (x) => h("span", { class: "mono" }, x.agentVersion || "–") },
      { title: "Program / applied", cell: (x) => [`${x.programRevision || "–"} / ${x.appliedRevision} `, lag(x) ? h("span", { class: "badge warn" }, `${lag(x)} behind`) : null] },
      { title: "Containers", cell: (x) => h("a", { href: `/containers?host=${encodeURIComponent(x.name)}` }, per[x.name] || 0) },
      { title: "Last seen", cell: (x) => ago(x.lastSeen) },
      { title: "Labels", cell: (x) => labelChips(x.labels) },
      { title: "", cell: (x) => deleteButton("host", x) },
    ], hosts, { label: "Hosts", empty: "No host has registered yet: start an agent (make run starts three).", key: (x) => x.name }));
  }
  return { update };
}

function detail(el, name) {
  const body = h("div", {});
  el.append(title(`Host ${name}`), body);
  return {
    update() {
      const x = byNameIn("host", name);
      if (!x) return replace(body, h("p", {}, "No such host. ", h("a", { href: "/hosts" }, "All hosts")));
      const cs = list("container").filter((c) => c.host === name).sort(byName);
      const peers = list("host").filter((p) => p.name !== name).sort(byName);
      replace(body,
        h("div", { class: "toolbar" }, h("a", { href: `/topology?host=${encodeURIComponent(name)}` }, "Topology"),
          deleteButton("host", x, "operator", () => navigate("/hosts"))),
        h("dl", { class: "props card" },
          h("dt", {}, "Status"), h("dd", {}, statusBadge(x.status), ` last seen ${ago(x.lastSeen)}`),
          h("dt", {}, "Address"), h("dd", { class: "mono" }, x.address),
          h("dt", {}, "Program revision"), h("dd", {}, x.programRevision || "–"),
          h("dt", {}, "Applied revision"), h("dd", {}, x.appliedRevision, " ", statusBadge(x.realized ? "realized" : "behind")),
          h("dt", {}, "Agent"), h("dd", { class: "mono" }, x.agentVersion || "–"),
          h("dt", {}, "Tunnels"), h("dd", {}, `${x.tunnelType} to ${peers.length} peers: `, peers.slice(0, 30).map((p) => [hostLink(p.name), " "]), peers.length > 30 ? "…" : ""),
          h("dt", {}, "Labels"), h("dd", {}, labelChips(x.labels))),
        h("h2", {}, `Containers (${cs.length})`),
        table([
          { title: "Container", cell: (c) => objLink("container", c) },
          { title: "Network", cell: (c) => netLink(c.network) },
          { title: "Status", cell: (c) => statusBadge(c.status) },
          { title: "IP", cell: (c) => h("span", { class: "mono" }, c.ip) },
        ], cs.slice(0, 500), { key: (c) => `${c.network}/${c.name}` }));
    },
  };
}
