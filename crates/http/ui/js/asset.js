// An asset: its metadata and renditions, an image preview or the video played in the page
// through a playback token (the browser's own HLS player fetches the key and the encrypted
// segments under the token), download, delete, and its links: create, copy, list, revoke.

import { add, api, busy, bytes, can, confirmAction, enc, field, fill, h, messageOf, notify, option, page, secretBox, table, time } from "./lib.js";

const EXPIRIES = [
  [3600, "1 hour"], [86400, "1 day"], [7 * 86400, "7 days"], [30 * 86400, "30 days"], [600, "10 minutes"],
];

function metadata(a) {
  const rows = [
    ["Name", a.filename], ["Type", a.content_type], ["Size", `${bytes(a.size)} (${a.size} bytes)`],
    ["SHA-256", h("code", { class: "hash" }, a.sha256)], ["Added", time(a.created_at)], ["Id", h("code", {}, a.id)],
  ];
  if (a.status) rows.push(["Processing", h("span", { class: `badge ${a.status}` }, a.status)]);
  if (a.error) rows.push(["Error", a.error]);
  return h("dl", { class: "meta" }, rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

function renditions(a) {
  const list = a.renditions || [];
  if (list.length === 0) return null;
  return h("section", { class: "card", "aria-labelledby": "r-title" }, h("h2", { id: "r-title" }, "Renditions"),
    table(["Name", "Kind", "Type", "Size", "Dimensions"], list.map((r) => [
      r.kind === "image" ? h("a", { href: `/api/v1/assets/${enc(a.id)}/renditions/${enc(r.name)}` }, r.name) : r.name,
      r.kind, r.content_type || "", r.size ? bytes(r.size) : "", r.width ? `${r.width}×${r.height}` : "",
    ]), "Renditions"));
}

function preview(a) {
  const kind = a.content_type.split("/")[0];
  if (kind === "image") {
    const hasPreview = (a.renditions || []).some((r) => r.name === "preview");
    const src = hasPreview ? `/api/v1/assets/${enc(a.id)}/renditions/preview` : `/api/v1/assets/${enc(a.id)}/content`;
    return h("figure", { class: "preview" }, h("img", { src, alt: a.filename }));
  }
  if (kind !== "video") return null;
  if (a.status !== "ready") {
    return h("p", { class: "hint", role: "status" }, a.status === "failed" ? "This video could not be processed." : "This video is still being processed; reload the page in a moment.");
  }
  const area = h("div", { class: "player" });
  const play = h("button", { type: "button" }, "Play video");
  play.addEventListener("click", async () => {
    play.disabled = true;
    try {
      // A short-lived view of this video: its playlists, key and segments need this token.
      const view = await api("POST", `/api/v1/assets/${enc(a.id)}/playback`, { expires_in: 3600 });
      const video = h("video", { controls: true, autoplay: true, playsinline: true, src: view.url, "aria-label": `Video: ${a.filename}` });
      video.muted = true;
      fill(area, video);
      video.focus();
    } catch (e) {
      fill(area, h("p", { class: "error", role: "alert" }, messageOf(e)));
      play.disabled = false;
    }
  });
  fill(area, play);
  return area;
}

async function linksCard(a) {
  const card = h("section", { class: "card", "aria-labelledby": "links-title" }, h("h2", { id: "links-title" }, "Links"));
  const shown = h("div", {});
  const listBox = h("div", {});
  const canRevoke = can("link:delete", a.space_id);
  const load = async () => {
    const res = await api("GET", `/api/v1/assets/${enc(a.id)}/links?limit=100`);
    fill(listBox, res.items.length === 0 ? h("p", {}, "No links yet.") : table(["Created", "Expires", "Use", "Address", "Downloads", "State", ""], res.items.map((l) => {
      const dead = l.revoked_at || new Date(l.expires_at) < new Date() || (l.single_use && l.used_at);
      return [
        time(l.created_at), time(l.expires_at), l.single_use ? "once" : "many", l.ip || "any", String(l.use_count ?? 0),
        l.revoked_at ? "revoked" : dead ? "ended" : "active",
        !dead && canRevoke ? h("button", {
          type: "button", class: "quiet danger", "aria-label": `Revoke the link created ${new Date(l.created_at).toLocaleString()}`,
          onclick: async () => {
            if (!(await confirmAction("Revoke this link? It stops working at once.", "Revoke"))) return;
            try {
              await api("DELETE", `/api/v1/links/${enc(l.id)}`);
              notify("Link revoked: it no longer works.");
              await load();
            } catch (e) {
              notify(messageOf(e), "error");
            }
          },
        }, "Revoke") : "",
      ];
    }), "Links"));
  };
  let form = null;
  if (can("link:create", a.space_id)) {
    form = h("form", { class: "inline", novalidate: true },
      field("Expires after", { tag: "select", name: "expires_in", options: EXPIRIES.map(([s, t]) => option(s, t)) }),
      h("div", { class: "field check" }, h("input", { type: "checkbox", name: "single_use", id: "link-once" }), h("label", { for: "link-once" }, "Single use")),
      field("Only from address", { name: "ip", placeholder: "any", inputmode: "decimal" }),
      h("button", { type: "submit" }, "Create link"));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const f = new FormData(form);
      const body = { expires_in: Number(f.get("expires_in")), single_use: f.get("single_use") === "on" };
      const ip = f.get("ip").trim();
      if (ip) body.ip = ip;
      const link = await busy(form, () => api("POST", `/api/v1/assets/${enc(a.id)}/links`, body));
      if (!link) return;
      fill(shown, secretBox("Link", link.url, `works until ${new Date(link.expires_at).toLocaleString()}; it is shown only now.`));
      await load();
    });
  }
  add(card, form, shown, listBox);
  await load();
  return card;
}

export async function assetPage(main, assetId) {
  const a = await api("GET", `/api/v1/assets/${enc(assetId)}`);
  const del = can("asset:delete", a.space_id) ? h("button", {
    type: "button", class: "danger",
    onclick: async () => {
      if (!(await confirmAction(`Move “${a.filename}” to the trash? It can be restored from there until the grace period ends.`, "Move to trash"))) return;
      try {
        await api("DELETE", `/api/v1/assets/${enc(a.id)}`);
        notify(`“${a.filename}” moved to the trash.`);
        location.hash = `#/spaces/${enc(a.space_id)}`;
      } catch (e) {
        notify(messageOf(e), "error");
      }
    },
  }, "Delete") : null;
  page(main, a.filename,
    h("p", {}, h("a", { href: `#/spaces/${enc(a.space_id)}` }, "← Back to the space")),
    h("div", { class: "split" },
      h("div", {}, preview(a)),
      h("div", {}, metadata(a),
        h("p", { class: "actions" }, h("a", { class: "button", href: `/api/v1/assets/${enc(a.id)}/content`, download: a.filename }, "Download"), " ", del))),
    renditions(a),
    can("link:create", a.space_id) || can("link:delete", a.space_id) || can("asset:read", a.space_id) ? await linksCard(a).catch(() => null) : null);
}
