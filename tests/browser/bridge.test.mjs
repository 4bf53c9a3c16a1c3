// Drives Debian's Chromium (playwright-core, never a downloaded browser) against a running
// `certray run --headless`. tests/bridge_browser.rs sets everything up and runs this script;
// it can also be run by hand against any bridge with the same two tokens:
//
//   CERTRAY_BRIDGE_URL=http://127.0.0.1:21990 CERTRAY_PORTAL_URL=http://localhost:8123 \
//   CERTRAY_DENIED_URL=http://localhost:8126 CERTRAY_SCREENSHOT_DIR=/tmp/shots node bridge.test.mjs
//
// Environment:
//   CERTRAY_BRIDGE_URL      the bridge, http://127.0.0.1:PORT (required)
//   CERTRAY_PORTAL_URL      an origin in [bridge] allowed_origins AND page_pin_origins that
//                           serves portal.html (required)
//   CERTRAY_DENIED_URL      an origin NOT allowed that serves portal.html (required)
//   CERTRAY_SCREENSHOT_DIR  where check-zh.png, check-en.png, portal.png go (required)
//   CERTRAY_PIN             the user PIN of the tokens (default 123456)
//   CERTRAY_CHROMIUM        the browser (default /usr/bin/chromium, Debian's package)
//   CERTRAY_NO_PULL=1       skip the key removal (for a bridge nobody will pull a key from)
//   CERTRAY_TRACE=1         print a timestamp per scenario and screenshot on stderr
//
// Key removal: the script prints a line `PULL` on stdout and waits for the pages to hear
// `token-removed`; whoever runs it (the Rust test) removes the token that holds the
// 深圳未来测试有限公司 certificate when it reads that line.
//
// Output: one line per scenario, `ok NAME: …` or `FAIL NAME: …`, then `N passed, N failed`.
// Exit status 0 only when every scenario passed.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

const env = (name, fallback) => {
  const v = process.env[name] ?? fallback;
  if (v === undefined || v === "") {
    console.error(`FAIL setup: ${name} is not set`);
    process.exit(2);
  }
  return v;
};
const BRIDGE = env("CERTRAY_BRIDGE_URL").replace(/\/$/, "");
const PORTAL = env("CERTRAY_PORTAL_URL").replace(/\/$/, "");
const DENIED = env("CERTRAY_DENIED_URL").replace(/\/$/, "");
const SHOTS = env("CERTRAY_SCREENSHOT_DIR");
const PIN = env("CERTRAY_PIN", "123456");
const CHROMIUM = env("CERTRAY_CHROMIUM", "/usr/bin/chromium");
const PULL = process.env.CERTRAY_NO_PULL !== "1";

// The holders: the persons in the CNs of two staff certificates (the owner used to be subject
// O); their companies are the organisations.
const OWNER_RSA = "张三";
const OWNER_EC = "王五";
const ORG_RSA = "北京云杉测试科技有限公司";
const ORG_EC = "深圳未来测试有限公司";
const WAIT = 15_000;
const PULL_WAIT = 40_000;

// The flags that work on Debian 12 here (shared/docs/TEST-ENVIRONMENT.md, "Browser"): no
// background networking (the machine has no network and Chromium would keep trying).
const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

const results = [];
let skipped = 0;
const t0 = Date.now();
function report(name, ok, detail) {
  results.push(ok);
  const secs = ((Date.now() - t0) / 1000).toFixed(1);
  console.log(`${ok ? "ok" : "FAIL"} ${name}: ${detail} [${secs}s]`);
}

/** CERTRAY_TRACE=1: time every step on stderr. */
const TRACE = process.env.CERTRAY_TRACE === "1";
function trace(what) {
  if (TRACE) console.error(`  ${((Date.now() - t0) / 1000).toFixed(2)}s ${what}`);
}

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

/** Run a scenario; a failure is reported and the run goes on. Returns whether it passed. */
async function scenario(name, fn, skipReason) {
  if (skipReason) {
    skipped += 1;
    console.log(`skip ${name}: ${skipReason}`);
    return false;
  }
  trace(`${name} …`);
  try {
    const detail = await fn();
    report(name, true, detail || "passed");
    return true;
  } catch (e) {
    report(name, false, String(e && e.stack ? e.stack.split("\n").slice(0, 3).join(" | ") : e));
    return false;
  }
}

/** Track uncaught page errors (console errors from refused fetches are expected elsewhere). */
function watchErrors(page) {
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  return errors;
}

/** Pick the first <option> whose text contains `text`. */
async function selectByText(page, selector, text) {
  const value = await page.$eval(selector, (sel, text) => {
    const opt = [...sel.options].find((o) => o.textContent.includes(text));
    return opt ? opt.value : null;
  }, text);
  assert(value, `no option with "${text}" in ${selector}`);
  await page.selectOption(selector, value);
}

async function shot(page, name) {
  const file = path.join(SHOTS, name);
  await page.screenshot({ path: file, fullPage: true });
  trace(`saved ${file}`);
  return file;
}

fs.mkdirSync(SHOTS, { recursive: true });
const profile = fs.mkdtempSync(path.join(os.tmpdir(), "certray-chromium-"));
let context;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: FLAGS,
    viewport: { width: 1280, height: 900 },
    locale: "zh-CN",
    timezoneId: "Asia/Shanghai",
  });
} catch (e) {
  console.log(`FAIL launch: cannot start ${CHROMIUM} (apt-get install chromium): ${e.message}`);
  console.log("0 passed, 1 failed");
  process.exit(1);
}
context.setDefaultTimeout(WAIT);

// The check page's tab stays open for the whole run; the portal gets its own tab later. A tab
// in the background gets few animation frames (slow clicks and screenshots): bring the one
// in use to the front.
const check = context.pages()[0] || (await context.newPage());
const checkErrors = watchErrors(check);
// The check page is self-contained: every request it makes goes to the bridge itself.
const foreign = [];
check.on("request", (r) => {
  const url = r.url();
  if (!url.startsWith(`${BRIDGE}/`) && !url.startsWith("data:")) foreign.push(url);
});
let portal;
let portalErrors = [];

// ---- c. the check page, served by the bridge itself (same origin) -------------------------

await scenario("check-page-zh", async () => {
  await check.goto(`${BRIDGE}/`);
  await check.waitForSelector("body[data-loaded]");
  assert((await check.getAttribute("html", "lang")) === "zh-CN", "the page is not zh-CN by default");
  assert((await check.title()).includes("证书检测"), `title: ${await check.title()}`);
  const cards = check.locator("#certs article.cert");
  assert((await cards.count()) === 2, `${await cards.count()} certificate cards, 2 expected`);
  const owners = await check.locator("#certs .owner").allTextContents();
  assert(owners.includes(OWNER_RSA) && owners.includes(OWNER_EC), `owners: ${owners}`);
  const rsa = check.locator("#certs article.cert", { hasText: OWNER_RSA });
  assert((await rsa.getAttribute("data-status")) === "valid", "the RSA certificate is not valid");
  assert((await rsa.locator("[data-uscc-valid=true]").count()) === 1, "no ✓ for the USCC check digit");
  assert((await rsa.textContent()).includes("有效期"), "no 有效期 label");
  assert((await rsa.locator(".organization").textContent()) === ORG_RSA, "the RSA certificate's organisation");
  // The fixture CA is on no token here; ec-expiring is self-signed.
  assert((await rsa.locator(".issuer-check [data-issuer-status]").getAttribute("data-issuer-status")) === "issuer_not_found",
    "the RSA certificate's issuer check");
  assert((await rsa.textContent()).includes("无法验证颁发者"), "no 无法验证颁发者");
  const ec = check.locator("#certs article.cert", { hasText: OWNER_EC });
  assert((await ec.getAttribute("data-status")) === "expiring", "the EC certificate is not expiring");
  assert((await ec.locator(".organization").textContent()) === ORG_EC, "the EC certificate's organisation");
  assert((await ec.getAttribute("data-issuer-status")) === "verified", "the self-signed EC certificate verifies");
  const tokens = await check.locator("#tokens article.token h3").allTextContents();
  assert(tokens.length === 2, `tokens: ${tokens}`);
  assert((await check.locator("#tokens").textContent()).includes("介质类型"), "no 介质类型");
  await check.waitForSelector('#live[data-state="live"]');
  assert((await check.textContent("#live-text")) === "实时", "no 实时 indicator");

  // The sign demo: a wrong PIN shows the bridge's error (code, message, hint) …
  await selectByText(check, "#sign-cert", OWNER_RSA);
  await check.fill("#sign-pin", "000000");
  await check.click("#sign-btn");
  await check.waitForSelector('#sign-error[data-code="PIN_INCORRECT"]');
  const err = await check.textContent("#sign-error");
  assert(err.includes("PIN") && err.length > 20, `error box: ${err}`);
  // … the PIN flag change arrives as an event and shows on the key …
  const key = `#tokens article[data-token-id="${await rsa.getAttribute("data-token-id")}"]`;
  await check.waitForSelector('#event-log li[data-event="pin-state-changed"]');
  await check.waitForSelector(`${key} [data-flag="count_low"]`);
  // … and the right PIN signs (the page's own origin may send a PIN).
  await check.fill("#sign-pin", PIN);
  await check.click('#format-group label:has(input[value="cms"])');
  assert(await check.isChecked('input[name="format"][value="cms"]'), "cms not selected");
  await check.click("#sign-btn");
  await check.waitForSelector('#sign-outcome[data-ok="true"]');
  const sig = await check.inputValue("#sign-output");
  assert(/^[A-Za-z0-9+/]+=*$/.test(sig) && sig.length > 400, `signature: ${sig.slice(0, 40)}…`);
  await check.waitForSelector(`${key} [data-flag="ok"]`);
  assert(checkErrors.length === 0, `page errors: ${checkErrors}`);
  assert(foreign.length === 0, `the check page fetched other origins: ${foreign}`);
  await shot(check, "check-zh.png");
  return `2 keys, 2 cards (${owners.join(", ")}), PIN_INCORRECT shown, cms signature ${sig.length} chars`;
});

await scenario("check-page-en", async () => {
  await check.click("#lang-btn");
  await check.waitForFunction(() => document.documentElement.lang === "en");
  assert((await check.title()).startsWith("Certificate check"), `title: ${await check.title()}`);
  assert((await check.textContent("#h-certs")) === "Certificates", "headings not switched");
  assert((await check.textContent("#live-text")) === "Live", "live indicator not switched");
  // The choice is remembered.
  await check.reload();
  await check.waitForSelector("body[data-loaded]");
  await check.waitForSelector('#live[data-state="live"]');
  assert((await check.getAttribute("html", "lang")) === "en", "English not remembered after reload");
  const text = await check.textContent("#certs");
  assert(text.includes("Days left") && text.includes(OWNER_RSA), "English card labels missing");
  assert((await check.textContent("#lang-btn")) === "中文", "the switch does not offer 中文");
  // Without a PIN and without a dialog (headless), the bridge says so, in English.
  await selectByText(check, "#sign-cert", OWNER_RSA);
  await check.click("#sign-btn");
  await check.waitForSelector('#sign-error[data-code="PIN_REQUIRED"]');
  const msg = await check.textContent("#sign-error .msg");
  const hint = await check.textContent("#sign-error .hint");
  assert(/PIN/.test(msg) && !/[\u4e00-\u9fff]/.test(msg + hint) && hint.length > 10, `error: ${msg} / ${hint}`);
  await shot(check, "check-en.png");
  // Back to Chinese for the rest of the run.
  await check.click("#lang-btn");
  await check.waitForFunction(() => document.documentElement.lang === "zh-CN");
  return `switched, remembered across reload, PIN_REQUIRED shown in English ("${msg}"), switched back`;
});

// ---- a. a portal on a second, allowed origin -------------------------------------------

const portalUrl = `${PORTAL}/portal.html?bridge=${encodeURIComponent(BRIDGE)}`;
const portalOk = await scenario("portal-allowed-origin", async () => {
  portal = await context.newPage();
  portalErrors = watchErrors(portal);
  await portal.goto(portalUrl);
  await portal.waitForSelector('body[data-state="listed"]');
  assert((await portal.getAttribute("body", "data-certs")) === "2", "the portal does not list 2 certificates");
  assert((await portal.textContent("#certs")).includes(OWNER_RSA), "owner missing in the portal");
  await portal.waitForSelector('body[data-sse="open"]');
  await selectByText(portal, "#cert", OWNER_RSA);
  await portal.fill("#pin", PIN);
  await portal.click("#sign");
  await portal.waitForSelector('body[data-state="signed"], body[data-state="sign-failed"]');
  const failed = await portal.getAttribute("body", "data-sign-error");
  assert(!failed, `sign failed: ${failed}`);
  const sig = await portal.getAttribute("body", "data-signature");
  assert(sig && sig.length > 400, "no CMS signature");
  const proven = await portal.getAttribute("body", "data-auth-origin");
  assert(proven === new URL(PORTAL).origin, `authenticate proved ${proven}, not ${PORTAL}`);
  assert(portalErrors.length === 0, `page errors: ${portalErrors}`);
  await shot(portal, "portal.png");
  return `listed 2 over CORS from ${new URL(PORTAL).origin}, signed (cms, ${sig.length} chars), origin proof ${proven}`;
});

await scenario("portal-hears-key-removal", async () => {
  assert(portalOk, "the portal scenario failed before it");
  const before = Date.now();
  console.log("PULL");
  trace("asked for the key to be pulled");
  await portal.waitForSelector('#events li[data-event="token-removed"]', { timeout: PULL_WAIT });
  const ms = Date.now() - before;
  await portal.waitForSelector('body[data-certs="1"]');
  const left = await portal.textContent("#certs");
  assert(left.includes(OWNER_RSA) && !left.includes(OWNER_EC), `left after removal: ${left}`);
  await shot(portal, "portal.png");
  return `token-removed over cross-origin SSE ${ms} ms after PULL, list now 1 certificate`;
}, PULL ? null : "CERTRAY_NO_PULL=1");

await scenario("check-page-live-update", async () => {
  await check.bringToFront();
  await check.waitForSelector('#event-log li[data-event="token-removed"]', { timeout: PULL_WAIT });
  await check.waitForFunction(() => document.querySelectorAll("#certs article.cert").length === 1);
  assert((await check.locator("#tokens article.token").count()) === 1, "the pulled key is still shown");
  assert(checkErrors.length === 0, `page errors: ${checkErrors}`);
  await shot(check, "check-after-removal.png");
  return "the check page dropped the pulled key and its certificate by itself";
}, PULL ? null : "CERTRAY_NO_PULL=1");

// ---- b. a page on an origin that is not allowed ----------------------------------------

await scenario("refused-origin", async () => {
  const denied = await context.newPage();
  await denied.bringToFront();
  const consoleErrors = [];
  denied.on("console", (m) => m.type() === "error" && consoleErrors.push(m.text()));
  await denied.goto(`${DENIED}/portal.html?bridge=${encodeURIComponent(BRIDGE)}`);
  await denied.waitForSelector('body[data-state="refused"]');
  const error = await denied.getAttribute("body", "data-error");
  // The bridge answered 403 without a CORS grant: the page cannot even read the error.
  assert(error.startsWith("TypeError"), `the page saw ${error}, not a CORS failure`);
  await denied.waitForSelector('body[data-sse="error"]');
  // A direct POST (preflighted) fails the same way.
  const post = await denied.evaluate(async (bridge) => {
    try {
      await fetch(bridge + "/v1/sign", { method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" });
      return "answered";
    } catch (e) {
      return e.name;
    }
  }, BRIDGE);
  assert(post === "TypeError", `a POST from the refused origin was ${post}`);
  const cors = consoleErrors.some((m) => /CORS|Access-Control-Allow-Origin/.test(m));
  assert(cors, `no CORS error in the console: ${consoleErrors.join(" | ")}`);
  await denied.close();
  return `fetch and EventSource refused (${error}), preflighted POST refused, console: CORS`;
});

await context.close();
fs.rmSync(profile, { recursive: true, force: true });
const passed = results.filter(Boolean).length;
const failed = results.length - passed;
console.log(`${passed} passed, ${failed} failed` + (skipped ? `, ${skipped} skipped` : ""));
process.exit(failed === 0 ? 0 : 1);
