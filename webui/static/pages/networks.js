// Networks: CIDR, gateway, VNI, the IPAM usage bar and free addresses;
// create (waits for realization) and delete; a network's page lists what
// it holds.
import { h, replace, table, labelChips, parseLabels, byName, statusBadge } from "../lib/dom.js";
import { can } from "../lib/api.js";
import { state, list, byNameIn } from "../lib/live.js";
import { title, objLink, hostLink, deleteButton, createForm, fieldError } from "../lib/ui.js";
import { navigate } from "../app.js";

export function usage(n) {
  const a = n.addresses;
  if (!a) return "";
  const pct = a.total ? Math.round((100 * a.used) / a.total) : 0;
  return h("span", { title: `${a.used} of ${a.total} addresses used` },
    h("span", { class: `bar${pct >= 90 ? " full" : ""}`, role: "meter", "aria-valuenow": pct, "aria-valuemin": 0, "aria-valuemax": 100, "aria-label": "addresses used" },
      h("span", { style: `width:${pct}%` })), `${a.used}/${a.total}`);
}

export function mount(el, params) {
  return params.name ? detail(el, params.name) : index(el);
}

function index(el) {
  const body = h("div", {});
  const form = can("operator") ? createForm({
    label: "Create network", kind: "network", path: "/api/v1/networks",
    fields: [
      h("label", {}, "Name", h("input", { name: "name", required: true, placeholder: "blue", autocomplete: "off" })),
      h("label", {}, "CIDR", h("input", { name: "cidr", required: true, placeholder: "10.10.0.0/24", autocomplete: "off" })),
      h("label", {}, "Labels", h("input", { name: "labels", placeholder: "team=web", autocomplete: "off" })),
    ],
    build: (f) => {
      const labels = parseLabels(f.get("labels") || "");
      if (!labels) throw fieldError("labels", "labels are key=value pairs separated by commas");
      return { name: f.get("name").trim(), cidr: f.get("cidr").trim(), labels };
    },
  }) : null;
  el.append(title("Networks"), form, body);
  return {
    update() {
      const nets = list("network").sort(byName);
      const per = countBy(list("container"), "network");
      replace(body, table([
        { title: "Network", cell: (n) => objLink("network", n) },
        { title: "CIDR", cell: (n) => h("span", { class: "mono" }, n.cidr) },
        { title: "Gateway", cell: (n) => h("span", { class: "mono" }, n.gateway) },
        { title: "VNI", cell: (n) => n.vni },
        { title: "Addresses used", cell: usage },
        { title: "Free", cell: (n) => n.addresses?.free ?? "" },
        { title: "Containers", cell: (n) => h("a", { href: `/containers?network=${encodeURIComponent(n.name)}` }, per[n.name] || 0) },
        { title: "Labels", cell: (n) => labelChips(n.labels) },
        { title: "", cell: (n) => deleteButton("network", n) },
      ], nets, { label: "Networks", empty: "No networks yet.", key: (n) => n.name }));
    },
  };
}

export function countBy(arr, key) {
  const m = {};
  for (const o of arr) m[o[key]] = (m[o[key]] || 0) + 1;
  return m;
}

function detail(el, name) {
  const body = h("div", {});
  el.append(title(`Network ${name}`), body);
  return {
    update() {
      const n = byNameIn("network", name);
      if (!n) return replace(body, h("p", {}, "No such network (deleted?). ", h("a", { href: "/networks" }, "All networks")));
      const inNet = (k) => list(k).filter((o) => o.network === name).sort(byName);
      const cs = inNet("container");
      replace(body,
        h("div", { class: "toolbar" },
          h("a", { href: `/topology?network=${encodeURIComponent(name)}` }, "Topology"), " · ",
          h("a", { href: `/reachability/${encodeURIComponent(name)}` }, "Reachability"), " · ",
          h("a", { href: `/containers?network=${encodeURIComponent(name)}` }, "Containers"),
          deleteButton("network", n, "operator", () => navigate("/networks"))),
        h("dl", { class: "props card" },
          h("dt", {}, "CIDR"), h("dd", { class: "mono" }, n.cidr),
          h("dt", {}, "Gateway"), h("dd", { class: "mono" }, n.gateway),
          h("dt", {}, "VNI"), h("dd", {}, n.vni),
          h("dt", {}, "MTU"), h("dd", {}, n.mtu),
          h("dt", {}, "Addresses"), h("dd", {}, usage(n), n.addresses ? ` (${n.addresses.free} free)` : ""),
          h("dt", {}, "Egress"), h("dd", {}, n.egress && !n.egress.snat ? "blocked" : "SNAT through the host", n.egressIP ? ` via egress IP ${n.egressIP}` : ""),
          h("dt", {}, "Labels"), h("dd", {}, labelChips(n.labels)),
          h("dt", {}, "Revision"), h("dd", {}, n.revision)),
        h("h2", {}, `Containers (${cs.length})`),
        table([
          { title: "Container", cell: (c) => objLink("container", c) },
          { title: "Status", cell: (c) => statusBadge(c.status) },
          { title: "IP", cell: (c) => h("span", { class: "mono" }, c.ip) },
          { title: "Host", cell: (c) => hostLink(c.host) },
        ], cs.slice(0, 500)),
        h("h2", {}, "Services"),
        table([{ title: "Service", cell: (s) => objLink("service", s) }, { title: "VIP", cell: (s) => s.vip }], inNet("service")),
        h("h2", {}, "Policies"),
        table([{ title: "Policy", cell: (p) => objLink("policy", p) }, { title: "Selector", cell: (p) => p.selector || "(all)" }], inNet("policy")));
      void state;
    },
  };
}
