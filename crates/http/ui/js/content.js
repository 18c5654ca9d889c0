// Spaces and a space's assets: create a space; list assets a page at a time (by cursor) with
// thumbnails and video status; upload several files by drag and drop or a file picker, each
// with its own progress bar; delete to the trash with confirmation; the retention rule and space
// grants for those who manage them.

import { retentionCard } from "./trash.js";
import { ApiError, api, busy, bytes, can, canAnywhere, confirmAction, enc, field, fill, h, listAll, messageOf, notify, option, page, session, table, time, uploadFile } from "./lib.js";

const PAGE = 50;

export async function spacesPage(main) {
  const org = session.me.org_id;
  const list = h("div", {});
  const render = (spaces) => fill(list, spaces.length === 0
    ? h("p", {}, "No spaces yet.")
    : h("ul", { class: "spaces" }, spaces.map((s) => h("li", {}, h("a", { href: `#/spaces/${enc(s.id)}` }, s.name), " ", h("small", {}, s.id)))));
  let spaces = [];
  try {
    spaces = await listAll(`/api/v1/orgs/${enc(org)}/spaces?limit=200`);
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 403)) throw e;
  }
  render(spaces);
  let create = null;
  if (can("space:create")) {
    create = h("form", { class: "card inline", novalidate: true },
      field("New space", { name: "name", required: true, maxlength: 200, placeholder: "e.g. website" }),
      h("button", { type: "submit" }, "Create space"));
    create.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const name = new FormData(create).get("name").trim();
      const made = await busy(create, () => api("POST", `/api/v1/orgs/${enc(org)}/spaces`, { name }));
      if (made) {
        create.reset();
        spaces.push(made);
        render(spaces);
        notify(`Space “${made.name}” created.`);
      }
    });
  }
  page(main, "Spaces", create, list);
}

function thumb(asset) {
  const kind = asset.content_type.split("/")[0];
  if (kind !== "image" && kind !== "video") return h("span", { class: "icon", "aria-hidden": "true" }, "📄");
  const img = h("img", {
    src: `/api/v1/assets/${enc(asset.id)}/renditions/thumbnail`, alt: `Thumbnail of ${asset.filename}`,
    loading: "lazy", width: 64, height: 64, class: "thumb",
  });
  img.addEventListener("error", () => img.replaceWith(h("span", { class: "icon", title: "No thumbnail yet" }, kind === "video" ? "🎞" : "🖼")));
  return img;
}

function statusCell(asset) {
  const cell = h("span", { class: "status" });
  if (asset.content_type.startsWith("video/")) {
    fill(cell, "…");
    api("GET", `/api/v1/assets/${enc(asset.id)}`).then((d) => fill(cell, d.status || "")).catch(() => fill(cell, ""));
  }
  return cell;
}

function assetRow(asset, onDelete) {
  const del = can("asset:delete", asset.space_id)
    ? h("button", {
      type: "button", class: "quiet danger", "aria-label": `Delete ${asset.filename}`,
      onclick: async () => {
        if (!(await confirmAction(`Move “${asset.filename}” to the trash? It can be restored from there until the grace period ends.`, "Move to trash"))) return;
        try {
          await api("DELETE", `/api/v1/assets/${enc(asset.id)}`);
          onDelete(asset);
          notify(`“${asset.filename}” moved to the trash.`);
        } catch (e) {
          notify(messageOf(e), "error");
        }
      },
    }, "Delete")
    : null;
  return h("tr", { "data-asset": asset.id },
    h("td", {}, thumb(asset)),
    h("td", {}, h("a", { href: `#/assets/${enc(asset.id)}` }, asset.filename)),
    h("td", {}, asset.content_type),
    h("td", { class: "num" }, bytes(asset.size)),
    h("td", {}, statusCell(asset)),
    h("td", {}, time(asset.created_at)),
    h("td", {}, h("a", { href: `/api/v1/assets/${enc(asset.id)}/content`, download: asset.filename, "aria-label": `Download ${asset.filename}` }, "Download"), " ", del));
}

function uploader(spaceId, onUploaded) {
  const input = h("input", { type: "file", multiple: true, id: "upload-files", class: "sr" });
  const list = h("ul", { class: "uploads", "aria-label": "Uploads" });
  const zone = h("div", { class: "drop", tabindex: "0", role: "group", "aria-label": "Upload files" },
    h("p", {}, "Drop files here, or ", h("label", { for: "upload-files", class: "link" }, "choose files"), "."),
    input, list);
  const send = (files) => {
    for (const file of files) {
      const bar = h("progress", { max: file.size || 1, value: 0, "aria-label": `Uploading ${file.name}` });
      const state = h("span", { class: "hint" }, "waiting");
      const item = h("li", {}, h("span", { class: "name" }, file.name), " ", bar, " ", state);
      list.append(item);
      uploadFile(spaceId, file, (done, total) => {
        bar.max = total;
        bar.value = done;
        fill(state, `${Math.floor((100 * done) / total)} %`);
      }).then((asset) => {
        bar.value = bar.max;
        fill(state, "uploaded");
        item.classList.add("done");
        onUploaded(asset);
      }).catch((e) => {
        item.classList.add("failed");
        fill(state, h("span", { class: "error", role: "alert" }, uploadError(e, file)));
      });
    }
  };
  input.addEventListener("change", () => {
    send([...input.files]);
    input.value = "";
  });
  zone.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      input.click();
    }
  });
  zone.addEventListener("dragover", (e) => {
    e.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    send([...e.dataTransfer.files]);
  });
  return zone;
}

function uploadError(e, file) {
  if (!(e instanceof ApiError)) return messageOf(e);
  switch (e.code) {
    case "payload_too_large": return `${file.name} is too large: ${messageOf(e)}`;
    case "unsupported_media_type": return `${file.name}: this type of file is not accepted (${messageOf(e)})`;
    case "quota_exceeded": return `Not enough storage left: ${messageOf(e)}`;
    default: return messageOf(e);
  }
}

async function grantsCard(spaceId) {
  const card = h("section", { class: "card", "aria-labelledby": "grants-title" }, h("h2", { id: "grants-title" }, "Access to this space"));
  const [grants, members, roles] = await Promise.all([
    api("GET", `/api/v1/spaces/${enc(spaceId)}/grants`),
    listAll(`/api/v1/orgs/${enc(session.me.org_id)}/members`),
    api("GET", `/api/v1/orgs/${enc(session.me.org_id)}/roles`),
  ]);
  const body = h("div", {});
  const render = (items) => fill(body, items.length === 0 ? h("p", {}, "No one has a role in this space alone.") : table(["Member", "Role", "Since", ""], items.map((g) => [
    g.email, g.role, time(g.created_at),
    h("button", {
      type: "button", class: "quiet danger", "aria-label": `Remove ${g.email}'s access`,
      onclick: async () => {
        try {
          await api("DELETE", `/api/v1/spaces/${enc(spaceId)}/grants/${enc(g.user_id)}`);
          render(items.filter((x) => x !== g));
        } catch (e) {
          notify(messageOf(e), "error");
        }
      },
    }, "Remove"),
  ]), "Space grants"));
  render(grants.items);
  const form = h("form", { class: "inline", novalidate: true },
    field("Member", { tag: "select", name: "user_id", options: members.map((m) => option(m.user_id, m.email)) }),
    field("Role here", { tag: "select", name: "role", options: roles.items.map((r) => option(r.id || r.name, r.name)) }),
    h("button", { type: "submit" }, "Grant"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = new FormData(form);
    const role = roles.items.find((r) => (r.id || r.name) === f.get("role"));
    const done = await busy(form, () => api("POST", `/api/v1/spaces/${enc(spaceId)}/grants`, { user_id: f.get("user_id"), role: role.name }));
    if (done) render((await api("GET", `/api/v1/spaces/${enc(spaceId)}/grants`)).items);
  });
  card.append(body, form);
  return card;
}

export async function spacePage(main, spaceId) {
  const rows = h("tbody", {});
  const empty = h("p", { hidden: true }, "This space is empty.");
  const more = h("button", { type: "button", class: "quiet", hidden: true }, "Show more");
  let cursor = null;
  let count = 0;
  const removed = (a) => {
    rows.querySelector(`[data-asset="${CSS.escape(a.id)}"]`)?.remove();
    count -= 1;
    empty.hidden = count > 0;
  };
  const load = async () => {
    more.disabled = true;
    const q = cursor ? `&cursor=${enc(cursor)}` : "";
    const res = await api("GET", `/api/v1/spaces/${enc(spaceId)}/assets?limit=${PAGE}${q}`);
    rows.append(...res.items.map((a) => assetRow(a, removed)));
    count += res.items.length;
    cursor = res.next_cursor;
    more.hidden = !cursor;
    more.disabled = false;
    empty.hidden = count > 0;
  };
  more.addEventListener("click", () => load().catch((e) => notify(messageOf(e), "error")));
  await load();
  const spaces = canAnywhere("space:read") ? await api("GET", `/api/v1/orgs/${enc(session.me.org_id)}/spaces?limit=200`).catch(() => null) : null;
  const space = spaces && spaces.items.find((s) => s.id === spaceId);
  const up = can("asset:create", spaceId) ? uploader(spaceId, (asset) => {
    rows.prepend(assetRow(asset, removed));
    count += 1;
    empty.hidden = true;
  }) : null;
  page(main, space ? space.name : "Space",
    h("p", {}, h("a", { href: "#/spaces" }, "← All spaces"),
      can("asset:delete", spaceId) ? [" · ", h("a", { href: `#/spaces/${enc(spaceId)}/trash` }, "Trash")] : null),
    up,
    h("table", { class: "assets" },
      h("caption", { class: "sr" }, "Assets"),
      h("thead", {}, h("tr", {}, ["", "Name", "Type", "Size", "Status", "Added", ""].map((t) => h("th", { scope: "col" }, t)))),
      rows),
    empty, more,
    space && can("space:manage", spaceId) ? retentionCard(space) : null,
    can("member:manage") ? await grantsCard(spaceId) : null);
}
