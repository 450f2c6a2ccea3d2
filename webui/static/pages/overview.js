// Overview: counts, every host's readiness and realization lag (program
// revision vs applied), what is wrong now, and the latest events.
import { h, replace, table, statusBadge, ago, byName } from "../lib/dom.js";
import { state, list } from "../lib/live.js";
import { title, hostLink, objLink, path } from "../lib/ui.js";

export function mount(el) {
  const body = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  el.append(title("Overview"), body);
  return { update() { if (state.loaded) replace(body, render()); } };
}

export function lag(host) {
  return host.programRevision && host.appliedRevision < host.programRevision ? host.programRevision - host.appliedRevision : 0;
}

function render() {
  const hosts = list("host").sort(byName);
  const containers = list("container");
  const count = (arr, f) => arr.filter(f).length;
  const stat = (label, value, href, sub) => h("a", { class: "card stat", href, style: "text-decoration:none;color:inherit" }, h("b", {}, value), label, sub ? h("div", { class: "muted" }, sub) : null);
  const failed = containers.filter((c) => c.status === "failed");
  const notReady = hosts.filter((x) => x.status !== "Ready");
  const behind = hosts.filter((x) => x.status === "Ready" && !x.realized);
  const problems = [
    ...notReady.map((x) => h("li", {}, statusBadge(x.status), " host ", hostLink(x.name), ` last seen ${ago(x.lastSeen)}`)),
    ...behind.map((x) => h("li", {}, statusBadge("behind"), " host ", hostLink(x.name), ` has applied revision ${x.appliedRevision}, its program is at ${x.programRevision}`)),
    ...failed.slice(0, 20).map((c) => h("li", {}, statusBadge("failed"), " container ", objLink("container", c), ` on ${c.host}: ${c.statusDetail || ""}`)),
  ];
  const recent = state.events.slice(-12).reverse();
  return h("div", {},
    h("div", { class: "cards" },
      stat("hosts", `${count(hosts, (x) => x.status === "Ready")}/${hosts.length}`, "/hosts", "Ready"),
      stat("networks", state.networks.size, "/networks"),
      stat("containers", containers.length, "/containers", `${count(containers, (c) => c.status === "running")} running, ${count(containers, (c) => c.status === "pending")} pending, ${failed.length} failed`),
      stat("services", state.services.size, "/services"),
      stat("policies", state.policies.size, "/policies"),
      stat("revision", state.rev, "/events")),
    h("h2", {}, "Needs attention"),
    problems.length ? h("ul", { class: "card problems" }, problems) : h("p", { class: "muted" }, "Nothing: every host is Ready and realized, no container failed."),
    h("h2", {}, "Hosts"),
    table([
      { title: "Host", cell: (x) => hostLink(x.name) },
      { title: "Status", cell: (x) => statusBadge(x.status) },
      { title: "Program revision", cell: (x) => x.programRevision || "–" },
      { title: "Applied", cell: (x) => x.appliedRevision },
      { title: "Lag", cell: (x) => (lag(x) ? h("span", { class: "badge warn" }, `${lag(x)} behind`) : statusBadge(x.realized ? "realized" : "pending")) },
      { title: "Tunnel", cell: (x) => x.tunnelType },
      { title: "Agent", cell: (x) => h("span", { class: "mono" }, x.agentVersion || "–") },
      { title: "Last seen", cell: (x) => ago(x.lastSeen) },
    ], hosts.slice(0, 200), { label: "Hosts", empty: "No host has registered yet." }),
    hosts.length > 200 ? h("p", {}, h("a", { href: "/hosts" }, `All ${hosts.length} hosts`)) : null,
    h("h2", {}, "Recent events"), h("p", { class: "muted" }, "Since this page was opened."),
    eventList(recent));
}

// eventList renders events (shared with the Events page).
export function eventList(events) {
  return table([
    { title: "Revision", cell: (e) => e.revision },
    { title: "Event", cell: (e) => h("span", { class: `badge ${e.action === "deleted" ? "bad" : e.action === "created" ? "ok" : "muted"}` }, `${e.kind}.${e.action}`) },
    { title: "Object", cell: (e) => (e.action !== "deleted" && e.kind !== "endpoint" ? h("a", { href: path(e.kind, { name: e.name, network: e.network }) }, e.name) : e.name) },
    { title: "Network", cell: (e) => e.network || "" },
    { title: "When", cell: (e) => ago(e.at) },
  ], events, { label: "Events", empty: "No events yet.", key: (e) => `${e.revision}/${e.id}` });
}
