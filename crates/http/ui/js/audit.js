// The audit trail: events a page at a time, filtered by action or actor, and the chain's
// verification (every event's hash and link and every signed checkpoint, checked by the server
// as `strongroom audit verify` does), with the export for offline verification.

import { api, enc, field, fill, h, messageOf, page, session, time } from "./lib.js";

function verifyCard(org) {
  const result = h("div", { role: "status" });
  const button = h("button", { type: "button" }, "Verify the chain now");
  button.addEventListener("click", async () => {
    button.disabled = true;
    fill(result, h("p", { class: "hint" }, "Checking every event and checkpoint…"));
    try {
      const r = await api("GET", `/api/v1/orgs/${org}/audit/verify`);
      const cp = r.latest_checkpoint;
      fill(result, r.intact
        ? h("p", { class: "ok verify" }, h("strong", {}, "Intact. "), `${r.events} events and ${r.checkpoints} signed checkpoints verified`,
          cp && cp.at ? `; the latest checkpoint is of ${time(cp.at).textContent}.` : ".")
        : h("p", { class: "error verify", role: "alert" }, h("strong", {}, "Broken: "), r.problem || r.problem_kind || "the chain does not verify"));
    } catch (e) {
      fill(result, h("p", { class: "error", role: "alert" }, messageOf(e)));
    } finally {
      button.disabled = false;
    }
  });
  return h("section", { class: "card", "aria-labelledby": "verify-title" }, h("h2", { id: "verify-title" }, "Integrity"),
    h("p", {}, "Every event is hash-chained to the one before, and the chain's head is signed in checkpoints kept apart from the database."),
    h("p", { class: "row" }, button, " ", h("a", { href: `/api/v1/orgs/${org}/audit/export`, download: "" }, "Export the chain (NDJSON)")),
    result);
}

export async function auditPage(main) {
  const org = enc(session.me.org_id);
  const events = [];
  let cursor = null;
  const rows = h("tbody", {});
  const count = h("p", { class: "hint", role: "status" });
  const more = h("button", { type: "button", class: "quiet" }, "Show more");
  const filters = h("form", { class: "inline", role: "search" },
    field("Action", { name: "action", placeholder: "e.g. auth.login", list: "audit-actions" }),
    field("Actor", { name: "actor", placeholder: "user:… or key:…" }),
    field("Target", { name: "target", placeholder: "an id" }));
  const datalist = h("datalist", { id: "audit-actions" });
  const render = () => {
    const f = new FormData(filters);
    const want = (k) => (f.get(k) || "").trim().toLowerCase();
    const [action, actor, target] = ["action", "actor", "target"].map(want);
    const shown = events.filter((e) => (!action || e.action.toLowerCase().includes(action))
      && (!actor || e.actor.toLowerCase().includes(actor)) && (!target || String(e.target).toLowerCase().includes(target)));
    fill(rows, shown.slice().reverse().map((e) => h("tr", {},
      h("td", { class: "num" }, String(e.seq)), h("td", {}, time(e.at)), h("td", {}, e.actor), h("td", {}, h("code", {}, e.action)),
      h("td", {}, String(e.target ?? "")), h("td", {}, e.ip || ""))));
    fill(count, `${shown.length} of ${events.length} loaded events shown${cursor ? "; newer events follow: press Show more" : ""}.`);
    fill(datalist, [...new Set(events.map((e) => e.action))].sort().map((a) => h("option", { value: a })));
  };
  const load = async () => {
    more.disabled = true;
    // The trail is oldest first; pages follow the cursor toward the newest event.
    const page_ = await api("GET", `/api/v1/orgs/${org}/audit?limit=500${cursor ? `&cursor=${enc(cursor)}` : ""}`);
    events.push(...page_.items);
    cursor = page_.next_cursor;
    more.hidden = !cursor;
    more.disabled = false;
    render();
  };
  filters.addEventListener("input", render);
  filters.addEventListener("submit", (e) => e.preventDefault());
  more.addEventListener("click", () => load().catch((e) => fill(count, messageOf(e))));
  await load();
  page(main, "Audit trail", verifyCard(org),
    h("section", { class: "card", "aria-labelledby": "events-title" }, h("h2", { id: "events-title" }, "Events, newest first"),
      filters, datalist, count,
      h("table", { class: "audit" }, h("caption", { class: "sr" }, "Audit events"),
        h("thead", {}, h("tr", {}, ["#", "When", "Actor", "Action", "Target", "Address"].map((t) => h("th", { scope: "col" }, t)))), rows),
      more));
}
