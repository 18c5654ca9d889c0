// The browser half of bench/dashboard.sh (which starts the server and sets the environment):
// headless Chromium (Debian's, driven by playwright-core from browser/node_modules) signs in
// through the form, then opens a space's asset list LOADS times (after WARMUP discarded loads)
// and clicks "Show more" once per load. Prints one JSON object per load on stdout:
//   {"load", "warmup", "first_row_ms", "first_row_in_page_ms", "rows", "more_ms",
//    "more_in_page_ms", "rows_after_more", "requests"}
// first_row_ms: from the navigation's start (page.goto called, from about:blank) until the first
// row of `table.assets tbody` is visible, on Node's clock (Playwright's round trips included).
// first_row_in_page_ms: the page's own clock, from its navigation start (performance.timeOrigin)
// until the first row joined the document (a MutationObserver installed before any script runs).
// more_ms / more_in_page_ms: from the click on "Show more" until the next page's first row.
// requests: how many requests the page made during the load (until the first row).

import { createRequire } from "node:module";
import path from "node:path";

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run bench/dashboard.sh`);
  return v;
}

const base = need("BENCH_URL");
const space = need("BENCH_SPACE");
const spki = need("BENCH_SPKI");
const email = need("BENCH_EMAIL");
const password = need("BENCH_PASSWORD");
const loads = Number(process.env.LOADS || 5);
const warmup = Number(process.env.WARMUP || 1);
const pageSize = Number(process.env.PAGE_SIZE || 50);
const require = createRequire(path.join(need("BENCH_BROWSER_DIR"), "package.json"));
const { chromium } = require("playwright-core");

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [`--ignore-certificate-errors-spki-list=${spki}`],
});
const errors = [];
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, locale: "en-GB", timezoneId: "UTC" });
  // Before any of the page's scripts: note (on the page's clock) when the first asset row joins
  // the document, when a click lands, and when the row after the first page joins.
  await context.addInitScript((size) => {
    window.__bench = { firstRow: null, click: null, more: null };
    const seen = () => {
      const n = document.querySelectorAll("table.assets tbody tr").length;
      if (n > 0 && window.__bench.firstRow === null) window.__bench.firstRow = performance.now();
      if (n > size && window.__bench.more === null) window.__bench.more = performance.now();
    };
    new MutationObserver(seen).observe(document, { childList: true, subtree: true });
    document.addEventListener("click", () => {
      window.__bench.click = performance.now();
    }, true);
  }, pageSize);
  const page = await context.newPage();
  page.setDefaultTimeout(60_000);
  page.on("pageerror", (e) => errors.push(`uncaught: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(`console: ${m.text()}`);
  });
  let requests = 0;
  page.on("request", () => {
    requests += 1;
  });

  // Signed in through the form, as a person would be.
  await page.goto(`${base}/#/signin`);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password", { exact: true }).fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("navigation", { name: "Main" }).waitFor();

  const rows = page.locator("table.assets tbody tr");
  for (let i = 0; i < warmup + loads; i++) {
    await page.goto("about:blank");
    requests = 0;
    const t0 = performance.now();
    await page.goto(`${base}/#/spaces/${space}`, { waitUntil: "commit" });
    await rows.first().waitFor({ state: "visible" });
    const t1 = performance.now();
    const made = requests;
    const count = await rows.count();
    const more = page.getByRole("button", { name: "Show more" });
    await more.waitFor({ state: "visible" });
    const t2 = performance.now();
    await more.click();
    await rows.nth(pageSize).waitFor({ state: "visible" });
    const t3 = performance.now();
    const inPage = await page.evaluate(() => window.__bench);
    console.log(JSON.stringify({
      load: i - warmup + 1,
      warmup: i < warmup,
      first_row_ms: +(t1 - t0).toFixed(1),
      first_row_in_page_ms: inPage.firstRow === null ? null : +inPage.firstRow.toFixed(1),
      rows: count,
      more_ms: +(t3 - t2).toFixed(1),
      more_in_page_ms: inPage.more === null || inPage.click === null ? null : +(inPage.more - inPage.click).toFixed(1),
      rows_after_more: await rows.count(),
      requests: made,
    }));
  }
  await context.close();
} finally {
  await browser.close();
}
if (errors.length) {
  console.error(errors.join("\n"));
  process.exit(1);
}
