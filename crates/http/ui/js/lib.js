// Shared pieces of the dashboard: the API client, a tiny element builder that only ever sets
// text (never HTML, so every value is escaped by construction), formatting, notices, dialogs.

/** What the page knows about the signed-in user; filled by app.js. */
export const session = {
  me: null, // GET /api/v1/me
  account: null, // GET /api/v1/me/orgs
  csrf: localStorage.getItem("strongroom.csrf"),
};

export function setCsrf(token) {
  session.csrf = token;
  if (token) localStorage.setItem("strongroom.csrf", token);
  else localStorage.removeItem("strongroom.csrf");
}

/** A problem document the server answered with. */
export class ApiError extends Error {
  constructor(status, problem, headers) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.code = problem.code || "error";
    this.problem = problem;
    this.retryAfter = headers ? headers.get("retry-after") : null;
  }
}

const SAFE = new Set(["GET", "HEAD"]);

function unsafeHeaders(method) {
  const h = {};
  if (!SAFE.has(method) && session.csrf) h["X-CSRF-Token"] = session.csrf;
  return h;
}

async function problemOf(res) {
  try {
    return await res.json();
  } catch {
    return { detail: `the server answered ${res.status} ${res.statusText}` };
  }
}

/** Calls the API: `json` is sent as the body; answers the parsed JSON (null for 204). */
export async function api(method, path, json) {
  const headers = { Accept: "application/json", ...unsafeHeaders(method) };
  const init = { method, headers, credentials: "same-origin" };
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch {
    throw new ApiError(0, { detail: "the server cannot be reached", code: "network" });
  }
  if (!res.ok) {
    const err = new ApiError(res.status, await problemOf(res), res.headers);
    // No valid credential (the session ended, or was signed out elsewhere): back to sign-in. A
    // wrong password (invalid_credentials) is the form's business, not the session's.
    if (res.status === 401 && err.code === "unauthenticated") {
      window.dispatchEvent(new CustomEvent("strongroom:signed-out"));
    }
    throw err;
  }
  if (res.status === 204) return null;
  return res.json();
}

/** Every page of a list, or the first `max` items. */
export async function listAll(path, max = 1000) {
  const items = [];
  let cursor = null;
  do {
    const sep = path.includes("?") ? "&" : "?";
    const page = await api("GET", cursor ? `${path}${sep}cursor=${encodeURIComponent(cursor)}` : path);
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && items.length < max);
  return items;
}

/**
 * Uploads one file with a progress callback (fetch cannot report upload progress, XHR can).
 * Resolves with the asset; rejects with an ApiError.
 */
export function uploadFile(spaceId, file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/api/v1/spaces/${encodeURIComponent(spaceId)}/assets?filename=${encodeURIComponent(file.name)}`);
    xhr.setRequestHeader("Content-Type", file.type || "application/octet-stream");
    xhr.setRequestHeader("Accept", "application/json");
    if (session.csrf) xhr.setRequestHeader("X-CSRF-Token", session.csrf);
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded, e.total);
    xhr.onerror = () => reject(new ApiError(0, { detail: "the upload was cut off: the server cannot be reached", code: "network" }));
    xhr.onload = () => {
      let body = {};
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        body = { detail: `the server answered ${xhr.status}` };
      }
      if (xhr.status === 201) resolve(body);
      else reject(new ApiError(xhr.status, body));
    };
    xhr.send(file);
  });
}

/** Whether the signed-in user may do `perm` (in `spaceId`, when given). */
export function can(perm, spaceId) {
  const me = session.me;
  if (!me) return false;
  if (me.permissions.includes(perm)) return true;
  const inSpace = spaceId && me.space_permissions[spaceId];
  if (inSpace) return inSpace.includes(perm);
  return false;
}

/** Whether `perm` is granted anywhere (organization-wide or in some space). */
export function canAnywhere(perm) {
  const me = session.me;
  return !!me && (me.permissions.includes(perm) || Object.values(me.space_permissions).some((p) => p.includes(perm)));
}

/**
 * Builds an element: `h("button", {class: "x", onclick: f}, "text", child)`. Strings become
 * text nodes; attributes are set as attributes (or properties for `on*` handlers).
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

/** Appends children to an element, skipping empty ones (null, undefined, false). */
export function add(el, ...children) {
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces an element's content. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A labelled input: `field("Email", {name: "email", type: "email"})`. */
export function field(label, attrs, hint) {
  const id = attrs.id || `f-${attrs.name}-${Math.random().toString(36).slice(2, 8)}`;
  const input = attrs.tag === "select" ? h("select", { ...attrs, tag: null, id }, attrs.options || []) : h("input", { ...attrs, id });
  const hintEl = hint ? h("small", { id: `${id}-hint`, class: "hint" }, hint) : null;
  if (hintEl) input.setAttribute("aria-describedby", hintEl.id);
  return h("div", { class: "field" }, h("label", { for: id }, label), input, hintEl);
}

export function option(value, text, selected) {
  return h("option", { value, selected }, text);
}

/** A table from rows of cells. */
export function table(headings, rows, caption) {
  return h(
    "table",
    {},
    caption ? h("caption", { class: "sr" }, caption) : null,
    h("thead", {}, h("tr", {}, headings.map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((c) => h("td", {}, c))))),
  );
}

/** An error shown inside a form, announced to screen readers. */
export function formError(form, e) {
  let box = form.querySelector(".error");
  if (!box) {
    box = h("p", { class: "error", role: "alert" });
    form.append(box);
  }
  fill(box, e ? messageOf(e) : "");
  box.hidden = !e;
}

/** One clear sentence for an error. */
export function messageOf(e) {
  if (e instanceof ApiError) {
    if (e.code === "rate_limited" && e.retryAfter) return `${e.message} Try again in ${e.retryAfter} s.`;
    return e.message.endsWith(".") ? e.message : `${e.message}.`;
  }
  return String(e && e.message ? e.message : e);
}

/** A message in the status line at the top, read out by screen readers. */
export function notify(text, kind = "ok") {
  const box = document.getElementById("status");
  fill(box, h("p", { class: kind }, text));
  clearTimeout(notify.timer);
  notify.timer = setTimeout(() => box.replaceChildren(), 8000);
}

/** Asks before something that cannot be undone. */
export function confirmAction(text, button = "Delete") {
  const dialog = document.getElementById("confirm");
  fill(document.getElementById("confirm-text"), text);
  fill(document.getElementById("confirm-ok"), button);
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

/** A button that copies `text` to the clipboard. */
export function copyButton(text, label = "Copy") {
  return h(
    "button",
    {
      type: "button",
      class: "quiet copy",
      onclick: async (e) => {
        try {
          await navigator.clipboard.writeText(text);
          e.target.textContent = "Copied";
        } catch {
          e.target.textContent = "Select and copy by hand";
        }
      },
    },
    label,
  );
}

/** A secret shown once: a read-only field with a copy button and a warning. */
export function secretBox(label, value, warning) {
  const input = h("input", { readonly: true, value, class: "secret", "aria-label": label, spellcheck: "false" });
  input.addEventListener("focus", () => input.select());
  return h("div", { class: "once", role: "alert" }, h("p", {}, h("strong", {}, label), " — ", warning), h("div", { class: "row" }, input, copyButton(value)));
}

export function bytes(n) {
  if (n === null || n === undefined) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

export function when(t) {
  if (!t) return "—";
  const d = new Date(t);
  return Number.isNaN(d.getTime()) ? String(t) : d.toLocaleString();
}

export function time(t) {
  return h("time", { datetime: t || "" }, when(t));
}

/** A page's heading, focused so screen readers announce the new page. */
export function page(main, title, ...children) {
  const h1 = h("h1", { tabindex: "-1" }, title);
  fill(main, h1, ...children);
  // A page that finished after the user moved on renders off screen: it takes neither the
  // title nor the focus.
  if (main.isConnected) {
    document.title = `${title} · Strongroom`;
    h1.focus();
  }
  return main;
}

/** Disables a form's controls while `work` runs, then shows its error, if any. */
export async function busy(form, work) {
  const controls = [...form.querySelectorAll("button, input, select, textarea")];
  const was = controls.map((c) => c.disabled);
  controls.forEach((c) => (c.disabled = true));
  formError(form, null);
  try {
    return await work();
  } catch (e) {
    formError(form, e);
    return undefined;
  } finally {
    controls.forEach((c, i) => (c.disabled = was[i]));
  }
}

/** Solves a captcha challenge in a worker (the page stays responsive). */
export function solveCaptcha(challenge) {
  return new Promise((resolve, reject) => {
    const worker = new Worker("/ui/js/pow.js");
    worker.onmessage = (e) => {
      worker.terminate();
      resolve(`${challenge}:${e.data}`);
    };
    worker.onerror = (e) => {
      worker.terminate();
      reject(new Error(`the captcha could not be solved: ${e.message}`));
    };
    worker.postMessage(challenge);
  });
}

/**
 * Sends `call(captcha)`; when the server asks for a captcha (428), solves it and sends again,
 * telling the user through `say`.
 */
export async function withCaptcha(call, say) {
  try {
    return await call(undefined);
  } catch (e) {
    if (!(e instanceof ApiError) || e.code !== "captcha_required" || !e.problem.challenge) throw e;
    say("Too many attempts: your browser is solving a short puzzle to prove it is not a robot…");
    const solved = await solveCaptcha(e.problem.challenge);
    say("");
    return call(solved);
  }
}

export function enc(s) {
  return encodeURIComponent(s);
}
