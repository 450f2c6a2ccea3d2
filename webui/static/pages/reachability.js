// Reachability: for a network, who may open a connection to whom on a
// protocol and port, from GET /networks/{ref}/reachability; each cell's
// title names the deciding policy and rule of both sides. It is read
// again on every policy or container event of the network.
import { h, replace } from "../lib/dom.js";
import { get, q } from "../lib/api.js";
import { title, select, refill, reloader } from "../lib/ui.js";
import { navigate, setQuery } from "../app.js";

const side = (d) => `${d.allowed ? "allowed" : "denied"}: ${d.reason}${d.policy ? ` by policy ${d.policy}` : ""}${d.rule ? ` rule ${d.rule}` : ""}${d.action ? ` (${d.action})` : ""}`;

export function mount(el, params, query) {
  const net = select("network", "network", params.network, "choose a network");
  const proto = h("select", { name: "protocol" }, ["TCP", "UDP", "SCTP", "ICMP"].map((p) => h("option", { value: p, selected: p === (query.protocol || "TCP") }, p)));
  const port = h("input", { name: "port", type: "number", min: 1, max: 65535, value: query.port || "80", "data-filter": true, size: 6 });
  const sel = h("input", { name: "selector", type: "search", placeholder: "app=web", value: query.selector || "" });
  const body = h("div", {});
  const reload = () => { setQuery({ protocol: proto.value, port: port.value, selector: sel.value }); again(); };
  net.addEventListener("change", () => navigate(`/reachability/${encodeURIComponent(net.value)}${location.search}`));
  [proto, port, sel].forEach((x) => x.addEventListener("change", reload));
  el.append(title("Reachability"),
    h("div", { class: "toolbar", role: "search" }, h("label", {}, "Network", net), h("label", {}, "Protocol", proto), h("label", {}, "Port", port), h("label", {}, "Containers (selector)", sel)),
    body);
  const again = reloader(load);
  let seq = 0;
  async function load() {
    if (!params.network) return replace(body, h("p", { class: "muted" }, "Choose a network."));
    const my = ++seq;
    try {
      const r = await get(`/api/v1/networks/${encodeURIComponent(params.network)}/reachability${q({ protocol: proto.value, port: proto.value === "ICMP" ? "" : port.value, selector: sel.value })}`);
      if (my === seq) replace(body, matrix(r));
    } catch (e) {
      if (my === seq) replace(body, h("p", { class: "form-error", role: "alert" }, `${e.status || ""} ${e.message}`));
    }
  }
  return {
    update(kinds) {
      if (kinds.has("*") || kinds.has("network")) refill(net, "network", "choose a network");
      if (kinds.has("*") || kinds.has("policy") || kinds.has("container") || kinds.has("network")) again();
    },
  };
}

function matrix(r) {
  const n = r.containers.length;
  const allowed = r.matrix.flat().filter((c) => c.allowed).length;
  return h("div", {},
    h("p", { class: "muted" }, `${r.protocol}${r.port ? " port " + r.port : ""} at revision ${r.revision}: ${allowed} of ${n * n} pairs may connect. Rows are sources, columns destinations; hover a cell for the deciding policies.`),
    h("div", { class: "scroll" }, h("table", { class: "matrix", "aria-label": "Reachability matrix", dataset: { revision: r.revision } },
      h("thead", {}, h("tr", {}, h("th", {}, ""), r.containers.map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, r.matrix.map((row, i) => h("tr", {}, h("th", { scope: "row", class: "row" }, r.containers[i]),
        row.map((cell, j) => {
          const self = cell.egress.reason === "self";
          return h("td", { class: self ? "self" : cell.allowed ? "allow" : "deny", dataset: { from: r.containers[i], to: r.containers[j] },
            title: `${r.containers[i]} → ${r.containers[j]}\negress: ${side(cell.egress)}\ningress: ${side(cell.ingress)}` }, self ? "·" : cell.allowed ? "✓" : "✗");
        })))))));
}
