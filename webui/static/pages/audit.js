// Audit (admin): who changed what, newest first, filtered by kind and
// actor; read again after every event (each write makes one).
import { h, replace, table, ago } from "../lib/dom.js";
import { get, q } from "../lib/api.js";
import { title, reloader } from "../lib/ui.js";
import { setQuery } from "../app.js";

const PAGE = 1000;

export function mount(el, _params, query) {
  const kind = h("select", { name: "kind" }, ["", "host", "network", "container", "service", "policy", "token"].map((k) => h("option", { value: k, selected: k === (query.kind || "") }, k || "any kind")));
  const actor = h("input", { name: "actor", type: "search", placeholder: "token name", value: query.actor || "", "data-filter": true });
  const body = h("div", {});
  const reload = () => { setQuery({ kind: kind.value, actor: actor.value }); load(); };
  kind.addEventListener("change", reload);
  actor.addEventListener("change", reload);
  el.append(title("Audit log"), h("div", { class: "toolbar" }, h("label", {}, "Kind", kind), h("label", {}, "Actor", actor)), body);
  let seq = 0;
  async function load() {
    const my = ++seq;
    try {
      // The log is oldest first: read to the end, keep the newest.
      let items = [], cont = "";
      for (;;) {
        const page = await get(`/api/v1/audit${q({ kind: kind.value, actor: actor.value, limit: PAGE, continue: cont })}`);
        items = items.concat(page.items).slice(-PAGE);
        if (!page.continue) break;
        cont = page.continue;
      }
      if (my !== seq) return;
      replace(body, table([
        { title: "When", cell: (e) => ago(e.at) },
        { title: "Revision", cell: (e) => e.revision },
        { title: "Actor", cell: (e) => e.actor },
        { title: "Action", cell: (e) => e.action },
        { title: "Kind", cell: (e) => e.kind },
        { title: "Object", cell: (e) => e.objectName },
      ], items.reverse(), { label: "Audit log", empty: "No entries." }));
    } catch (e) {
      if (my === seq) replace(body, h("p", { class: "form-error" }, e.message));
    }
  }
  return { update: reloader(load) };
}
