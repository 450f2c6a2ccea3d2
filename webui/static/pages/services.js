// Services: VIP, ports, selector, weights, affinity; a service's page
// shows its endpoints with their health (GET /services/{ref}/endpoints,
// re-read on every endpoint or container event of its network).
import { h, replace, table, labelChips, byName, statusBadge, ago } from "../lib/dom.js";
import { get, q, can } from "../lib/api.js";
import { list } from "../lib/live.js";
import { title, objLink, hostLink, netLink, deleteButton, networkIndex, createForm, select, parsePorts, reloader } from "../lib/ui.js";
import { navigate } from "../app.js";

const ports = (s) => s.ports.map((p) => h("span", { class: "chip mono" }, `${p.name ? p.name + " " : ""}${p.port}${p.targetPort && p.targetPort !== p.port ? "→" + p.targetPort : ""}/${p.protocol || "TCP"}${p.nodePort ? " node " + p.nodePort : ""}`));

export function mount(el, params, query) {
  return params.name ? detail(el, params.network, params.name) : index(el, query);
}

function createService() {
  if (!can("operator")) return null;
  return createForm({
    label: "Create service", kind: "service", path: "/api/v1/services",
    fields: [
      h("label", {}, "Name", h("input", { name: "name", required: true, autocomplete: "off", placeholder: "web" })),
      h("label", {}, "Network", select("network", "network", "", undefined, { required: true })),
      h("label", {}, "Selector", h("input", { name: "selector", required: true, autocomplete: "off", placeholder: "app=web" })),
      h("label", {}, "Ports", h("input", { name: "ports", required: true, autocomplete: "off", placeholder: "80, 53/UDP" })),
    ],
    build: (f) => ({ name: f.get("name").trim(), network: f.get("network"), selector: f.get("selector").trim(), ports: parsePorts(f.get("ports"), "ports", false) }),
  });
}

function index(el, query) {
  return networkIndex(el, query, "Services", (net) => table([
    { title: "Service", cell: (s) => objLink("service", s) },
    { title: "Network", cell: (s) => netLink(s.network) },
    { title: "VIP", cell: (s) => h("span", { class: "mono" }, s.vip) },
    { title: "Ports", cell: ports },
    { title: "Selector", cell: (s) => h("code", {}, s.selector) },
    { title: "Weights", cell: (s) => (s.weights || []).map((w) => h("span", { class: "chip" }, `${w.selector}: ${w.weight}`)) },
    { title: "", cell: (s) => deleteButton("service", s) },
  ], list("service").filter((s) => !net || s.network === net).sort(byName), { label: "Services", empty: "No services.", key: (s) => `${s.network}/${s.name}` }), createService());
}

function detail(el, network, name) {
  const info = h("div", {});
  const eps = h("div", {}, h("p", { class: "muted" }, "Loading endpoints…"));
  el.append(title(`Service ${name}`, h("span", { class: "muted" }, `on network ${network}`)), info, h("h2", {}, "Endpoints"), eps);
  const reload = reloader(loadEndpoints);
  let seq = 0;
  async function loadEndpoints() {
    const my = ++seq;
    try {
      const r = await get(`/api/v1/services/${encodeURIComponent(name)}/endpoints${q({ network })}`);
      if (my !== seq) return;
      replace(eps, table([
        { title: "Container", cell: (e) => objLink("container", { name: e.container, network }) },
        { title: "Host", cell: (e) => hostLink(e.host) },
        { title: "Address", cell: (e) => h("span", { class: "mono" }, e.address) },
        { title: "Ports", cell: (e) => e.ports.map((p) => h("span", { class: "chip" }, `${p.port}/${p.protocol}`)) },
        { title: "Weight", cell: (e) => e.weight },
        { title: "Health", cell: (e) => [statusBadge(e.health), e.reason ? h("div", { class: "muted" }, e.reason) : null, e.since ? h("div", { class: "muted" }, `since ${ago(e.since)}`) : null] },
      ], r.items, { label: "Endpoints", empty: "No container matches the selector." }));
    } catch (e) {
      if (my === seq) replace(eps, h("p", { class: "form-error" }, e.message));
    }
  }
  return {
    update(kinds) {
      const s = list("service").find((x) => x.network === network && x.name === name);
      if (!s) return replace(info, h("p", {}, "No such service. ", h("a", { href: "/services" }, "All services")));
      replace(info, h("div", { class: "toolbar" }, deleteButton("service", s, "operator", () => navigate("/services"))),
        h("dl", { class: "props card" },
          h("dt", {}, "VIP"), h("dd", { class: "mono" }, s.vip),
          h("dt", {}, "Ports"), h("dd", {}, ports(s)),
          h("dt", {}, "Selector"), h("dd", {}, h("code", {}, s.selector)),
          h("dt", {}, "Weights"), h("dd", {}, (s.weights || []).length ? s.weights.map((w) => h("span", { class: "chip" }, `${w.selector}: ${w.weight}`)) : "equal"),
          h("dt", {}, "Affinity"), h("dd", {}, s.sessionAffinity, s.sessionAffinityTimeoutSeconds ? ` (${s.sessionAffinityTimeoutSeconds} s)` : ""),
          h("dt", {}, "Health check"), h("dd", {}, s.healthCheck ? `${s.healthCheck.protocol} :${s.healthCheck.port}${s.healthCheck.path || ""} every ${s.healthCheck.intervalSeconds} s` : "none"),
          h("dt", {}, "External traffic"), h("dd", {}, s.externalTrafficPolicy || "Cluster"),
          h("dt", {}, "Labels"), h("dd", {}, labelChips(s.labels))));
      if (!kinds || kinds.has("*") || kinds.has("endpoint") || kinds.has("container") || kinds.has("service")) reload();
    },
  };
}
