// A space's end of life: its trash (deleted assets, restorable until the organization's grace
// period ends, or purged now by those with asset:purge) and its retention rule (assets go to
// the trash that many days after upload).

import { api, busy, bytes, can, confirmAction, enc, field, fill, h, messageOf, notify, page, session, table, time } from "./lib.js";

const DAY_MS = 86_400_000;

/** The organization's grace period in days, or null when the caller may not read it. */
async function graceDays() {
  try {
    return (await api("GET", `/api/v1/orgs/${enc(session.me.org_id)}`)).trash_days;
  } catch {
    return null;
  }
}

export async function trashPage(main, spaceId) {
  const [trash, grace] = await Promise.all([
    api("GET", `/api/v1/spaces/${enc(spaceId)}/trash?limit=1000`),
    graceDays(),
  ]);
  const body = h("div", {});
  let items = trash.items;
  const drop = (a) => {
    items = items.filter((x) => x.id !== a.id);
    render();
  };
  const restore = (a) => h("button", {
    type: "button", class: "quiet", "aria-label": `Restore ${a.filename}`,
    onclick: async () => {
      try {
        await api("POST", `/api/v1/assets/${enc(a.id)}/restore`);
        drop(a);
        notify(`“${a.filename}” restored to the space.`);
      } catch (e) {
        notify(messageOf(e), "error");
      }
    },
  }, "Restore");
  const purge = (a) => can("asset:purge", spaceId) ? h("button", {
    type: "button", class: "quiet danger", "aria-label": `Purge ${a.filename}`,
    onclick: async () => {
      if (!(await confirmAction(`Purge “${a.filename}” now? Its key is destroyed: it cannot be restored, from here or from any backup.`, "Purge"))) return;
      try {
        await api("DELETE", `/api/v1/assets/${enc(a.id)}?purge=true`);
        drop(a);
        notify(`“${a.filename}” purged.`);
      } catch (e) {
        notify(messageOf(e), "error");
      }
    },
  }, "Purge now") : null;
  const purgeAt = (a) => grace === null ? "—" : time(new Date(new Date(a.deleted_at).getTime() + grace * DAY_MS).toISOString());
  const render = () => fill(body, items.length === 0
    ? h("p", {}, "The trash is empty.")
    : table(["Name", "Size", "Deleted", "Purged after", ""], items.map((a) => [
      a.filename, bytes(a.size), time(a.deleted_at), purgeAt(a), h("span", {}, restore(a), " ", purge(a)),
    ]), "Deleted assets"));
  render();
  page(main, "Trash",
    h("p", {}, h("a", { href: `#/spaces/${enc(spaceId)}` }, "← Back to the space")),
    h("p", { class: "hint" }, grace === null
      ? "Deleted assets wait here until the organization's grace period ends; then they are purged."
      : `Deleted assets wait here for ${grace} days; then they are purged and cannot be restored.`),
    body);
}

/** The space's retention rule, for those who may change it. */
export function retentionCard(space) {
  const form = h("form", { class: "card inline", novalidate: true, "aria-labelledby": "retention-title" },
    h("h2", { id: "retention-title" }, "Retention"),
    field("Move assets to the trash after (days)", {
      name: "days", type: "number", min: 1, max: 36500, step: 1, value: space.retention_days ?? "", placeholder: "never",
    }, "Empty: keep assets until someone deletes them."),
    h("button", { type: "submit" }, "Save retention"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const raw = String(new FormData(form).get("days") || "").trim();
    const days = raw === "" ? null : Number(raw);
    const done = await busy(form, () => api("PATCH", `/api/v1/spaces/${enc(space.id)}`, { retention_days: days }));
    if (done) notify(done.retention_days === null ? "Assets in this space are kept until deleted." : `Assets in this space go to the trash ${done.retention_days} days after upload.`);
  });
  return form;
}
