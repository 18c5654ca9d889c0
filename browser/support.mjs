// What the dashboard tests share: the server scripts/browser-tests.sh started (from the
// environment), a real Chromium driven by playwright-core, an independent TOTP, the API
// called directly (to check what the page did, never to do it), the SMTP sink's mail, and media
// made with ffmpeg.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run the browser tests with scripts/browser-tests.sh`);
  return v;
}

export const env = {
  base: need("STRONGROOM_URL"),
  spki: need("STRONGROOM_SPKI"),
  chromium: process.env.CHROMIUM || "/usr/bin/chromium",
  maildir: need("STRONGROOM_TEST_MAILDIR"),
  work: need("STRONGROOM_BROWSER_WORK"),
  screenshots: process.env.STRONGROOM_SCREENSHOTS || "",
  owner: { email: need("OWNER_EMAIL"), password: need("OWNER_PASSWORD"), key: need("OWNER_KEY"), org: need("ORG_ID") },
  admin: { email: need("ADMIN_EMAIL"), password: need("ADMIN_PASSWORD") },
  viewer: { email: need("VIEWER_EMAIL"), password: need("VIEWER_PASSWORD") },
  editor: { email: need("EDITOR_EMAIL"), password: need("EDITOR_PASSWORD") },
  captcha: { email: need("CAPTCHA_EMAIL"), password: need("CAPTCHA_PASSWORD") },
  secondOrg: need("SECOND_ORG_ID"),
  doomed: { email: need("DOOMED_EMAIL"), password: need("DOOMED_PASSWORD"), key: need("DOOMED_KEY"), org: need("DOOMED_ORG_ID") },
};

let browser = null;

/** One Chromium for the whole run: the server's certificate is trusted by its key, not ignored. */
export async function launch() {
  browser = await chromium.launch({
    executablePath: env.chromium,
    args: [`--ignore-certificate-errors-spki-list=${env.spki}`, "--autoplay-policy=no-user-gesture-required"],
  });
  return browser;
}

export async function close() {
  if (browser) await browser.close();
}

/**
 * A fresh browser profile (no cookies, no storage) with one page. Every uncaught JavaScript
 * error and every console error other than a failed fetch the page expected (a 401 before
 * sign-in, a 404 thumbnail not made yet) is recorded; `done()` fails the test on any.
 */
export async function newPage() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, locale: "en-GB", timezoneId: "UTC" });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(`uncaught: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) errors.push(`console: ${m.text()}`);
  });
  page.on("dialog", (d) => {
    errors.push(`unexpected native dialog: ${d.message()}`);
    d.dismiss();
  });
  page.setDefaultTimeout(20_000);
  return {
    page,
    context,
    errors,
    async done() {
      await context.close();
      assert.deepEqual(errors, [], "the page had JavaScript errors");
    },
  };
}

/**
 * Screen-reader basics on the page as it is now: every visible form control has a label (a
 * <label for>, a wrapping label or aria-label), every image has alt text, every button and link
 * has a name, and there is exactly one h1. Fails the test with the offenders.
 */
export async function assertAccessible(page) {
  const problems = await page.evaluate(() => {
    const out = [];
    const visible = (el) => el.offsetParent !== null || el.getClientRects().length > 0;
    for (const el of document.querySelectorAll("input, select, textarea")) {
      if (el.type === "hidden" || el.hidden || !visible(el)) continue;
      const named = el.labels?.length || el.getAttribute("aria-label") || el.getAttribute("aria-labelledby");
      if (!named) out.push(`unlabelled ${el.tagName.toLowerCase()} name=${el.name}`);
    }
    for (const img of document.querySelectorAll("img")) if (!img.hasAttribute("alt")) out.push(`img without alt: ${img.src}`);
    for (const el of document.querySelectorAll("button, a[href]")) {
      if (visible(el) && !(el.textContent.trim() || el.getAttribute("aria-label"))) out.push(`nameless ${el.tagName.toLowerCase()}`);
    }
    const h1 = document.querySelectorAll("main h1").length;
    if (h1 !== 1) out.push(`${h1} h1 headings in main`);
    return out;
  });
  assert.deepEqual(problems, [], `accessibility basics on ${page.url()}`);
}

/** Signs in through the form; `code` is a TOTP when the account has one. */
export async function signIn(page, who, code) {
  await page.goto(`${env.base}/#/signin`);
  await page.getByLabel("Email").fill(who.email);
  await page.getByLabel("Password", { exact: true }).fill(who.password);
  await page.getByRole("button", { name: "Sign in" }).click();
  if (code) {
    await page.getByLabel("Code from your authenticator app").fill(code());
    await page.getByRole("button", { name: "Sign in" }).click();
  }
  await page.getByRole("navigation", { name: "Main" }).waitFor();
}

/** RFC 6238 TOTP (SHA-1, 6 digits, 30 s), written here apart from the server's. */
export function totp(base32, at = Date.now()) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const c of base32.replace(/=+$/, "").toUpperCase()) bits += alphabet.indexOf(c).toString(2).padStart(5, "0");
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(at / 1000 / 30)));
  const mac = crypto.createHmac("sha1", key).update(counter).digest();
  const off = mac[mac.length - 1] & 0xf;
  return String((mac.readUInt32BE(off) & 0x7fffffff) % 1_000_000).padStart(6, "0");
}

/** The API called directly with a key (NODE_EXTRA_CA_CERTS trusts the server's certificate). */
export async function apiCall(key, method, route, body) {
  const headers = { Accept: "application/json" };
  if (key) headers.Authorization = `Bearer ${key}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(`${env.base}${route}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = null;
  }
  return { status: res.status, json, text };
}

/** The invitation token mailed to `to`, waiting for the message to arrive. */
export async function invitationToken(to) {
  const dir = path.join(env.maildir, "new");
  for (let i = 0; i < 200; i++) {
    for (const f of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
      const text = fs.readFileSync(path.join(dir, f), "utf8");
      if (text.includes(to) && text.includes("/invite#")) return text.match(/\/invite#([A-Za-z0-9_-]+)/)[1];
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no invitation mail to ${to}`);
}

/** An image or video made by ffmpeg in the work directory. */
export function media(name, lavfi, extra = []) {
  const out = path.join(env.work, name);
  if (!fs.existsSync(out)) {
    execFileSync("ffmpeg", ["-v", "error", "-y", "-f", "lavfi", "-i", lavfi, ...extra, out]);
  }
  return out;
}

/** Saves a screenshot for docs/dashboard.md when STRONGROOM_SCREENSHOTS names a folder. */
export async function screenshot(page, name) {
  if (!env.screenshots) return;
  fs.mkdirSync(env.screenshots, { recursive: true });
  await page.screenshot({ path: path.join(env.screenshots, `${name}.png`), fullPage: false });
}

/** Retries `check` until it passes or `ms` run out (for work the server does in the background). */
export async function eventually(check, ms = 60_000, every = 500) {
  const until = Date.now() + ms;
  for (;;) {
    try {
      return await check();
    } catch (e) {
      if (Date.now() > until) throw e;
      await new Promise((r) => setTimeout(r, every));
    }
  }
}

export function unique(label) {
  return `${label}-${crypto.randomBytes(4).toString("hex")}`;
}
