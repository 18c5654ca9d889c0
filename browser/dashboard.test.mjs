// The dashboard end to end: a real server over HTTPS (scripts/browser-tests.sh starts it), a
// real Chromium, every main flow through the page as a user would click it, and the refusals.
// What the page claims is checked apart from it where it matters: a link or a key the page
// made is tried with the API directly, before and after it is revoked.

import assert from "node:assert/strict";
import fs from "node:fs";
import { after, before, test } from "node:test";
import { apiCall, assertAccessible, close, env, eventually, invitationToken, launch, media, newPage, screenshot, signIn, totp, unique } from "./support.mjs";

let space = null;

before(async () => {
  await launch();
  const made = await apiCall(env.owner.key, "POST", `/api/v1/orgs/${env.owner.org}/spaces`, { name: "Media library" });
  assert.equal(made.status, 201, made.text);
  space = made.json;
});

after(close);

test("a signed-out visitor is sent to sign in, and a wrong password is refused in one sentence", async () => {
  const { page, done } = await newPage();
  await page.goto(`${env.base}/#/spaces/${space.id}`);
  await page.getByRole("heading", { name: "Sign in" }).waitFor();
  assert.match(page.url(), /#\/signin\?next=/);
  assert.equal(await page.getByRole("navigation", { name: "Main" }).isVisible(), false);
  await page.getByLabel("Email").fill(env.owner.email);
  await page.getByLabel("Password", { exact: true }).fill("not the password at all");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("alert").filter({ hasText: /email address or password is not correct/ }).waitFor();
  await screenshot(page, "sign-in");
  await assertAccessible(page);
  // Signing in then lands on the page first asked for.
  await page.getByLabel("Password", { exact: true }).fill(env.owner.password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Media library" }).waitFor();
  await done();
});

test("the sign-in form works from the keyboard alone", async () => {
  const { page, done } = await newPage();
  await page.goto(`${env.base}/`);
  await page.getByRole("heading", { name: "Sign in" }).waitFor();
  // The first field has focus; Tab moves on; Enter submits.
  await page.keyboard.type(env.viewer.email);
  await page.keyboard.press("Tab");
  await page.keyboard.type(env.viewer.password);
  await page.keyboard.press("Enter");
  await page.getByRole("navigation", { name: "Main" }).waitFor();
  // The new page's heading takes focus once the page has rendered (the navigation can come
  // first), so a screen reader announces it; fails if it never does within 5 s.
  await page.waitForFunction(() => document.activeElement?.tagName === "H1", null, { timeout: 5000 });
  assert.equal(await page.evaluate(() => document.activeElement.tagName), "H1");
  await assertAccessible(page);
  await done();
});

test("a page still loading when the user moves on never replaces the page opened after it", async () => {
  const { page, done } = await newPage();
  // The spaces list answers slowly, as on a busy server: the user opens another page meanwhile.
  let released;
  const held = new Promise((r) => (released = r));
  const slow = (url) => /^\/api\/v1\/orgs\/[^/]+\/spaces$/.test(url.pathname);
  let answered;
  const spacesAnswered = new Promise((r) => (answered = r));
  await page.route(slow, async (route) => {
    await held;
    await route.continue();
  });
  page.on("requestfinished", (r) => slow(new URL(r.url())) && answered());
  await signIn(page, env.viewer);
  await page.getByRole("link", { name: "My account" }).click();
  await page.getByRole("heading", { name: "My account", exact: true }).waitFor();
  released();
  await spacesAnswered;
  await page.waitForTimeout(300);
  assert.equal(await page.locator("main h1").innerText(), "My account");
  assert.match(await page.title(), /^My account/);
  await done();
});

test("sign in with TOTP: enrol with the QR code, recovery codes shown once, then the code is asked for", async () => {
  const { page, done } = await newPage();
  await signIn(page, env.admin);
  await page.getByRole("link", { name: "My account" }).click();
  await page.getByRole("button", { name: "Set up two-factor authentication" }).click();
  const qr = page.getByRole("img", { name: "QR code of the authenticator key" });
  await qr.waitFor();
  assert.ok(await qr.evaluate((img) => img.complete && img.naturalWidth > 0), "the QR code renders");
  const secret = (await page.locator("code.secret-text").innerText()).trim();
  await screenshot(page, "account-totp");
  await assertAccessible(page);
  await page.getByLabel("Code from the app").fill("000000");
  await page.getByRole("button", { name: "Turn on" }).click();
  await page.getByRole("alert").filter({ hasText: /code/i }).waitFor();
  await page.getByLabel("Code from the app").fill(totp(secret));
  await page.getByRole("button", { name: "Turn on" }).click();
  await page.getByText("Two-factor authentication is on.").waitFor();
  const codes = await page.locator("ul.codes li").allInnerTexts();
  assert.equal(codes.length, 10, "ten recovery codes");
  await page.getByRole("button", { name: "I have stored them" }).click();
  await page.getByText("Signing in asks for a code").waitFor();
  assert.equal(await page.locator("ul.codes").count(), 0, "the codes are not shown again");
  await page.getByRole("button", { name: "Sign out", exact: true }).click();
  await page.getByRole("heading", { name: "Sign in" }).waitFor();

  // The password alone no longer signs in: the page asks for the code.
  await page.getByLabel("Email").fill(env.admin.email);
  await page.getByLabel("Password", { exact: true }).fill(env.admin.password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByLabel("Code from your authenticator app").waitFor();
  assert.equal(await page.getByRole("navigation", { name: "Main" }).isVisible(), false);
  // The step just used at enrolment cannot be replayed: wait for the next one.
  const used = Math.floor(Date.now() / 30_000);
  await page.waitForTimeout(Math.max(0, (used + 1) * 30_000 - Date.now() + 200));
  await page.getByLabel("Code from your authenticator app").fill(totp(secret));
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("navigation", { name: "Main" }).waitFor();

  // A recovery code signs in once.
  await page.getByRole("button", { name: "Sign out", exact: true }).click();
  await page.getByLabel("Email").fill(env.admin.email);
  await page.getByLabel("Password", { exact: true }).fill(env.admin.password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByText("Use a recovery code instead").click();
  await page.getByLabel("Recovery code").fill(codes[0]);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("navigation", { name: "Main" }).waitFor();
  await done();
});

test("upload three files by the file picker, each with a progress bar, and see their thumbnails", async () => {
  const { page, done } = await newPage();
  await signIn(page, env.owner);
  // A new space, made from the page.
  const name = unique("photos");
  await page.getByLabel("New space").fill(name);
  await page.getByRole("button", { name: "Create space" }).click();
  await page.getByRole("link", { name }).click();
  await page.getByRole("heading", { name }).waitFor();
  const files = [
    media("red.png", "color=c=red:s=320x240", ["-frames:v", "1"]),
    media("bars.png", "testsrc=size=640x360", ["-frames:v", "1"]),
    media("mandel.jpg", "mandelbrot=size=400x300", ["-frames:v", "1"]),
  ];
  // Two by the file picker, one dropped on the drop zone as a user drags it from their desktop.
  await page.locator("input[type=file]").setInputFiles(files.slice(0, 2));
  const dropped = await page.evaluateHandle(async ([bytes, name]) => {
    const dt = new DataTransfer();
    dt.items.add(new File([new Uint8Array(bytes)], name, { type: "image/jpeg" }));
    return dt;
  }, [[...fs.readFileSync(files[2])], "mandel.jpg"]);
  await page.getByRole("group", { name: "Upload files" }).dispatchEvent("drop", { dataTransfer: dropped });
  for (const f of ["red.png", "bars.png", "mandel.jpg"]) {
    await page.locator("ul.uploads li.done", { hasText: f }).waitFor();
    assert.equal(await page.locator("ul.uploads li", { hasText: f }).locator("progress").count(), 1, `${f} had a progress bar`);
  }
  // Thumbnails are made in the background: reload until all three show.
  await eventually(async () => {
    await page.reload();
    const thumbs = page.getByRole("img", { name: /^Thumbnail of / });
    await thumbs.first().waitFor({ timeout: 5_000 });
    assert.equal(await thumbs.count(), 3);
    for (const img of await thumbs.all()) {
      await img.scrollIntoViewIfNeeded();
      assert.ok(await img.evaluate((i) => i.complete && i.naturalWidth > 0), "a thumbnail decoded");
    }
  });
  await screenshot(page, "space");
  await assertAccessible(page);
  await done();
});

test("play a video in the page to its end, through a playback token", async () => {
  const clip = media("clip.mp4", "testsrc=size=320x240:rate=25:duration=2", ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "25"]);
  const { page, done } = await newPage();
  await signIn(page, env.owner);
  await page.goto(`${env.base}/#/spaces/${space.id}`);
  await page.locator("input[type=file]").setInputFiles(clip);
  await page.locator("ul.uploads li.done", { hasText: "clip.mp4" }).waitFor();
  await page.getByRole("link", { name: "clip.mp4", exact: true }).click();
  await page.getByRole("heading", { name: "clip.mp4" }).waitFor();
  await eventually(async () => {
    await page.reload();
    await page.getByRole("button", { name: "Play video" }).waitFor({ timeout: 3_000 });
  }, 120_000, 1_000);
  await page.getByRole("button", { name: "Play video" }).click();
  const video = page.locator("video");
  await video.waitFor();
  assert.match(await video.getAttribute("src"), /\/hls\/[^/]+\/master\.m3u8$/);
  const ended = await video.evaluate((v) => new Promise((resolve, reject) => {
    if (v.ended) resolve({ ended: true, t: v.currentTime, d: v.duration });
    v.addEventListener("ended", () => resolve({ ended: true, t: v.currentTime, d: v.duration }));
    v.addEventListener("error", () => reject(new Error(`media error ${v.error && v.error.code}`)));
    setTimeout(() => reject(new Error(`not ended after 45 s (at ${v.currentTime} of ${v.duration})`)), 45_000);
  }));
  assert.ok(ended.ended && ended.d > 1.5 && ended.t >= ended.d - 0.2, `played to the end: ${JSON.stringify(ended)}`);
  await screenshot(page, "asset-video");
  await assertAccessible(page);
  await done();
});

test("make a link, copy it, and revoke it: it stops working at once", async () => {
  const file = media("doc.png", "color=c=blue:s=64x64", ["-frames:v", "1"]);
  const { page, done } = await newPage();
  await signIn(page, env.owner);
  await page.goto(`${env.base}/#/spaces/${space.id}`);
  await page.locator("input[type=file]").setInputFiles(file);
  await page.locator("ul.uploads li.done", { hasText: "doc.png" }).waitFor();
  await page.getByRole("link", { name: "doc.png", exact: true }).click();
  await page.getByRole("heading", { name: "Links" }).waitFor();
  await page.getByLabel("Expires after").selectOption({ label: "1 day" });
  await page.getByRole("button", { name: "Create link" }).click();
  const url = await page.getByLabel("Link", { exact: true }).inputValue();
  assert.match(url, /^https:\/\/127\.0\.0\.1:\d+\/d\/.+/);
  const before_ = await fetch(url);
  assert.equal(before_.status, 200, "the link downloads");
  assert.ok((await before_.arrayBuffer()).byteLength > 0);
  await page.getByRole("cell", { name: "active" }).waitFor();
  // The page's own download gives back the very bytes uploaded.
  const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("link", { name: "Download" }).click()]);
  assert.equal(download.suggestedFilename(), "doc.png");
  assert.deepEqual(fs.readFileSync(await download.path()), fs.readFileSync(file));
  await screenshot(page, "asset-links");
  await assertAccessible(page);
  await page.getByRole("button", { name: /^Revoke the link/ }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Revoke" }).click();
  await page.getByRole("cell", { name: "revoked" }).waitFor();
  const after_ = await fetch(url);
  assert.ok([404, 410].includes(after_.status), `a revoked link answers ${after_.status}`);
  await done();
});

test("invite a member and accept as them: a weak password is refused with the reason", async () => {
  const email = `${unique("new")}@example.com`;
  const owner = await newPage();
  await signIn(owner.page, env.owner);
  await owner.page.getByRole("link", { name: "Members" }).click();
  await owner.page.getByLabel("Email").fill(email);
  await owner.page.getByLabel("Role", { exact: true }).selectOption("contributor");
  await owner.page.getByRole("button", { name: "Send invitation" }).click();
  await owner.page.getByRole("cell", { name: email, exact: true }).waitFor();
  await screenshot(owner.page, "members");
  await assertAccessible(owner.page);
  const token = await invitationToken(email);

  const guest = await newPage();
  await guest.page.goto(`${env.base}/invite#${token}`);
  await guest.page.getByRole("heading", { name: "Accept your invitation" }).waitFor();
  await guest.page.getByLabel("Password", { exact: true }).fill("password1234");
  await guest.page.getByLabel("Repeat the password").fill("password1234");
  await guest.page.getByRole("button", { name: "Accept the invitation" }).click();
  const why = await guest.page.getByRole("alert").innerText();
  assert.match(why, /password/i, `the refusal says why: ${why}`);
  const strong = "tulip orbit granite seventy 9";
  await guest.page.getByLabel("Password", { exact: true }).fill(strong);
  await guest.page.getByLabel("Repeat the password").fill(strong);
  await guest.page.getByRole("button", { name: "Accept the invitation" }).click();
  await guest.page.getByRole("heading", { name: "Welcome" }).waitFor();
  assert.ok(!guest.page.url().includes(token), "the spent token left the address bar");
  await guest.page.getByRole("link", { name: "Sign in" }).click();
  await signIn(guest.page, { email, password: strong });
  assert.match(await guest.page.getByLabel("Organization").locator("option:checked").innerText(), /\(contributor\)/);
  await guest.done();

  await owner.page.reload();
  await owner.page.getByRole("cell", { name: "accepted" }).waitFor();
  await owner.done();
});

test("create an API key (secret shown once), use it, and revoke it", async () => {
  const { page, done } = await newPage();
  await signIn(page, env.owner);
  await page.getByRole("link", { name: "API keys" }).click();
  const name = unique("deploy");
  await page.getByLabel("Name").fill(name);
  await page.getByLabel("Role", { exact: true }).selectOption("viewer");
  await page.getByRole("button", { name: "Create key" }).click();
  const secret = await page.getByLabel(`Secret of ${name}`).inputValue();
  assert.match(secret, /^srk_/);
  const me = await apiCall(secret, "GET", "/api/v1/me");
  assert.equal(me.status, 200);
  assert.equal(me.json.role, "viewer");
  await page.getByRole("cell", { name, exact: true }).waitFor();
  await page.reload();
  await page.getByRole("cell", { name, exact: true }).waitFor();
  assert.equal(await page.getByLabel(`Secret of ${name}`).count(), 0, "the secret is not shown again");
  await page.getByRole("row", { name: new RegExp(name) }).getByText(/from /).waitFor();
  await screenshot(page, "api-keys");
  await assertAccessible(page);
  // Rotation: a new secret, shown once; the old one keeps working through the grace period.
  await page.getByRole("button", { name: `Rotate the key ${name}` }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Rotate" }).click();
  const rotated = await page.getByLabel(`New secret of ${name}`).inputValue();
  assert.notEqual(rotated, secret);
  assert.equal((await apiCall(rotated, "GET", "/api/v1/me")).status, 200, "the new secret works");
  assert.equal((await apiCall(secret, "GET", "/api/v1/me")).status, 200, "the old one is still in its grace period");
  await page.getByRole("button", { name: `Revoke the key ${name}` }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Revoke" }).click();
  await page.getByRole("row", { name: new RegExp(name) }).getByText("revoked").waitFor();
  assert.equal((await apiCall(secret, "GET", "/api/v1/me")).status, 401, "a revoked key stops working");
  assert.equal((await apiCall(rotated, "GET", "/api/v1/me")).status, 401, "with its rotated secret");
  await done();
});

test("read the audit trail, filter it, and verify the chain", async () => {
  const { page, done } = await newPage();
  await signIn(page, env.owner);
  await page.getByRole("link", { name: "Audit trail" }).click();
  await page.getByRole("cell", { name: "auth.login" }).first().waitFor();
  await page.getByLabel("Action").fill("apikey.revoke");
  await page.getByRole("cell", { name: "apikey.revoke" }).first().waitFor();
  assert.equal(await page.getByRole("cell", { name: "auth.login", exact: true }).count(), 0, "the filter hides other actions");
  await page.getByRole("button", { name: "Verify the chain now" }).click();
  await page.getByText(/Intact\. \d+ events/).waitFor();
  await page.getByLabel("Action").fill("");
  await screenshot(page, "audit");
  await assertAccessible(page);
  await done();
});

test("a viewer sees no upload or delete (nor the backup status), and the server refuses the upload the page hides", async () => {
  const { page, done } = await newPage();
  await signIn(page, env.viewer);
  for (const hidden of ["API keys", "Members", "Audit trail"]) {
    assert.equal(await page.getByRole("link", { name: hidden }).count(), 0, `${hidden} is not offered to a viewer`);
  }
  await page.goto(`${env.base}/#/spaces/${space.id}`);
  await page.locator("table.assets tbody tr").first().waitFor();
  assert.equal(await page.locator("input[type=file]").count(), 0, "no upload");
  assert.equal(await page.getByRole("button", { name: /^Delete/ }).count(), 0, "no delete");
  assert.equal(await page.getByLabel("New space").count(), 0);
  // The same request the page would send, made from the viewer's own signed-in page.
  const status = await page.evaluate(async (spaceId) => {
    const res = await fetch(`/api/v1/spaces/${spaceId}/assets?filename=x.txt`, {
      method: "POST", body: "nope", headers: { "Content-Type": "text/plain", "X-CSRF-Token": localStorage.getItem("strongroom.csrf") },
    });
    return res.status;
  }, space.id);
  assert.equal(status, 403);
  // The Security page shows the viewer the policy, read-only, but not the instance's backups
  // (the owner's alone).
  await page.goto(`${env.base}/#/security`);
  await page.getByRole("heading", { name: "Security policy" }).waitFor();
  assert.equal(await page.getByRole("region", { name: "Backups" }).count(), 0, "no backup status for a viewer");
  // A page the viewer is not offered shows the server's refusal, not an empty form.
  await page.goto(`${env.base}/#/keys`);
  await page.getByRole("heading", { name: "Something went wrong" }).waitFor();
  await done();
});

test("security settings: require 2FA and session timeouts, with who has 2FA", async () => {
  const { page, done } = await newPage();
  await signIn(page, env.owner);
  await page.getByRole("link", { name: "Security" }).click();
  await page.getByLabel("Sign out after inactivity (minutes)").fill("45");
  await page.getByRole("button", { name: "Save policy" }).click();
  await page.getByText("Security policy saved.").waitFor();
  const org = await apiCall(env.owner.key, "GET", `/api/v1/orgs/${env.owner.org}`);
  assert.equal(org.json.session_idle_secs, 45 * 60);
  await page.getByLabel("Sign out after inactivity (minutes)").fill("1");
  await page.getByRole("button", { name: "Save policy" }).click();
  await page.getByRole("alert").filter({ hasText: "session_idle_secs" }).waitFor();
  assert.equal((await apiCall(env.owner.key, "GET", `/api/v1/orgs/${env.owner.org}`)).json.session_idle_secs, 45 * 60, "a refused change changes nothing");
  const row = page.getByRole("region", { name: "Who has two-factor authentication" }).getByRole("row", { name: new RegExp(env.admin.email) });
  await row.getByText("on").waitFor();
  const backups = page.getByRole("region", { name: "Backups" });
  await backups.getByText(new RegExp(`Last backup: .*${process.env.BACKUP_ID}`)).waitFor();
  await backups.getByText(new RegExp(`Last verified backup: .*${process.env.BACKUP_ID}`)).waitFor();
  await screenshot(page, "security");
  await assertAccessible(page);
  await done();
});
