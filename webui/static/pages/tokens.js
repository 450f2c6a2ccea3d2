// Tokens (admin): list, create (the secret is shown once), revoke.
import { h, replace, table, ago } from "../lib/dom.js";
import { listAll } from "../lib/api.js";
import { title, createForm, deleteButton } from "../lib/ui.js";

export function mount(el) {
  const body = h("div", {});
  const secret = h("div", { role: "status" });
  const role = h("select", { name: "role" }, ["viewer", "operator", "admin", "node"].map((r) => h("option", { value: r }, r)));
  const form = createForm({
    label: "Create token", path: "/api/v1/tokens", wait: false,
    fields: [
      h("label", {}, "Name", h("input", { name: "name", required: true, autocomplete: "off", placeholder: "alice" })),
      h("label", {}, "Role", role),
      h("label", {}, "Host (node tokens)", h("input", { name: "host", autocomplete: "off" })),
    ],
    build: (f) => ({ name: f.get("name").trim(), role: f.get("role"), host: f.get("host").trim() || undefined }),
    done: (t) => {
      replace(secret, h("p", { class: "card" }, `Token ${t.name} (${t.role}): `, h("code", { class: "secret" }, t.secret), " — copy it now, it is not shown again."));
      load();
    },
  });
  el.append(title("Tokens"), form, secret, body);
  async function load() {
    try {
      const items = await listAll("/api/v1/tokens");
      replace(body, table([
        { title: "Name", cell: (t) => t.name },
        { title: "Role", cell: (t) => t.role },
        { title: "Host", cell: (t) => t.host || "" },
        { title: "Created", cell: (t) => ago(t.createdAt) },
        { title: "Revoked", cell: (t) => (t.revokedAt ? ago(t.revokedAt) : "") },
        { title: "", cell: (t) => (t.revokedAt ? null : deleteButton("token", t, "admin", load)) },
      ], items, { label: "Tokens", key: (t) => t.name }));
    } catch (e) {
      replace(body, h("p", { class: "form-error" }, e.message));
    }
  }
  load();
  return {};
}
