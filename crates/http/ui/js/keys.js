// API keys: create (the secret is shown once, with a copy button), rotate, revoke, last use.

import { api, busy, confirmAction, enc, field, fill, h, listAll, messageOf, notify, option, page, secretBox, session, table, time } from "./lib.js";

const EXPIRIES = [["", "never"], [86400, "1 day"], [30 * 86400, "30 days"], [90 * 86400, "90 days"], [365 * 86400, "1 year"]];

export async function keysPage(main) {
  const org = enc(session.me.org_id);
  const shown = h("div", {});
  const listBox = h("div", {});
  const [roles, spaces] = await Promise.all([
    api("GET", `/api/v1/orgs/${org}/roles`),
    listAll(`/api/v1/orgs/${org}/spaces?limit=200`).catch(() => []),
  ]);
  const load = async () => {
    const keys = await listAll(`/api/v1/orgs/${org}/api-keys?limit=200`);
    fill(listBox, keys.length === 0 ? h("p", {}, "No API keys yet.") : table(["Name", "Role", "Spaces", "Created", "Expires", "Last used", ""], keys.map((k) => [
      k.name, k.role, k.spaces ? k.spaces.map((s) => (spaces.find((x) => x.id === s) || { name: s }).name).join(", ") : "all",
      time(k.created_at), k.expires_at ? time(k.expires_at) : "never",
      k.last_used_at ? h("span", {}, time(k.last_used_at), k.last_used_ip ? ` from ${k.last_used_ip}` : "") : "never",
      k.revoked_at ? h("span", { class: "badge failed" }, "revoked") : h("span", { class: "row" },
        h("button", {
          type: "button", class: "quiet", "aria-label": `Rotate the key ${k.name}`,
          onclick: async () => {
            if (!(await confirmAction(`Rotate ${k.name}? The current secret keeps working for one day, then stops.`, "Rotate"))) return;
            try {
              const r = await api("POST", `/api/v1/api-keys/${enc(k.id)}/rotate`, {});
              fill(shown, secretBox(`New secret of ${k.name}`, r.api_key, `the old one works until ${new Date(r.previous_valid_until).toLocaleString()}. This is shown only now.`));
              await load();
            } catch (e) {
              notify(messageOf(e), "error");
            }
          },
        }, "Rotate"),
        h("button", {
          type: "button", class: "quiet danger", "aria-label": `Revoke the key ${k.name}`,
          onclick: async () => {
            if (!(await confirmAction(`Revoke ${k.name}? It stops working at once.`, "Revoke"))) return;
            try {
              await api("DELETE", `/api/v1/api-keys/${enc(k.id)}`);
              notify(`${k.name} revoked.`);
              await load();
            } catch (e) {
              notify(messageOf(e), "error");
            }
          },
        }, "Revoke")),
    ]), "API keys"));
  };
  const form = h("form", { class: "card", novalidate: true }, h("h2", {}, "New API key"),
    field("Name", { name: "name", required: true, maxlength: 200, placeholder: "e.g. website deploy" }),
    field("Role", { tag: "select", name: "role", options: roles.items.map((r) => option(r.name, r.name, r.name === "viewer")) }),
    spaces.length ? h("fieldset", { class: "perms" }, h("legend", {}, "Only these spaces (none ticked: every space)"),
      spaces.map((s) => h("div", { class: "check" }, h("input", { type: "checkbox", name: "spaces", value: s.id, id: `key-space-${s.id}` }), h("label", { for: `key-space-${s.id}` }, s.name)))) : null,
    field("Expires after", { tag: "select", name: "expires_in", options: EXPIRIES.map(([v, t]) => option(v, t, v === 90 * 86400)) }),
    h("button", { type: "submit" }, "Create key"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = new FormData(form);
    const body = { name: f.get("name").trim(), role: f.get("role") };
    const chosen = f.getAll("spaces");
    if (chosen.length) body.spaces = chosen;
    if (f.get("expires_in")) body.expires_in = Number(f.get("expires_in"));
    const { withReauth } = await import("./account.js");
    const made = await busy(form, () => withReauth(() => api("POST", `/api/v1/orgs/${org}/api-keys`, body)));
    if (!made) return;
    form.reset();
    fill(shown, secretBox(`Secret of ${body.name}`, made.api_key, "copy it now: it is shown only once. Use it as STRONGROOM_API_KEY or in Authorization: Bearer."));
    await load();
  });
  await load();
  page(main, "API keys", form, shown, h("section", { class: "card", "aria-labelledby": "keys-title" }, h("h2", { id: "keys-title" }, "Keys"), listBox));
}
