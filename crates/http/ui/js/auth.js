// Signing in (password, then a TOTP or recovery code when the account has 2FA; the captcha
// solved in the page when the server asks), switching organization (a session acts in one
// organization, so switching signs in there), and accepting an invitation at /invite#token.

import { ApiError, api, busy, field, fill, formError, h, page, session, setCsrf, withCaptcha } from "./lib.js";

export function signInPage(main, params, done) {
  const org = params.get("org");
  const orgName = org && session.account ? (session.account.orgs.find((o) => o.org_id === org) || {}).name : null;
  const say = h("p", { class: "hint", role: "status" });
  const second = h("div", { hidden: true },
    field("Code from your authenticator app", { name: "totp", inputmode: "numeric", autocomplete: "one-time-code", pattern: "[0-9 ]*" }),
    h("details", {}, h("summary", {}, "Use a recovery code instead"),
      field("Recovery code", { name: "recovery_code", autocomplete: "off", spellcheck: "false" })));
  const form = h("form", { class: "card narrow", novalidate: true },
    field("Email", { name: "email", type: "email", autocomplete: "username", required: true, value: params.get("email") || "" }),
    field("Password", { name: "password", type: "password", autocomplete: "current-password", required: true }),
    second,
    h("button", { type: "submit" }, "Sign in"),
    say);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = new FormData(form);
    const body = { email: f.get("email").trim(), password: f.get("password") };
    if (org) body.org_id = org;
    const totp = (f.get("totp") || "").replace(/\s/g, "");
    const recovery = (f.get("recovery_code") || "").trim();
    if (recovery) body.recovery_code = recovery;
    else if (totp) body.totp = totp;
    await busy(form, async () => {
      try {
        if (session.me && org) {
          // Leaving the current organization's session: a session acts in one organization.
          await api("POST", "/api/v1/auth/logout").catch(() => {});
          session.me = null;
        }
        const done_ = await withCaptcha((captcha) => api("POST", "/api/v1/auth/login", captcha ? { ...body, captcha } : body), (t) => fill(say, t));
        setCsrf(done_.csrf_token);
        await done(params.get("next"));
      } catch (e) {
        if (e instanceof ApiError && e.code === "mfa_required") {
          const wasShown = !second.hidden;
          second.hidden = false;
          form.querySelector("[name=totp]").focus();
          if (!wasShown) {
            fill(say, "This account has two-factor authentication: enter the code from your app.");
            return;
          }
        }
        throw e;
      }
    });
  });
  const title = orgName ? `Sign in to ${orgName}` : "Sign in";
  page(main, title,
    params.get("expired") ? h("p", { class: "warn", role: "alert" }, "Your session has ended. Sign in again.") : null,
    params.get("org_deleted") ? h("p", { role: "status" }, "The organization was deleted. If you belong to another one, sign in to it.") : null,
    params.get("erased") ? h("p", { role: "status" }, "Your account was erased. Your organizations keep their content; nothing else about you is kept.") : null,
    orgName ? h("p", {}, "A session acts in one organization: signing in here ends your session in the other one.") : null,
    form);
  form.querySelector(params.get("email") ? "[name=password]" : "[name=email]").focus();
}

export function invitePage(main) {
  const token = decodeURIComponent(location.hash.slice(1));
  if (!token) {
    page(main, "Invitation", h("p", { class: "error", role: "alert" }, "This invitation link is incomplete: open the whole link from the email."));
    return;
  }
  const say = h("p", { class: "hint", role: "status" });
  const form = h("form", { class: "card narrow", novalidate: true },
    h("p", {}, "Choose a password for your new account, or enter your current password if you already have one."),
    field("Password", { name: "password", type: "password", autocomplete: "new-password", required: true, minlength: 12 },
      "At least 12 characters; a passphrase of a few unrelated words is strong and easy to remember."),
    field("Repeat the password", { name: "again", type: "password", autocomplete: "new-password", required: true }),
    h("button", { type: "submit" }, "Accept the invitation"),
    say);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = new FormData(form);
    if (f.get("password") !== f.get("again")) {
      formError(form, new Error("The two passwords differ."));
      return;
    }
    const accepted = await busy(form, () =>
      withCaptcha((captcha) => api("POST", "/api/v1/invitations/accept", { token, password: f.get("password"), captcha }), (t) => fill(say, t)));
    if (!accepted) return;
    // The token is spent: keep it out of the history.
    history.replaceState(null, "", "/invite");
    page(main, "Welcome",
      h("p", { role: "status" }, accepted.created_account ? "Your account is ready." : "You have joined the organization."),
      h("p", {}, h("a", { href: `/#/signin?org=${encodeURIComponent(accepted.org_id)}` }, "Sign in")));
  });
  page(main, "Accept your invitation", form);
}
