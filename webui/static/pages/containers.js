// Containers: status, IP, MAC, host, labels, realization; filter by
// network, host, label and status (kept in the URL); create (waits for
// realization, shows progress), move to another host, delete.
import { h, replace, table, labelChips, parseLabels, byName, statusBadge, matches } from "../lib/dom.js";
import { can, write, showProblem, clearProblems } from "../lib/api.js";
import { list, state, reread } from "../lib/live.js";
import { title, objLink, hostLink, netLink, deleteButton, createForm, fieldError, select, refill, apiPath } from "../lib/ui.js";
import { navigate, setQuery } from "../app.js";

export function mount(el, params, query) {
  return params.name ? detail(el, params.network, params.name) : index(el, query);
}

const LIMIT = 500;

function index(el, query) {
  const f = {
    network: select("network", "network", query.network, "any network"),
    host: select("host", "host", query.host, "any host"),
    status: h("select", { name: "status" }, ["", "running", "pending", "failed"].map((s) => h("option", { value: s, selected: s === (query.status || "") }, s || "any status"))),
    label: h("input", { name: "label", type: "search", placeholder: "app=web", value: query.label || "" }),
    q: h("input", { name: "q", type: "search", placeholder: "name or IP", value: query.q || "", "data-filter": true }),
  };
  const body = h("div", {});
  const onFilter = () => { setQuery(Object.fromEntries(Object.entries(f).map(([k, v]) => [k, v.value]))); update(); };
  Object.values(f).forEach((x) => x.addEventListener("input", onFilter));
  let form = null, netSel = null, hostSel = null;
  if (can("operator")) {
    netSel = select("network", "network", query.network, undefined, { required: true });
    hostSel = select("host", "host", query.host, undefined, { required: true });
    form = createForm({
      label: "Create container", kind: "container", path: "/api/v1/containers",
      fields: [
        h("label", {}, "Name", h("input", { name: "name", required: true, placeholder: "web-1", autocomplete: "off" })),
        h("label", {}, "Network", netSel),
        h("label", {}, "Host", hostSel),
        h("label", {}, "Labels", h("input", { name: "labels", placeholder: "app=web", autocomplete: "off" })),
      ],
      build: (d) => {
        const labels = parseLabels(d.get("labels") || "");
        if (!labels) throw fieldError("labels", "labels are key=value pairs separated by commas");
        return { name: d.get("name").trim(), network: d.get("network"), host: d.get("host"), labels };
      },
    });
  }
  el.append(title("Containers"), form,
    h("div", { class: "toolbar", role: "search" }, h("label", {}, "Network", f.network), h("label", {}, "Host", f.host), h("label", {}, "Status", f.status),
      h("label", {}, "Labels", f.label), h("label", {}, "Search", f.q)), body);
  function update(kinds) {
    if (!kinds || kinds.has("*") || kinds.has("network") || kinds.has("host")) {
      refill(f.network, "network", "any network");
      refill(f.host, "host", "any host");
      if (netSel) refill(netSel, "network");
      if (hostSel) refill(hostSel, "host");
    }
    const rows = list("container").filter((c) => (!f.network.value || c.network === f.network.value) && (!f.host.value || c.host === f.host.value) &&
      (!f.status.value || c.status === f.status.value) && matches(c.labels, f.label.value) &&
      (!f.q.value || c.name.includes(f.q.value) || c.ip.startsWith(f.q.value))).sort(byName);
    replace(body, h("p", { class: "muted" }, `${rows.length} containers${rows.length > LIMIT ? `, the first ${LIMIT} shown: filter to see others` : ""}`),
      table([
        { title: "Container", cell: (c) => objLink("container", c) },
        { title: "Network", cell: (c) => netLink(c.network) },
        { title: "Host", cell: (c) => hostLink(c.host) },
        { title: "Status", cell: (c) => [statusBadge(c.status), c.statusDetail ? h("div", { class: "muted" }, c.statusDetail) : null] },
        { title: "IP", cell: (c) => h("span", { class: "mono" }, c.ip) },
        { title: "MAC", cell: (c) => h("span", { class: "mono wide" }, c.mac) },
        { title: "Labels", cell: (c) => labelChips(c.labels) },
        { title: "", cell: (c) => deleteButton("container", c) },
      ], rows.slice(0, LIMIT), { label: "Containers", empty: "No containers match.", key: (c) => `${c.network}/${c.name}` }));
  }
  return { update };
}

// realization says whether the container's host has applied a program
// at least as new as the container.
export function realization(c) {
  const host = [...state.hosts.values()].find((x) => x.name === c.host);
  if (!host) return statusBadge("pending");
  if (host.status !== "Ready") return h("span", { class: "badge bad" }, "host NotReady");
  return host.appliedRevision >= c.revision ? statusBadge("realized") : h("span", { class: "badge warn" }, `host at ${host.appliedRevision}, needs ${c.revision}`);
}

function detail(el, network, name) {
  const body = h("div", {});
  el.append(title(`Container ${name}`, h("span", { class: "muted" }, `on network ${network}`)), body);
  let move = null;
  if (can("operator")) {
    const target = select("host", "host", "", undefined, { "aria-label": "Target host" });
    const progress = h("div", { class: "progress", role: "status", hidden: true });
    move = h("div", {}, h("form", { class: "create card", "aria-label": "Move container", onsubmit: async (ev) => {
      ev.preventDefault();
      clearProblems(ev.target);
      try {
        await write("POST", `${apiPath("container", { name, network })}`.replace("?", "/move?"), { host: target.value }, progress);
        reread("container", { name, network });
      } catch (e) { showProblem(ev.target, e); }
    } }, h("label", {}, "Move to host", target), h("button", { type: "submit", class: "primary" }, "Move")), progress);
    move.refresh = (c) => { refill(target, "host"); if (!target.dataset.touched && c) target.value = c.host; };
    target.addEventListener("change", () => (target.dataset.touched = "1"));
  }
  const info = h("div", {});
  body.append(info, move);
  return {
    update() {
      const c = list("container").find((x) => x.network === network && x.name === name);
      move?.refresh(c);
      if (!c) return replace(info, h("p", {}, "No such container (deleted?). ", h("a", { href: "/containers" }, "All containers")));
      replace(info, h("div", { class: "toolbar" }, deleteButton("container", c, "operator", () => navigate("/containers"))),
        h("dl", { class: "props card" },
          h("dt", {}, "Status"), h("dd", { dataset: { field: "status" } }, statusBadge(c.status), c.statusDetail ? ` ${c.statusDetail}` : ""),
          h("dt", {}, "Host"), h("dd", { dataset: { field: "host" } }, hostLink(c.host)),
          h("dt", {}, "Realization"), h("dd", {}, realization(c)),
          h("dt", {}, "Network"), h("dd", {}, netLink(c.network)),
          h("dt", {}, "IP"), h("dd", { class: "mono" }, c.ip),
          h("dt", {}, "MAC"), h("dd", { class: "mono" }, c.mac),
          h("dt", {}, "IP block"), h("dd", { class: "mono", dataset: { field: "ipBlock" } }, c.ipBlock || "(borrowed: routed on its own)"),
          h("dt", {}, "Labels"), h("dd", {}, labelChips(c.labels)),
          h("dt", {}, "Netns"), h("dd", { class: "mono" }, c.netns || "(managed sandbox)"),
          h("dt", {}, "DNS"), h("dd", { class: "mono" }, c.dns ? `${c.dns.nameservers.join(" ")}; search ${c.dns.search.join(" ")}` : ""),
          h("dt", {}, "Published"), h("dd", {}, (c.publish || []).map((p) => h("span", { class: "chip" }, `${p.hostIP || "*"}:${p.hostPort} → ${p.port}/${p.protocol || "TCP"}`))),
          h("dt", {}, "Revision"), h("dd", {}, c.revision)));
    },
  };
}
