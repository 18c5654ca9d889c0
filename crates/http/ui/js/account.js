// My account: change password, two-factor authentication (enrol with the QR code, recovery
// codes shown once, turn off), my signed-in sessions, a copy of my data, and erasing my account.

import { ApiError, add, api, busy, confirmAction, field, fill, h, notify, page, secretBox, session, table, time, withCaptcha } from "./lib.js";

/**
 * Runs `call`; when the server wants the password confirmed first (a sensitive action long
 * after sign-in), asks for it in a dialog, confirms it and runs `call` again.
 */
export async function withReauth(call) {
  try {
    return await call();
  } catch (e) {
    if (!(e instanceof ApiError) || e.code !== "reauthentication_required") throw e;
    const password = await askPassword("This needs your password again (your sign-in is more than 10 minutes old).");
    if (password === null) throw e;
    await withCaptcha((captcha) => api("POST", "/api/v1/auth/reauth", { password, captcha }), () => {});
    return call();
  }
}

function askPassword(text) {
  const input = h("input", { type: "password", name: "password", id: "reauth-password", autocomplete: "current-password", required: true });
  const dialog = h("dialog", { "aria-labelledby": "reauth-title" },
    h("form", { method: "dialog" },
      h("p", { id: "reauth-title" }, text),
      h("div", { class: "field" }, h("label", { for: "reauth-password" }, "Password"), input),
      h("menu", {}, h("button", { value: "cancel", class: "quiet", formnovalidate: true }, "Cancel"), " ", h("button", { value: "ok" }, "Confirm"))));
  document.body.append(dialog);
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue === "ok" ? input.value : null);
      dialog.remove();
    }, { once: true });
  });
}

function passwordCard() {
  const say = h("p", { class: "hint", role: "status" });
  const form = h("form", { class: "card", novalidate: true },
    h("h2", {}, "Password"),
    h("input", { type: "text", name: "username", autocomplete: "username", value: session.account.email || "", hidden: true, "aria-hidden": "true", tabindex: "-1" }),
    field("Current password", { name: "current", type: "password", autocomplete: "current-password", required: true }),
    field("New password", { name: "new", type: "password", autocomplete: "new-password", required: true, minlength: 12 },
      "At least 12 characters, not a common or breached password. Your other sessions are signed out."),
    h("button", { type: "submit" }, "Change password"), say);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = new FormData(form);
    const ok = await busy(form, () => withCaptcha((captcha) =>
      api("POST", "/api/v1/me/password", { current_password: f.get("current"), new_password: f.get("new"), captcha }), (t) => fill(say, t)).then(() => true));
    if (ok) {
      form.reset();
      notify("Password changed. Your other sessions are signed out.");
    }
  });
  return form;
}

function mfaCard(refresh) {
  const card = h("section", { class: "card", "aria-labelledby": "mfa-title" }, h("h2", { id: "mfa-title" }, "Two-factor authentication"));
  if (session.account.mfa_enabled) {
    const form = h("form", { novalidate: true },
      h("p", {}, h("strong", {}, "On."), " Signing in asks for a code from your authenticator app."),
      field("Password", { name: "password", type: "password", autocomplete: "current-password", required: true }, "Needed to turn it off."),
      h("button", { type: "submit", class: "danger" }, "Turn off two-factor authentication"));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const password = new FormData(form).get("password");
      if (!(await confirmAction("Turn off two-factor authentication? Your account will be protected by the password alone.", "Turn off"))) return;
      const ok = await busy(form, () => withCaptcha((captcha) => api("POST", "/api/v1/me/mfa/totp/disable", { password, captcha }), () => {}).then(() => true));
      if (ok) {
        notify("Two-factor authentication is off.");
        await refresh();
      }
    });
    card.append(form);
    return card;
  }
  const start = h("button", { type: "button" }, "Set up two-factor authentication");
  const area = h("div", {});
  start.addEventListener("click", async () => {
    start.disabled = true;
    try {
      const e = await withReauth(() => api("POST", "/api/v1/me/mfa/totp"));
      const qr = URL.createObjectURL(new Blob([e.qr_svg], { type: "image/svg+xml" }));
      const form = h("form", { novalidate: true },
        h("p", {}, "Scan this code with your authenticator app, or type the key in by hand, then enter the code it shows."),
        h("img", { src: qr, alt: "QR code of the authenticator key", width: 200, height: 200, class: "qr" }),
        h("p", {}, "Key: ", h("code", { class: "secret-text" }, e.secret)),
        field("Code from the app", { name: "code", inputmode: "numeric", autocomplete: "one-time-code", required: true }),
        h("button", { type: "submit" }, "Turn on"));
      form.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        const code = new FormData(form).get("code").replace(/\s/g, "");
        const done = await busy(form, () => api("POST", "/api/v1/me/mfa/totp/confirm", { code }));
        if (!done) return;
        URL.revokeObjectURL(qr);
        session.account.mfa_enabled = true;
        const codes = done.recovery_codes.join("\n");
        fill(area,
          h("p", { role: "status" }, h("strong", {}, "Two-factor authentication is on.")),
          secretBox("Recovery codes", codes.replace(/\n/g, " "), "each signs you in once if you lose your phone. They are shown only now: store them somewhere safe."),
          h("ul", { class: "codes" }, done.recovery_codes.map((c) => h("li", {}, h("code", {}, c)))),
          h("button", { type: "button", onclick: refresh }, "I have stored them"));
      });
      fill(area, form);
      form.querySelector("[name=code]").focus();
    } catch (err) {
      fill(area, h("p", { class: "error", role: "alert" }, err.message));
      start.disabled = false;
    }
  });
  add(card,
    session.me.mfa_enrolment_required ? h("p", { class: "warn", role: "alert" }, "Your organization requires two-factor authentication: set it up to continue.") : null,
    h("p", {}, "Off. Add a code from an authenticator app to every sign-in."), start, area);
  return card;
}

async function sessionsCard() {
  const card = h("section", { class: "card", "aria-labelledby": "sessions-title" }, h("h2", { id: "sessions-title" }, "Signed-in sessions"));
  const list = await api("GET", "/api/v1/auth/sessions");
  const render = (items) => table(["Browser", "Address", "Signed in", "Last active", ""], items.map((s) => [
    s.user_agent || "unknown", s.ip, time(s.created_at), time(s.last_seen_at),
    s.current ? h("strong", {}, "This browser") : h("button", {
      type: "button", class: "quiet", "aria-label": `Sign out the session from ${s.ip}`,
      onclick: async (ev) => {
        ev.target.disabled = true;
        try {
          await api("DELETE", `/api/v1/auth/sessions/${encodeURIComponent(s.id)}`);
          ev.target.closest("tr").remove();
          notify("That session is signed out.");
        } catch (e) {
          notify(e.message, "error");
          ev.target.disabled = false;
        }
      },
    }, "Sign out"),
  ]), "Your sessions");
  card.append(render(list.items));
  return card;
}

/** Erasure of the account: typed confirmation, then the password if the sign-in is old. */
function eraseCard() {
  const email = session.account.email || "";
  const say = h("p", { class: "error", role: "alert" });
  const form = h("form", { class: "card", novalidate: true, "aria-labelledby": "erase-title" },
    h("h2", { id: "erase-title" }, "Erase my account"),
    h("p", {}, "Your account, sessions, API keys and second factor are deleted. Your uploads stay with their organizations. Your past actions stay in each organization's audit trail as who, what and when, but their addresses and details can no longer be read by anyone, in this database or in any backup. This cannot be undone."),
    field("Type your email address to confirm", { name: "confirm", type: "text", autocomplete: "off", required: true, spellcheck: "false" }),
    h("button", { type: "submit", class: "danger" }, "Erase my account"), say);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    fill(say);
    if (new FormData(form).get("confirm").trim().toLowerCase() !== email.toLowerCase()) {
      fill(say, "Type your email address exactly as shown above to confirm.");
      return;
    }
    if (!(await confirmAction("Erase your account for good? This cannot be undone.", "Erase"))) return;
    const ok = await busy(form, () => withReauth(() => api("DELETE", "/api/v1/me")).then(() => true));
    if (ok) window.dispatchEvent(new CustomEvent("strongroom:account-erased"));
  });
  return form;
}

export async function accountPage(main) {
  const refresh = async () => {
    session.account = await api("GET", "/api/v1/me/orgs");
    session.me = await api("GET", "/api/v1/me");
    await accountPage(main);
  };
  page(main, "My account",
    h("p", {}, "Signed in as ", h("strong", {}, session.account.email || "")),
    mfaCard(refresh),
    session.me.mfa_enrolment_required ? null : passwordCard(),
    session.me.mfa_enrolment_required ? null : await sessionsCard(),
    exportCard(),
    eraseCard());
}

/** Your copy of your data: a zip the browser downloads with the session cookie. */
function exportCard() {
  return h("section", { class: "card", "aria-labelledby": "export-title" },
    h("h2", { id: "export-title" }, "Your data"),
    h("p", {}, "A zip of what Strongroom holds about you in every organization you belong to: your account, memberships, sessions, API keys (never their secrets), the audit events by or about you, and your uploads' metadata."),
    h("p", { class: "actions" }, h("a", { class: "button", href: "/api/v1/me/export", download: "" }, "Download my data")));
}
