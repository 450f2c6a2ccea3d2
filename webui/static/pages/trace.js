// Trace (operators): why can (or can't) a container reach another
// container, a service, a host's published or node port, or an address?
// POST /api/v1/traces (issue 14; its contract is on the wip-trace branch
// at the time of writing) answers five layers: intent (path, NAT, the
// policies consulted and the deciding rule), the compiled flows per host,
// what each host realized (and its switch's ofproto/trace), an optional
// live probe, and the conclusion with the layers that disagree. The form's
// fields are in the URL, so a trace is a link; opening it runs it again.
import { h, replace, table, byName } from "../lib/dom.js";
import { request, showProblem, clearProblems, ApiError } from "../lib/api.js";
import { list } from "../lib/live.js";
import { title, select, refill, hostLink } from "../lib/ui.js";
import { setQuery } from "../app.js";

const KINDS = ["container", "service", "host", "address"];

export function mount(el, _params, query) {
  const network = select("network", "network", query.network, undefined, { required: true });
  const from = h("select", { name: "source.container", dataset: query.from ? { want: query.from } : {} });
  const kind = h("select", { name: "kind" }, KINDS.map((k) => h("option", { value: k, selected: k === (query.kind || "container") }, k)));
  const to = h("input", { name: "destination", list: "trace-targets", required: true, autocomplete: "off", value: query.to || "", placeholder: "db-1" });
  const targets = h("datalist", { id: "trace-targets" });
  const proto = h("select", { name: "protocol" }, ["TCP", "UDP", "SCTP", "ICMP"].map((p) => h("option", { value: p, selected: p === (query.protocol || "TCP") }, p)));
  const port = h("input", { name: "port", type: "number", min: 1, max: 65535, value: query.port || "80", size: 6 });
  const probe = h("input", { name: "probe", type: "checkbox", checked: query.probe === "1" });
  const out = h("div", { role: "status" });
  const form = h("form", { class: "create card", "aria-label": "Trace", onsubmit: (ev) => { ev.preventDefault(); run(); } },
    h("label", {}, "Network", network), h("label", {}, "From container", from),
    h("label", {}, "To", kind), h("label", {}, "Destination", to), targets,
    h("label", {}, "Protocol", proto), h("label", {}, "Port", port),
    h("label", { class: "check" }, h("span", {}, "Live probe"), probe),
    h("button", { type: "submit", class: "primary" }, "Trace"));
  el.append(title("Trace"), form, out);

  function fillChoices() {
    refill(network, "network");
    const cs = list("container").filter((c) => c.network === network.value).sort(byName);
    const want = from.dataset.want || from.value;
    replace(from, cs.map((c) => h("option", { value: c.name, selected: c.name === want }, c.name)));
    const names = kind.value === "service" ? list("service").filter((s) => s.network === network.value) :
      kind.value === "host" ? list("host") : kind.value === "container" ? cs : [];
    replace(targets, names.sort(byName).map((o) => h("option", { value: o.name })));
  }
  network.addEventListener("change", fillChoices);
  kind.addEventListener("change", fillChoices);
  from.addEventListener("change", () => delete from.dataset.want);

  let seq = 0;
  async function run() {
    clearProblems(form);
    const dest = kind.value === "address" ? { address: to.value.trim() } : { [kind.value]: to.value.trim() };
    if (kind.value !== "address" && kind.value !== "host") dest.network = network.value;
    const body = { source: { container: from.value, network: network.value }, destination: dest, protocol: proto.value, probe: probe.checked };
    if (proto.value !== "ICMP") body.port = Number(port.value);
    setQuery({ network: network.value, from: from.value, kind: kind.value, to: to.value.trim(), protocol: proto.value, port: port.value, probe: probe.checked ? "1" : "" });
    const my = ++seq;
    replace(out, h("p", {}, h("span", { class: "spinner", "aria-hidden": "true" }), " Tracing…"));
    try {
      const tr = await request("POST", "/api/v1/traces", body);
      if (my === seq) replace(out, render(tr));
    } catch (e) {
      if (my !== seq) return;
      replace(out);
      if (e instanceof ApiError && e.status === 404 && !e.problem.field) {
        replace(out, h("p", { class: "form-error" }, "This controller has no trace endpoint (POST /api/v1/traces, issue 14)."));
      } else showProblem(form, e);
    }
  }
  let started = false;
  return {
    update() {
      fillChoices();
      // A trace link runs once the lists are there.
      if (!started && query.from && query.to) { started = true; run(); }
    },
  };
}

const yes = (b, t = "yes", f = "no") => h("span", { class: `badge ${b ? "ok" : "bad"}` }, b ? t : f);

function side(name, s) {
  if (!s) return null;
  return h("div", { class: "card" }, h("h3", {}, `${name}${s.container ? ` at ${s.container}` : ""}: `, yes(s.decision.allowed, "allowed", "denied"),
    ` (${s.decision.reason}${s.decision.policy ? `, policy ${s.decision.policy}` : ""}${s.decision.rule ? ` ${s.decision.rule}` : ""})`),
  s.policies.length ? table([
    { title: "Policy", cell: (p) => [p.policy, p.deciding ? h("span", { class: "badge warn" }, "deciding") : null] },
    { title: "Priority", cell: (p) => p.priority },
    { title: "Action", cell: (p) => p.action },
    { title: "Matching rule", cell: (p) => p.rule || "none" },
  ], s.policies) : h("p", { class: "muted" }, "No policy selects it in this direction."));
}

function render(tr) {
  const i = tr.intent;
  const end = (e) => `${e.kind} ${e.name || ""} ${e.ip}${e.port ? ":" + e.port : ""}${e.host ? ` on ${e.host}` : ""}`;
  return h("div", { class: "trace" },
    h("p", { class: `card ${tr.disagreement ? "form-error" : ""}`, dataset: { conclusion: "" } }, h("b", {}, tr.conclusion)),
    tr.disagreements.length ? h("ul", {}, tr.disagreements.map((d) => h("li", {}, `${d.layers.join(" vs ")}: ${d.detail}${d.host ? ` (host ${d.host}${d.flow ? `, flow ${d.flow}` : ""})` : ""}`))) : null,
    h("h2", {}, "1. Intent"),
    h("dl", { class: "props card" },
      h("dt", {}, "From"), h("dd", {}, end(i.source)),
      h("dt", {}, "To"), h("dd", {}, end(i.destination)),
      h("dt", {}, "Path"), h("dd", {}, i.path, " ", i.hosts.map((x, n) => [n ? " → " : "", hostLink(x)])),
      h("dt", {}, "Service"), h("dd", {}, i.service ? `${i.service.name} ${i.service.vip}:${i.service.port} → backend ${i.service.chosen || "none"} of ${i.service.backends.length}` : "none"),
      h("dt", {}, "NAT"), h("dd", {}, i.nat.length ? i.nat.map((n) => h("div", {}, `${n.kind} ${n.from} → ${n.to}${n.host ? ` on ${n.host}` : ""}: ${n.why}`)) : "none"),
      h("dt", {}, "Verdict"), h("dd", {}, yes(i.allowed, "allowed", "denied"), ` ${i.verdict}`),
      h("dt", {}, "Revision"), h("dd", {}, tr.revision)),
    h("div", { class: "split" }, side("Egress", i.egress), side("Ingress", i.ingress)),
    h("h2", {}, "2. Compiled flows"),
    tr.compiled.map((c) => h("div", { class: "card" }, h("h3", {}, `${c.host}: ${c.verdict}${c.output ? ` to ${c.output}` : ""}`),
      h("p", { class: "mono muted" }, `in ${c.inPort}: ${c.flow}`),
      table([
        { title: "Table", cell: (f) => `${f.table} ${f.tableName}` },
        { title: "Priority", cell: (f) => f.priority },
        { title: "Owner", cell: (f) => f.owner },
        { title: "Match", cell: (f) => h("span", { class: "mono" }, f.match) },
        { title: "Actions", cell: (f) => h("span", { class: "mono" }, f.actions) },
      ], c.flows))),
    h("h2", {}, "3. Realized"),
    table([
      { title: "Host", cell: (r) => hostLink(r.host) },
      { title: "Program / applied", cell: (r) => `${r.programRevision} / ${r.appliedRevision}` },
      { title: "Current", cell: (r) => yes(r.current) },
      { title: "Switch", cell: (r) => (r.switch ? [r.switch.status, r.switch.verdict ? ` ${r.switch.verdict}` : "", r.switch.error ? ` ${r.switch.error}` : ""] : "") },
      { title: "Datapath actions", cell: (r) => h("span", { class: "mono" }, r.switch?.datapathActions || "") },
    ], tr.realized),
    h("h2", {}, "4. Live probe"),
    tr.live ? h("p", {}, yes(tr.live.status === "answered", tr.live.status, tr.live.status),
      ` in ${(tr.live.micros / 1000).toFixed(1)} ms${tr.live.host ? ` from ${tr.live.host}` : ""}${tr.live.detail ? `: ${tr.live.detail}` : ""}`) : h("p", { class: "muted" }, "Not asked (tick Live probe)."),
    tr.assumptions.length ? h("p", { class: "muted" }, "Assumes: ", tr.assumptions.join("; ")) : null);
}
