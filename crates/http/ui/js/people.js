// Members (change role, remove, erase an account as an owner, who has 2FA), invitations
// (invite, list, revoke), roles (custom roles with a permission picker), the organization's
// security settings, and its deletion by an owner.

import { api, busy, can, confirmAction, enc, field, fill, h, listAll, messageOf, notify, option, page, session, table, time } from "./lib.js";
import { withReauth } from "./account.js";

const PERMISSIONS = [
  ["org:read", "See the organization"], ["org:manage", "Change organization settings"],
  ["space:read", "See spaces"], ["space:create", "Create spaces"], ["space:manage", "Change space settings (retention)"],
  ["asset:read", "Read assets"], ["asset:create", "Upload assets"], ["asset:delete", "Delete assets (to the trash)"], ["asset:purge", "Purge assets"],
  ["link:create", "Create links"], ["link:delete", "Revoke links"], ["audit:read", "Read the audit trail"],
  ["apikey:manage", "Manage API keys"], ["member:manage", "Manage members"], ["member:invite", "Invite members"],
  ["role:manage", "Manage custom roles"],
];

const org = () => enc(session.me.org_id);

function roleSelect(roles, current, label) {
  return h("select", { "aria-label": label }, roles.map((r) => option(r.name, r.name, r.name === current)));
}

async function membersCard(roles) {
  const card = h("section", { class: "card", "aria-labelledby": "members-title" }, h("h2", { id: "members-title" }, "Members"));
  const members = await listAll(`/api/v1/orgs/${org()}/members`);
  card.append(table(["Email", "Role", "Two-factor", ""], members.map((m) => {
    const self = m.user_id === session.me.user_id;
    const select = roleSelect(roles, m.role, `Role of ${m.email}`);
    select.disabled = self;
    select.addEventListener("change", async () => {
      try {
        await api("PATCH", `/api/v1/orgs/${org()}/members/${enc(m.user_id)}`, { role: select.value });
        notify(`${m.email} is now ${select.value}.`);
        m.role = select.value;
      } catch (e) {
        select.value = m.role;
        notify(messageOf(e), "error");
      }
    });
    const remove = self ? h("small", {}, "you") : h("button", {
      type: "button", class: "quiet danger", "aria-label": `Remove ${m.email}`,
      onclick: async (ev) => {
        if (!(await confirmAction(`Remove ${m.email} from the organization? Their sessions and keys here stop working.`, "Remove"))) return;
        try {
          await api("DELETE", `/api/v1/orgs/${org()}/members/${enc(m.user_id)}`);
          ev.target.closest("tr").remove();
          notify(`${m.email} removed.`);
        } catch (e) {
          notify(messageOf(e), "error");
        }
      },
    }, "Remove");
    // Only an owner erases an account, and only of someone in this organization alone (the
    // server says so otherwise).
    const erase = self || session.me.role !== "owner" ? null : h("button", {
      type: "button", class: "quiet danger", "aria-label": `Erase the account of ${m.email}`,
      onclick: async (ev) => {
        if (!(await confirmAction(`Erase the account of ${m.email} for good? Their uploads stay; their account, sessions and keys are deleted, and the addresses and details of their past actions in the audit trail can no longer be read.`, "Erase"))) return;
        try {
          await withReauth(() => api("POST", `/api/v1/orgs/${org()}/members/${enc(m.user_id)}/erase`));
          ev.target.closest("tr").remove();
          notify(`The account of ${m.email} was erased.`);
        } catch (e) {
          notify(messageOf(e), "error");
        }
      },
    }, "Erase account");
    return [m.email, select, m.mfa_enabled ? h("span", { class: "badge ready" }, "on") : h("span", { class: "badge" }, "off"), h("span", { class: "row-actions" }, remove, erase ? " " : null, erase)];
  }), "Members"));
  return card;
}

async function invitationsCard(roles) {
  const card = h("section", { class: "card", "aria-labelledby": "inv-title" }, h("h2", { id: "inv-title" }, "Invitations"));
  const listBox = h("div", {});
  const load = async () => {
    const res = await api("GET", `/api/v1/orgs/${org()}/invitations`);
    fill(listBox, res.items.length === 0 ? h("p", {}, "No invitations.") : table(["Email", "Role", "State", "Sent", "Expires", ""], res.items.map((i) => [
      i.email, i.role, i.status, time(i.created_at), time(i.expires_at),
      i.status === "pending" ? h("button", {
        type: "button", class: "quiet danger", "aria-label": `Revoke the invitation of ${i.email}`,
        onclick: async () => {
          try {
            await api("DELETE", `/api/v1/invitations/${enc(i.id)}`);
            notify(`The invitation of ${i.email} is revoked.`);
            await load();
          } catch (e) {
            notify(messageOf(e), "error");
          }
        },
      }, "Revoke") : "",
    ]), "Invitations"));
  };
  const form = h("form", { class: "inline", novalidate: true },
    field("Email", { name: "email", type: "email", required: true, autocomplete: "off" }),
    field("Role", { tag: "select", name: "role", options: roles.filter((r) => r.name !== "owner" || can("org:manage")).map((r) => option(r.name, r.name, r.name === "viewer")) }),
    h("button", { type: "submit" }, "Send invitation"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = new FormData(form);
    const done = await busy(form, () => api("POST", `/api/v1/orgs/${org()}/invitations`, { email: f.get("email").trim(), role: f.get("role") }));
    if (done) {
      notify(`Invitation sent to ${f.get("email").trim()}.`);
      form.reset();
      await load();
    }
  });
  card.append(form, listBox);
  await load();
  return card;
}

export async function membersPage(main) {
  const roles = (await api("GET", `/api/v1/orgs/${org()}/roles`)).items;
  page(main, "Members",
    can("member:manage") ? await membersCard(roles) : null,
    can("member:invite") ? await invitationsCard(roles) : null);
}

function permissionPicker(name, selected) {
  return h("fieldset", { class: "perms" }, h("legend", {}, "Permissions"),
    PERMISSIONS.map(([p, text]) => {
      const id = `${name}-${p.replace(":", "-")}`;
      return h("div", { class: "check" }, h("input", { type: "checkbox", name: "perm", value: p, id, checked: selected.includes(p) }),
        h("label", { for: id }, text, " ", h("code", {}, p)));
    }));
}

export async function rolesPage(main) {
  const res = await api("GET", `/api/v1/orgs/${org()}/roles`);
  const manage = can("role:manage");
  const rows = res.items.map((r) => {
    if (r.builtin || !manage) return h("tr", {}, h("th", { scope: "row" }, r.name, r.builtin ? h("small", {}, " built-in") : ""), h("td", {}, r.permissions.join(", ")), h("td", {}));
    const edit = h("form", { class: "inline-perms", novalidate: true }, permissionPicker(r.id, r.permissions), h("button", { type: "submit" }, "Save"));
    edit.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const permissions = new FormData(edit).getAll("perm");
      const ok = await busy(edit, () => api("PATCH", `/api/v1/orgs/${org()}/roles/${enc(r.id)}`, { permissions }).then(() => true));
      if (ok) notify(`Role ${r.name} saved.`);
    });
    const del = h("button", {
      type: "button", class: "quiet danger", "aria-label": `Delete the role ${r.name}`,
      onclick: async () => {
        if (!(await confirmAction(`Delete the role ${r.name}?`))) return;
        try {
          await api("DELETE", `/api/v1/orgs/${org()}/roles/${enc(r.id)}`);
          notify(`Role ${r.name} deleted.`);
          await rolesPage(main);
        } catch (e) {
          notify(messageOf(e), "error");
        }
      },
    }, "Delete");
    return h("tr", {}, h("th", { scope: "row" }, r.name), h("td", {}, edit), h("td", {}, del));
  });
  let create = null;
  if (manage) {
    create = h("form", { class: "card", novalidate: true }, h("h2", {}, "New custom role"),
      field("Name", { name: "name", required: true, maxlength: 64 }), permissionPicker("new", ["asset:read", "space:read"]),
      h("button", { type: "submit" }, "Create role"));
    create.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const f = new FormData(create);
      const made = await busy(create, () => api("POST", `/api/v1/orgs/${org()}/roles`, { name: f.get("name").trim(), permissions: f.getAll("perm") }));
      if (made) {
        notify(`Role ${made.name} created.`);
        await rolesPage(main);
      }
    });
  }
  page(main, "Roles",
    h("table", { class: "roles" }, h("caption", { class: "sr" }, "Roles"),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Role"), h("th", { scope: "col" }, "Permissions"), h("th", { scope: "col" }, ""))),
      h("tbody", {}, rows)),
    create);
}

const minutes = (s) => Math.round(s / 60);

export async function securityPage(main) {
  let policyForm = null;
  let orgView = null;
  if (can("org:manage") || can("org:read")) {
    const o = await api("GET", `/api/v1/orgs/${org()}`);
    orgView = o;
    policyForm = h("form", { class: "card", novalidate: true }, h("h2", {}, "Security policy"),
      h("div", { class: "field check" }, h("input", { type: "checkbox", name: "require_mfa", id: "require-mfa", checked: o.require_mfa }),
        h("label", { for: "require-mfa" }, "Require two-factor authentication for every member")),
      field("Sign out after inactivity (minutes)", { name: "idle", type: "number", min: 5, max: 1440, value: minutes(o.session_idle_secs) }),
      field("Sign out after (minutes since sign-in)", { name: "absolute", type: "number", min: 15, max: 43200, value: minutes(o.session_absolute_secs) }),
      field("Keep deleted assets in the trash for (days)", { name: "trash", type: "number", min: 1, max: 365, value: o.trash_days }),
      h("p", { class: "hint" }, `Region: ${o.region}. Created ${new Date(o.created_at).toLocaleDateString()}.`),
      can("org:manage") ? h("button", { type: "submit" }, "Save policy") : h("p", { class: "hint" }, "Only the owner can change these."));
    if (!can("org:manage")) policyForm.querySelectorAll("input").forEach((i) => (i.disabled = true));
    policyForm.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const f = new FormData(policyForm);
      const body = {
        require_mfa: f.get("require_mfa") === "on",
        session_idle_secs: Number(f.get("idle")) * 60,
        session_absolute_secs: Number(f.get("absolute")) * 60,
        trash_days: Number(f.get("trash")),
      };
      const done = await busy(policyForm, () => api("PATCH", `/api/v1/orgs/${org()}`, body));
      if (done) notify("Security policy saved.");
    });
  }
  let backups = null;
  if (policyForm && orgView && orgView.backups) backups = backupCard(orgView.backups);
  let who = null;
  if (can("member:manage")) {
    const members = await listAll(`/api/v1/orgs/${org()}/members`);
    const on = members.filter((m) => m.mfa_enabled).length;
    who = h("section", { class: "card", "aria-labelledby": "who-title" }, h("h2", { id: "who-title" }, "Who has two-factor authentication"),
      h("p", {}, `${on} of ${members.length} members.`),
      table(["Member", "Role", "Two-factor"], members.map((m) => [m.email, m.role, m.mfa_enabled ? "on" : "off"]), "Two-factor by member"));
  }
  const deletion = session.me.role === "owner" && orgView ? deleteOrgCard(orgView.name) : null;
  page(main, "Security", policyForm, backups, who, deletion);
}

/** An owner deletes the whole organization: its name typed, a dialog, the password if needed. */
function deleteOrgCard(name) {
  const say = h("p", { class: "error", role: "alert" });
  const form = h("form", { class: "card danger-zone", novalidate: true, "aria-labelledby": "delete-org-title" },
    h("h2", { id: "delete-org-title" }, "Delete this organization"),
    h("p", {}, "Every space, asset, rendition, link, key, role and invitation is destroyed for good; the content's keys are destroyed at once, here and in the backups. Members who belong to no other organization have their accounts erased. Only the deletion itself stays in the audit trail."),
    field(`Type the organization's name (${name}) to confirm`, { name: "confirm", type: "text", autocomplete: "off", required: true, spellcheck: "false" }),
    h("button", { type: "submit", class: "danger" }, "Delete this organization"), say);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    fill(say);
    const confirm = new FormData(form).get("confirm").trim();
    if (confirm !== name) {
      fill(say, "Type the organization's name exactly as shown to confirm.");
      return;
    }
    if (!(await confirmAction(`Delete ${name} and everything in it, for good? This cannot be undone.`, "Delete the organization"))) return;
    const done = await busy(form, () => withReauth(() => api("DELETE", `/api/v1/orgs/${org()}`, { confirm })));
    if (done) window.dispatchEvent(new CustomEvent("strongroom:org-deleted"));
  });
  return form;
}

// Owners only (the server sends `backups` to them alone): the instance's latest backup,
// verification and restore. Backups are taken and checked with `strongroom backup`.
function backupCard(b) {
  const when = (r) => `${new Date(r.finished_at).toLocaleString()} (${r.backup_id})`;
  const line = (label, r, none) =>
    h("li", {}, h("strong", {}, `${label}: `), r ? `${r.ok ? "" : "FAILED "}${when(r)}` : none);
  return h("section", { class: "card", "aria-labelledby": "backups-title" }, h("h2", { id: "backups-title" }, "Backups"),
    h("ul", {},
      line("Last backup", b.last_backup, "none yet"),
      line("Last verified backup", b.last_verified, "never verified"),
      line("Restored", b.last_restore, "never (this database was not restored from a backup)")),
    h("p", { class: "hint" }, "Backups cover the whole server. The operator takes them with strongroom backup create and checks them with strongroom backup verify."));
}
