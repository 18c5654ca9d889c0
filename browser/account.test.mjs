// The dashboard's account, organization and access flows in a real Chromium: the captcha solved
// in the page, password change, sessions, two-factor off again, the organization switcher (and a
// quota refusal there), a custom role granted in one space, delete with confirmation, and
// erasing an account (one's own, and a member's as the owner).

import assert from "node:assert/strict";
import fs from "node:fs";
import { after, before, test } from "node:test";
import { apiCall, assertAccessible, close, env, eventually, invitationToken, launch, media, newPage, screenshot, signIn, totp, unique } from "./support.mjs";

before(launch);
after(close);

async function login(email, password) {
  const res = await fetch(`${env.base}/api/v1/auth/login`, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ email, password }),
  });
  return { status: res.status, body: await res.json() };
}

test("after repeated wrong passwords the page solves the captcha itself and signs in", async () => {
  for (let i = 0; i < 3; i++) assert.equal((await login(env.captcha.email, "wrong password number x")).status, 401);
  // Now even the right password needs a solved captcha.
  const asked = await login(env.captcha.email, env.captcha.password);
  assert.equal(asked.status, 428);
  assert.equal(asked.body.code, "captcha_required");
  const { page, done } = await newPage();
  await signIn(page, env.captcha);
  assert.match(await page.locator("#who").innerText(), /cap@example\.com/);
  await done();
});

test("change the password (a weak one refused with the reason), and sign another session out", async () => {
  const a = await newPage();
  const b = await newPage();
  await signIn(a.page, env.editor);
  await signIn(b.page, env.editor);
  await a.page.getByRole("link", { name: "My account" }).click();
  const sessions = a.page.getByRole("region", { name: "Signed-in sessions" });
  await sessions.getByText("This browser").waitFor();
  const others = sessions.getByRole("button", { name: /^Sign out the session from/ });
  assert.ok((await others.count()) >= 1, "the other browser's session is listed");
  await screenshot(a.page, "account");
  await assertAccessible(a.page);
  await others.first().click();
  await a.page.getByText("That session is signed out.").waitFor();
  // The other browser finds itself signed out at its next step.
  await b.page.getByRole("link", { name: "My account" }).click();
  await b.page.getByText("Your session has ended. Sign in again.").waitFor();
  await b.done();

  const form = a.page.getByRole("region", { name: "Signed-in sessions" });
  assert.ok(await form.isVisible());
  await a.page.getByLabel("Current password").fill(env.editor.password);
  await a.page.getByLabel("New password").fill("password");
  await a.page.getByRole("button", { name: "Change password" }).click();
  const why = await a.page.getByRole("alert").filter({ hasText: /password/i }).innerText();
  assert.ok(why.length > 20, `the refusal says why: ${why}`);
  const fresh = "eve now uses a new passphrase 8";
  await a.page.getByLabel("New password").fill(fresh);
  await a.page.getByRole("button", { name: "Change password" }).click();
  await a.page.getByText("Password changed.").waitFor();
  assert.equal((await login(env.editor.email, env.editor.password)).status, 401, "the old password is gone");
  assert.equal((await login(env.editor.email, fresh)).status, 200);
  env.editor.password = fresh;
  await a.done();
});

test("two-factor authentication on, then off again with the password", async () => {
  const { page, done } = await newPage();
  await signIn(page, env.editor);
  await page.getByRole("link", { name: "My account" }).click();
  await page.getByRole("button", { name: "Set up two-factor authentication" }).click();
  const secret = (await page.locator("code.secret-text").innerText()).trim();
  await page.getByLabel("Code from the app").fill(totp(secret));
  await page.getByRole("button", { name: "Turn on" }).click();
  await page.getByRole("button", { name: "I have stored them" }).click();
  assert.equal((await login(env.editor.email, env.editor.password)).body.code, "mfa_required");
  await page.getByLabel("Password", { exact: true }).fill("not my password at all");
  await page.getByRole("button", { name: "Turn off two-factor authentication" }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Turn off" }).click();
  await page.getByRole("alert").filter({ hasText: /not correct/ }).waitFor();
  await page.getByLabel("Password", { exact: true }).fill(env.editor.password);
  await page.getByRole("button", { name: "Turn off two-factor authentication" }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Turn off" }).click();
  await page.getByText("Two-factor authentication is off.").first().waitFor();
  assert.equal((await login(env.editor.email, env.editor.password)).status, 200, "the password alone signs in again");
  await done();
});

test("switch organization: sign in to the other one, where an upload over its quota is refused clearly", async () => {
  const { page, done } = await newPage();
  await signIn(page, env.owner);
  await page.getByLabel("Organization").selectOption(env.secondOrg);
  await page.getByRole("heading", { name: "Sign in to Small Studio" }).waitFor();
  assert.equal(await page.getByLabel("Email").inputValue(), env.owner.email);
  await page.getByLabel("Password", { exact: true }).fill(env.owner.password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Spaces" }).waitFor();
  assert.equal(await page.getByLabel("Organization").inputValue(), env.secondOrg);
  const name = unique("tiny");
  await page.getByLabel("New space").fill(name);
  await page.getByRole("button", { name: "Create space" }).click();
  await page.getByRole("link", { name }).click();
  const big = media("big.png", "testsrc=size=640x480", ["-frames:v", "1"]);
  await page.locator("input[type=file]").setInputFiles(big);
  const refusal = page.locator("ul.uploads li.failed").getByRole("alert");
  await refusal.waitFor();
  assert.match(await refusal.innerText(), /^Not enough storage left: .*quota/i);
  // The first organization's spaces are not visible from this session.
  const spaces = await page.evaluate(async (org) => (await fetch(`/api/v1/orgs/${org}/spaces`)).status, env.owner.org);
  assert.equal(spaces, 404);
  await done();
});

test("a custom role made with the permission picker, granted in one space, opens uploads there only", async () => {
  const inbox = (await apiCall(env.owner.key, "POST", `/api/v1/orgs/${env.owner.org}/spaces`, { name: unique("inbox") })).json;
  const other = (await apiCall(env.owner.key, "POST", `/api/v1/orgs/${env.owner.org}/spaces`, { name: unique("archive") })).json;
  const owner = await newPage();
  await signIn(owner.page, env.owner);
  await owner.page.getByRole("link", { name: "Roles" }).click();
  const role = unique("uploader");
  const form = owner.page.getByRole("form").or(owner.page.locator("form.card")).filter({ hasText: "New custom role" });
  await form.getByLabel("Name").fill(role);
  await form.getByLabel("Upload assets").check();
  await form.getByRole("button", { name: "Create role" }).click();
  await owner.page.getByRole("rowheader", { name: role }).waitFor();
  await screenshot(owner.page, "roles");
  await assertAccessible(owner.page);
  await owner.page.goto(`${env.base}/#/spaces/${inbox.id}`);
  const grants = owner.page.getByRole("region", { name: "Access to this space" });
  await grants.getByLabel("Member").selectOption({ label: env.viewer.email });
  await grants.getByLabel("Role here").selectOption({ label: role });
  await grants.getByRole("button", { name: "Grant" }).click();
  await grants.getByRole("cell", { name: env.viewer.email, exact: true }).waitFor();
  await owner.done();

  const viewer = await newPage();
  await signIn(viewer.page, env.viewer);
  await viewer.page.goto(`${env.base}/#/spaces/${other.id}`);
  await viewer.page.getByText("This space is empty.").waitFor();
  assert.equal(await viewer.page.locator("input[type=file]").count(), 0, "no upload where the role was not granted");
  await viewer.page.goto(`${env.base}/#/spaces/${inbox.id}`);
  await viewer.page.locator("input[type=file]").setInputFiles(media("granted.png", "color=c=green:s=32x32", ["-frames:v", "1"]));
  await viewer.page.locator("ul.uploads li.done", { hasText: "granted.png" }).waitFor();
  await viewer.done();
});

test("delete asks first: cancel keeps the asset, confirm moves it to the trash", async () => {
  const space = (await apiCall(env.owner.key, "POST", `/api/v1/orgs/${env.owner.org}/spaces`, { name: unique("bin") })).json;
  const { page, done } = await newPage();
  await signIn(page, env.owner);
  await page.goto(`${env.base}/#/spaces/${space.id}`);
  await page.locator("input[type=file]").setInputFiles(media("gone.png", "color=c=gray:s=32x32", ["-frames:v", "1"]));
  await page.locator("ul.uploads li.done", { hasText: "gone.png" }).waitFor();
  const assetId = (await page.getByRole("link", { name: "gone.png", exact: true }).getAttribute("href")).split("/").pop();
  await page.getByRole("button", { name: "Delete gone.png" }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Cancel" }).click();
  assert.equal((await apiCall(env.owner.key, "GET", `/api/v1/assets/${assetId}`)).status, 200, "cancel deletes nothing");
  await page.getByRole("button", { name: "Delete gone.png" }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Move to trash" }).click();
  await page.getByText("“gone.png” moved to the trash.").waitFor();
  assert.equal(await page.getByRole("link", { name: "gone.png", exact: true }).count(), 0);
  await eventually(async () => assert.equal((await apiCall(env.owner.key, "GET", `/api/v1/assets/${assetId}`)).status, 404));
  await done();
});

test("the trash: restore brings an asset back, purge asks first and destroys it; an editor may restore but not purge", async () => {
  const space = (await apiCall(env.owner.key, "POST", `/api/v1/orgs/${env.owner.org}/spaces`, { name: unique("trash") })).json;
  const upload = async (name) => (await fetch(`${env.base}/api/v1/spaces/${space.id}/assets?filename=${name}`, {
    method: "POST", headers: { Authorization: `Bearer ${env.owner.key}`, "Content-Type": "text/plain" }, body: `${name} body`,
  })).json();
  const keep = await upload("keep.txt");
  const doomed = await upload("doomed.txt");
  for (const a of [keep, doomed]) assert.equal((await apiCall(env.owner.key, "DELETE", `/api/v1/assets/${a.id}`)).status, 204);

  // The editor sees the trash and restores, but has no purge button.
  const editor = await newPage();
  await signIn(editor.page, env.editor);
  await editor.page.goto(`${env.base}/#/spaces/${space.id}`);
  await editor.page.getByRole("link", { name: "Trash" }).click();
  await editor.page.getByRole("heading", { name: "Trash" }).waitFor();
  await editor.page.getByText("Deleted assets wait here for 30 days").waitFor();
  assert.equal(await editor.page.getByRole("button", { name: /^Purge/ }).count(), 0, "no purge without asset:purge");
  await editor.page.getByRole("button", { name: "Restore keep.txt" }).click();
  await editor.page.getByText("“keep.txt” restored to the space.").waitFor();
  assert.equal((await apiCall(env.owner.key, "GET", `/api/v1/assets/${keep.id}`)).status, 200);
  await assertAccessible(editor.page);
  await editor.done();

  // The owner purges, after saying so in the dialog; cancel purges nothing.
  const { page, done } = await newPage();
  await signIn(page, env.owner);
  await page.goto(`${env.base}/#/spaces/${space.id}/trash`);
  await page.getByRole("button", { name: "Purge doomed.txt" }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Cancel" }).click();
  assert.equal((await apiCall(env.owner.key, "GET", `/api/v1/spaces/${space.id}/trash`)).json.items.length, 1);
  await screenshot(page, "trash");
  await page.getByRole("button", { name: "Purge doomed.txt" }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Purge" }).click();
  await page.getByText("“doomed.txt” purged.").waitFor();
  await page.getByText("The trash is empty.").waitFor();
  assert.equal((await apiCall(env.owner.key, "POST", `/api/v1/assets/${doomed.id}/restore`)).status, 404);
  await done();
});

test("a space's retention rule: set in days from the space page, cleared by emptying the field", async () => {
  const space = (await apiCall(env.owner.key, "POST", `/api/v1/orgs/${env.owner.org}/spaces`, { name: unique("logs") })).json;
  const { page, done } = await newPage();
  await signIn(page, env.owner);
  await page.goto(`${env.base}/#/spaces/${space.id}`);
  const card = page.locator("form", { hasText: "Retention" });
  await card.getByLabel("Move assets to the trash after (days)").fill("0");
  await card.getByRole("button", { name: "Save retention" }).click();
  await card.getByRole("alert").filter({ hasText: /between 1 and 36500/ }).waitFor();
  await card.getByLabel("Move assets to the trash after (days)").fill("14");
  await card.getByRole("button", { name: "Save retention" }).click();
  await page.getByText("Assets in this space go to the trash 14 days after upload.").waitFor();
  const spaces = (await apiCall(env.owner.key, "GET", `/api/v1/orgs/${env.owner.org}/spaces?limit=1000`)).json.items;
  assert.equal(spaces.find((s) => s.id === space.id).retention_days, 14);
  await card.getByLabel("Move assets to the trash after (days)").fill("");
  await card.getByRole("button", { name: "Save retention" }).click();
  await page.getByText("Assets in this space are kept until deleted.").waitFor();
  const after = (await apiCall(env.owner.key, "GET", `/api/v1/orgs/${env.owner.org}/spaces?limit=1000`)).json.items;
  assert.equal(after.find((s) => s.id === space.id).retention_days, null);
  await done();

  // A viewer sees no retention setting.
  const viewer = await newPage();
  await signIn(viewer.page, env.viewer);
  await viewer.page.goto(`${env.base}/#/spaces/${space.id}`);
  await viewer.page.getByRole("heading", { name: space.name }).waitFor();
  assert.equal(await viewer.page.getByLabel("Move assets to the trash after (days)").count(), 0);
  await viewer.done();
});

test("download my data: the account page gives a zip of the signed-in person's data", async () => {
  const { page, done } = await newPage();
  await signIn(page, env.admin);
  await page.getByRole("link", { name: "My account" }).click();
  await page.getByRole("heading", { name: "Your data" }).waitFor();
  const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("link", { name: "Download my data" }).click()]);
  assert.match(download.suggestedFilename(), /^strongroom-export-usr_[0-9a-f]+-\d{4}-\d{2}-\d{2}\.zip$/);
  const bytes = fs.readFileSync(await download.path());
  assert.equal(bytes.subarray(0, 2).toString(), "PK", "a zip archive");
  assert.ok(bytes.includes(Buffer.from("account.json")) && bytes.includes(Buffer.from(env.admin.email)), "it holds the account");
  assert.ok(!bytes.includes(Buffer.from(env.owner.email)), "nobody else's address");
  await done();
});

/** A new member of the owner's organization, through an invitation accepted over the API. */
async function acceptedMember(role) {
  const email = `${unique("gone")}@example.com`;
  const password = "quartz lantern meadow forty 6";
  const inv = await apiCall(env.owner.key, "POST", `/api/v1/orgs/${env.owner.org}/invitations`, { email, role });
  assert.equal(inv.status, 201, inv.text);
  const token = await invitationToken(email);
  const ok = await apiCall(null, "POST", "/api/v1/invitations/accept", { token, password });
  assert.equal(ok.status, 200, ok.text);
  return { email, password, id: ok.json.user_id };
}

test("erase my account: typed confirmation, then signed out and unable to sign in again", async () => {
  const gone = await acceptedMember("editor");
  const { page, done } = await newPage();
  await signIn(page, gone);
  await page.getByRole("link", { name: "My account" }).click();
  const card = page.getByRole("form", { name: "Erase my account" });
  await card.waitFor();
  await assertAccessible(page);
  // A wrong confirmation erases nothing.
  await card.getByLabel("Type your email address to confirm").fill("someone-else@example.com");
  await card.getByRole("button", { name: "Erase my account" }).click();
  await card.getByText("Type your email address exactly as shown above to confirm.").waitFor();
  // Cancel in the dialog erases nothing either.
  await card.getByLabel("Type your email address to confirm").fill(gone.email);
  await card.getByRole("button", { name: "Erase my account" }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Cancel" }).click();
  assert.equal((await login(gone.email, gone.password)).status, 200);
  await card.getByRole("button", { name: "Erase my account" }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Erase" }).click();
  await page.getByText("Your account was erased.").waitFor();
  assert.equal((await login(gone.email, gone.password)).status, 401);
  // The trail keeps who, what and when of their actions, and nothing else.
  const trail = (await apiCall(env.owner.key, "GET", `/api/v1/orgs/${env.owner.org}/audit?limit=1000`)).json.items;
  const theirs = trail.filter((e) => e.actor === `user:${gone.id}`);
  assert.ok(theirs.length > 0 && theirs.every((e) => e.erased === true && e.ip === ""), JSON.stringify(theirs));
  await done();
});

test("an owner erases a member's account from the members page; an admin has no such button", async () => {
  const gone = await acceptedMember("viewer");
  const admin = await newPage();
  await signIn(admin.page, env.admin);
  await admin.page.goto(`${env.base}/#/members`);
  await admin.page.getByRole("button", { name: `Remove ${gone.email}` }).waitFor();
  assert.equal(await admin.page.getByRole("button", { name: `Erase the account of ${gone.email}` }).count(), 0);
  await admin.done();

  const { page, done } = await newPage();
  await signIn(page, env.owner);
  await page.goto(`${env.base}/#/members`);
  await page.getByRole("button", { name: `Erase the account of ${gone.email}` }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Erase" }).click();
  await page.getByText(`The account of ${gone.email} was erased.`).waitFor();
  assert.equal(await page.getByRole("button", { name: `Remove ${gone.email}` }).count(), 0);
  assert.equal((await login(gone.email, gone.password)).status, 401);
  await done();
});

test("an owner deletes a whole organization from the security page, typing its name; an admin sees no such card", async () => {
  const admin = await newPage();
  await signIn(admin.page, env.admin);
  await admin.page.getByRole("link", { name: "Security" }).click();
  await admin.page.getByRole("heading", { name: "Security", exact: true }).waitFor();
  assert.equal(await admin.page.getByRole("form", { name: "Delete this organization" }).count(), 0);
  await admin.done();

  const space = await apiCall(env.doomed.key, "POST", `/api/v1/orgs/${env.doomed.org}/spaces`, { name: "Doomed work" });
  assert.equal(space.status, 201, space.text);
  const { page, done } = await newPage();
  await signIn(page, env.doomed);
  await page.getByRole("link", { name: "Security" }).click();
  const card = page.getByRole("form", { name: "Delete this organization" });
  await card.waitFor();
  await assertAccessible(page);
  await card.getByLabel(/Type the organization's name/).fill("Doomed");
  await card.getByRole("button", { name: "Delete this organization" }).click();
  await card.getByText("Type the organization's name exactly as shown to confirm.").waitFor();
  await card.getByLabel(/Type the organization's name/).fill("Doomed Studio");
  await card.getByRole("button", { name: "Delete this organization" }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Cancel" }).click();
  assert.equal((await apiCall(env.doomed.key, "GET", "/api/v1/me")).status, 200, "cancel deletes nothing");
  await card.getByRole("button", { name: "Delete this organization" }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Delete the organization" }).click();
  await page.getByText("The organization was deleted.").waitFor();
  assert.equal((await apiCall(env.doomed.key, "GET", "/api/v1/me")).status, 401);
  // Its owner belonged to it alone: their account went with it.
  assert.equal((await login(env.doomed.email, env.doomed.password)).status, 401);
  // The other organizations are untouched.
  assert.equal((await apiCall(env.owner.key, "GET", "/api/v1/me")).status, 200);
  await done();
});
