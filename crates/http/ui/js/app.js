// The dashboard's shell: who is signed in, the organization switcher, the navigation (only
// what the user may do) and the hash router. Pages live in their own modules.

import { api, can, canAnywhere, fill, h, messageOf, notify, option, page, session, setCsrf } from "./lib.js";
import { signInPage, invitePage } from "./auth.js";
import { accountPage } from "./account.js";
import { spacesPage, spacePage } from "./content.js";
import { assetPage } from "./asset.js";
import { trashPage } from "./trash.js";
import { membersPage, rolesPage, securityPage } from "./people.js";
import { keysPage } from "./keys.js";
import { auditPage } from "./audit.js";

const main = document.getElementById("main");

/** Routes: a pattern, the page, and what the user needs to see it in the navigation. */
const ROUTES = [
  { path: /^\/spaces$/, show: spacesPage, nav: "Spaces", href: "#/spaces", needs: () => canAnywhere("space:read") },
  { path: /^\/spaces\/([^/]+)$/, show: spacePage },
  { path: /^\/spaces\/([^/]+)\/trash$/, show: trashPage },
  { path: /^\/assets\/([^/]+)$/, show: assetPage },
  { path: /^\/members$/, show: membersPage, nav: "Members", href: "#/members", needs: () => can("member:manage") || can("member:invite") },
  { path: /^\/roles$/, show: rolesPage, nav: "Roles", href: "#/roles", needs: () => can("role:manage") || can("member:manage") },
  { path: /^\/keys$/, show: keysPage, nav: "API keys", href: "#/keys", needs: () => can("apikey:manage") },
  { path: /^\/audit$/, show: auditPage, nav: "Audit trail", href: "#/audit", needs: () => can("audit:read") },
  { path: /^\/security$/, show: securityPage, nav: "Security", href: "#/security", needs: () => can("org:manage") || can("member:manage") },
  { path: /^\/account$/, show: accountPage, nav: "My account", href: "#/account", needs: () => true },
];

/** Loads who the caller is; false when nobody is signed in. */
async function loadSession() {
  try {
    session.me = await api("GET", "/api/v1/me");
  } catch {
    session.me = null;
    return false;
  }
  if (!session.me.session_id) {
    // An API key in a browser is not a sign-in: the dashboard works over sessions only.
    session.me = null;
    return false;
  }
  session.account = await api("GET", "/api/v1/me/orgs");
  return true;
}

function renderShell() {
  const top = document.getElementById("top");
  top.hidden = false;
  const current = session.account.orgs.find((o) => o.current);
  const select = document.getElementById("org-switch");
  fill(select, session.account.orgs.map((o) => option(o.org_id, `${o.name} (${o.role})`, o.current)));
  select.onchange = () => {
    const target = session.account.orgs.find((o) => o.org_id === select.value);
    location.hash = `#/signin?org=${encodeURIComponent(target.org_id)}&email=${encodeURIComponent(session.account.email || "")}`;
  };
  const nav = document.getElementById("nav");
  const allowed = session.me.mfa_enrolment_required ? ROUTES.filter((r) => r.href === "#/account") : ROUTES.filter((r) => r.nav && r.needs());
  fill(nav, h("ul", {}, allowed.map((r) => h("li", {}, h("a", { href: r.href }, r.nav)))));
  fill(document.getElementById("who"), session.account.email || "");
}

function markCurrent(hash) {
  for (const a of document.querySelectorAll("#nav a")) {
    if (hash.startsWith(a.getAttribute("href"))) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

function signedOut() {
  session.me = null;
  session.account = null;
  setCsrf(null);
  document.getElementById("top").hidden = true;
}

// Each navigation renders into a view of its own: a page still loading when the user moves on
// (a slow list, say) finishes into a view no longer on screen instead of over the newer page.
function freshView() {
  const view = h("div", { class: "view" });
  fill(main, view);
  return view;
}

async function route() {
  const view = freshView();
  if (location.pathname === "/invite") {
    document.getElementById("top").hidden = true;
    return invitePage(view);
  }
  const hash = location.hash || "#/spaces";
  const [path, query] = hash.slice(1).split("?");
  const params = new URLSearchParams(query || "");
  if (path === "/signin") {
    return signInPage(view, params, (next) => start(next || "#/spaces"));
  }
  if (!session.me && !(await loadSession())) {
    signedOut();
    location.hash = `#/signin?next=${encodeURIComponent(hash)}`;
    return undefined;
  }
  renderShell();
  markCurrent(hash);
  if (session.me.mfa_enrolment_required && path !== "/account") {
    location.hash = "#/account";
    return undefined;
  }
  for (const r of ROUTES) {
    const m = path.match(r.path);
    if (m) {
      try {
        return await r.show(view, ...m.slice(1).map(decodeURIComponent), params);
      } catch (e) {
        return page(view, "Something went wrong", h("p", { class: "error", role: "alert" }, messageOf(e)));
      }
    }
  }
  return page(view, "Not found", h("p", {}, "There is no such page. "), h("a", { href: "#/spaces" }, "Go to your spaces"));
}

async function start(next) {
  session.me = null;
  if (await loadSession()) {
    if (location.hash === next) await route();
    else location.hash = next;
  }
}

document.getElementById("sign-out").addEventListener("click", async () => {
  try {
    await api("POST", "/api/v1/auth/logout");
  } catch (e) {
    notify(messageOf(e), "error");
  }
  signedOut();
  location.hash = "#/signin";
});

window.addEventListener("strongroom:signed-out", () => {
  if (!location.hash.startsWith("#/signin") && location.pathname !== "/invite") {
    signedOut();
    location.hash = `#/signin?next=${encodeURIComponent(location.hash)}&expired=1`;
  }
});
window.addEventListener("strongroom:account-erased", () => {
  signedOut();
  location.hash = "#/signin?erased=1";
});
window.addEventListener("strongroom:org-deleted", () => {
  signedOut();
  location.hash = "#/signin?org_deleted=1";
});
window.addEventListener("hashchange", route);
route();
