// Topology: networks (with their services), hosts and the tunnels between
// them (two hosts have a tunnel when they hold containers of a common
// network; Geneve unless both are VXLAN), and every host's containers
// grouped by network, coloured by status. Filters (network, host, labels)
// and the level of detail live in the URL. Above DOT_LIMIT containers in
// view, hosts show counts per network instead of one dot per container,
// and above MESH_LIMIT hosts the tunnel mesh is summarised, so 100 hosts
// and 2,000 containers stay readable (and fast: plain DOM, no layout
// engine).
import { h, replace, byName, matches, statusBadge } from "../lib/dom.js";
import { list } from "../lib/live.js";
import { title, select, refill, path } from "../lib/ui.js";
import { setQuery } from "../app.js";

const DOT_LIMIT = 600;
const MESH_LIMIT = 24;

// netColor gives each network a stable hue from its name.
// Hues clear of the status colours (red, orange, green), in two shades.
const HUES = [200, 250, 300, 225, 275, 325, 185, 345];
export function netColor(name) {
  let x = 2166136261; // FNV-1a: net-1 and net-2 land apart
  for (const ch of name) x = Math.imul(x ^ ch.codePointAt(0), 16777619) >>> 0;
  return `hsl(${HUES[x % HUES.length]} 65% ${(x >>> 8) % 2 ? 38 : 58}%)`;
}

export function mount(el, _params, query) {
  const f = {
    network: select("network", "network", query.network, "all networks"),
    host: select("host", "host", query.host, "all hosts"),
    label: h("input", { name: "label", type: "search", placeholder: "app=web", value: query.label || "", "data-filter": true }),
    detail: h("select", { name: "detail" }, [["auto", "auto"], ["containers", "every container"], ["counts", "counts per network"]]
      .map(([v, t]) => h("option", { value: v, selected: v === (query.detail || "auto") }, t))),
  };
  const onFilter = () => { setQuery({ network: f.network.value, host: f.host.value, label: f.label.value, detail: f.detail.value === "auto" ? "" : f.detail.value }); update(); };
  Object.values(f).forEach((x) => x.addEventListener("input", onFilter));
  const body = h("div", { class: "topo" });
  el.append(title("Topology"),
    h("div", { class: "toolbar", role: "search" }, h("label", {}, "Network", f.network), h("label", {}, "Host", f.host),
      h("label", {}, "Container labels", f.label), h("label", {}, "Detail", f.detail)),
    body);
  function update(kinds) {
    if (!kinds || kinds.has("*") || kinds.has("network") || kinds.has("host")) {
      refill(f.network, "network", "all networks");
      refill(f.host, "host", "all hosts");
    }
    replace(body, render(f.network.value, f.host.value, f.label.value, f.detail.value));
  }
  return { update };
}

function render(net, host, label, detail) {
  const containers = list("container").filter((c) => (!net || c.network === net) && (!host || c.host === host) && matches(c.labels, label));
  const networks = list("network").filter((n) => !net || n.name === net).sort(byName);
  // Hosts in view: the filtered one, or those holding a container in view
  // (every host when no container filter is set).
  const holding = new Set(containers.map((c) => c.host));
  const hosts = list("host").filter((x) => (host ? x.name === host : !net && !label ? true : holding.has(x.name))).sort(byName);
  const services = list("service").filter((s) => !net || s.network === net);
  const dots = detail === "containers" || (detail !== "counts" && containers.length <= DOT_LIMIT);

  // host -> network -> containers
  const grid = new Map(hosts.map((x) => [x.name, new Map()]));
  for (const c of containers) {
    const g = grid.get(c.host);
    if (!g) continue;
    if (!g.has(c.network)) g.set(c.network, []);
    g.get(c.network).push(c);
  }
  return h("div", {},
    h("div", { class: "topo-legend", "aria-label": "Legend" },
      h("span", {}, h("span", { class: "sw", style: "background:var(--ok)" }), "running / Ready"),
      h("span", {}, h("span", { class: "sw", style: "background:var(--warn)" }), "pending / not realized"),
      h("span", {}, h("span", { class: "sw", style: "background:var(--bad)" }), "failed / NotReady"),
      h("span", { class: "muted" }, `${hosts.length} hosts, ${containers.length} containers, ${networks.length} networks, ${services.length} services`)),
    h("div", { class: "topo-top" }, mesh(hosts, containers), h("div", { class: "topo-nets" }, networks.map((n) => {
      const svcs = services.filter((s) => s.network === n.name).sort(byName);
      return h("div", { class: "card topo-net", style: `--netc:${netColor(n.name)}` },
        h("a", { href: path("network", n), class: "mono" }, n.name), ` ${n.cidr}`,
        svcs.length ? h("div", {}, svcs.map((s) => h("a", { href: path("service", s), class: "chip", title: `VIP ${s.vip}` }, `svc ${s.name}`))) : null);
    }))),
    h("div", { class: "topo-hosts" }, hosts.map((x) => hostCard(x, grid.get(x.name), dots))));
}

function hostCard(x, groups, dots) {
  const lagging = x.status === "Ready" && !x.realized;
  const nets = [...groups.keys()].sort((a, b) => byName({ name: a }, { name: b }));
  return h("div", { class: `card topo-host ${x.status}${lagging ? " lag" : ""}`, dataset: { host: x.name } },
    h("header", {}, h("a", { href: path("host", x), class: "node-host" }, x.name), statusBadge(lagging ? "behind" : x.status)),
    nets.length === 0 ? h("div", { class: "muted" }, "no containers") : null,
    nets.map((n) => {
      const cs = groups.get(n).sort(byName);
      const style = `--netc:${netColor(n)}`;
      if (!dots) {
        const by = (s) => cs.filter((c) => c.status === s).length;
        return h("div", { class: "topo-group", style },
          h("span", { class: "gname" }, n),
          h("a", { class: "count", href: `/containers?network=${encodeURIComponent(n)}&host=${encodeURIComponent(x.name)}` },
            `${cs.length} containers`), by("pending") ? h("span", { class: "badge warn" }, `${by("pending")} pending`) : null,
          by("failed") ? h("span", { class: "badge bad" }, `${by("failed")} failed`) : null);
      }
      return h("div", { class: "topo-group", style }, h("span", { class: "gname" }, n),
        cs.map((c) => h("a", { class: `node ${c.status}`, href: path("container", c), title: `${c.name} ${c.ip} (${c.status})`, "aria-label": `container ${c.name}`, dataset: { name: c.name } })));
    }));
}

// mesh draws the hosts on a circle with their tunnels, or a summary.
function mesh(hosts, containers) {
  const netsOf = new Map(hosts.map((x) => [x.name, new Set()]));
  for (const c of containers) netsOf.get(c.host)?.add(c.network);
  const edges = [];
  for (let i = 0; i < hosts.length; i++) {
    for (let j = i + 1; j < hosts.length; j++) {
      const a = netsOf.get(hosts[i].name), b = netsOf.get(hosts[j].name);
      if ([...a].some((n) => b.has(n))) edges.push([i, j, hosts[i].tunnelType === "vxlan" && hosts[j].tunnelType === "vxlan" ? "vxlan" : "geneve"]);
    }
  }
  if (hosts.length < 2) return null;
  if (hosts.length > MESH_LIMIT) {
    return h("p", { class: "muted" }, `${edges.length} tunnels between ${hosts.length} hosts (filter by network or host to draw them).`);
  }
  const R = 120, C = 160;
  const pos = hosts.map((_, i) => [C + R * Math.cos((2 * Math.PI * i) / hosts.length - Math.PI / 2), C + R * Math.sin((2 * Math.PI * i) / hosts.length - Math.PI / 2)]);
  return h("svg:svg", { class: "mesh", viewBox: "0 0 320 320", width: 260, height: 260, role: "img", "aria-label": `Tunnels: ${edges.length} between ${hosts.length} hosts` },
    edges.map(([i, j, t]) => h("svg:line", { x1: pos[i][0], y1: pos[i][1], x2: pos[j][0], y2: pos[j][1], class: t },
      h("svg:title", {}, `${hosts[i].name} – ${hosts[j].name} (${t})`))),
    hosts.map((x, i) => h("svg:a", { href: path("host", x) },
      h("svg:circle", { cx: pos[i][0], cy: pos[i][1], r: 9, class: x.status }, h("svg:title", {}, `${x.name} ${x.status}`)),
      h("svg:text", { x: pos[i][0], y: pos[i][1] + (pos[i][1] > C ? 22 : -14), "text-anchor": "middle" }, x.name))));
}
