// Events: the live tail of the event stream (the last 500 seen), filtered
// by kind or name.
import { h, replace } from "../lib/dom.js";
import { state } from "../lib/live.js";
import { title } from "../lib/ui.js";
import { setQuery } from "../app.js";
import { eventList } from "./overview.js";

export function mount(el, _params, query) {
  const kind = h("select", { name: "kind", onchange: () => { setQuery({ kind: kind.value }); update(); } },
    ["", "host", "network", "container", "service", "policy", "endpoint"].map((k) => h("option", { value: k, selected: k === (query.kind || "") }, k || "any kind")));
  const text = h("input", { name: "q", type: "search", placeholder: "name", value: query.q || "", "data-filter": true,
    oninput: () => { setQuery({ q: text.value }); update(); } });
  const body = h("div", {});
  el.append(title("Events", h("span", { class: "muted" }, "live, newest first")), h("div", { class: "toolbar" }, h("label", {}, "Kind", kind), h("label", {}, "Name", text)), body);
  function update() {
    const evs = state.events.filter((e) => (!kind.value || e.kind === kind.value) && (!text.value || e.name.includes(text.value))).reverse();
    replace(body, eventList(evs));
  }
  return { update };
}
