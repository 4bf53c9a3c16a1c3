// Drives Debian's Chromium (playwright-core, never a downloaded browser) through certray's
// own XTX test page (xtx-portal.html) against a running `certray run --headless` with
// `[xtx]` on. tests/xtx_browser.rs sets everything up, runs this script and checks what it
// prints with OpenSSL.
//
// Environment (all required unless a default is given):
//   CERTRAY_XTX_WS        ws://127.0.0.1:PORT/xtxapp/
//   CERTRAY_XTX_WSS       wss://127.0.0.1:PORT/xtxapp/
//   CERTRAY_XTX_HTTP      http://127.0.0.1:PORT (for POST /synctl)
//   CERTRAY_HTTP_PAGE     the test page on an http origin in [bridge] page_pin_origins
//   CERTRAY_HTTPS_PAGE    the test page on an https origin in page_pin_origins
//   CERTRAY_DENIED_PAGE   the test page on an origin nobody approved
//   CERTRAY_HOME          HOME for Chromium: its .pki/nssdb trusts certray's local CA
//   CERTRAY_PIN, CERTRAY_WRONG_PIN
//   CERTRAY_SIGN_TEXT     the text to sign
//   CERTRAY_FLOW          JSON {rsa:{cert,random,sig}, sm2:{…}}: portal server signatures
//   CERTRAY_PULLED_ID     the CertID on the key that is pulled and put back
//   CERTRAY_SCREENSHOT_DIR
//   CERTRAY_CHROMIUM      default /usr/bin/chromium
//
// Output: `RESULT NAME {json}` lines for the Rust side to check, `PULL` / `INSERT` when the
// key is to be pulled / put back, `ok NAME: …` / `FAIL NAME: …`, then `N passed, N failed`.

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
const WS = env("CERTRAY_XTX_WS");
const WSS = env("CERTRAY_XTX_WSS");
const HTTP = env("CERTRAY_XTX_HTTP");
const HTTP_PAGE = env("CERTRAY_HTTP_PAGE");
const HTTPS_PAGE = env("CERTRAY_HTTPS_PAGE");
const DENIED_PAGE = env("CERTRAY_DENIED_PAGE");
const HOME = env("CERTRAY_HOME");
const PIN = env("CERTRAY_PIN");
const WRONG_PIN = env("CERTRAY_WRONG_PIN");
const TEXT = env("CERTRAY_SIGN_TEXT");
const FLOW = JSON.parse(env("CERTRAY_FLOW"));
const PULLED_ID = env("CERTRAY_PULLED_ID");
const SHOTS = env("CERTRAY_SCREENSHOT_DIR");
const CHROMIUM = env("CERTRAY_CHROMIUM", "/usr/bin/chromium");

// The flags that work on Debian 12 here (shared/docs/TEST-ENVIRONMENT.md, "Browser"). No
// --ignore-certificate-errors: the TLS pages and wss must be trusted through HOME's NSS db.
const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--password-store=basic",
];

let passed = 0;
let failed = 0;
function report(name, ok, detail) {
  if (ok) passed++;
  else failed++;
  console.log(`${ok ? "ok" : "FAIL"} ${name}: ${detail}`);
}
function result(name, value) {
  console.log(`RESULT ${name} ${JSON.stringify(value)}`);
}

async function scenario(name, fn) {
  try {
    const detail = await fn();
    report(name, true, detail ?? "");
  } catch (e) {
    report(name, false, e && e.stack ? e.stack.split("\n").slice(0, 3).join(" | ") : String(e));
  }
}

function check(cond, what) {
  if (!cond) throw new Error(what);
}

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: FLAGS,
  env: { ...process.env, HOME },
  timeout: 60_000,
});
const context = await browser.newContext({ locale: "zh-CN" });

async function open(url) {
  const page = await context.newPage();
  page.on("console", (m) => console.error(`  [page ${new URL(url).origin}] ${m.text()}`));
  await page.goto(url, { waitUntil: "load", timeout: 30_000 });
  return page;
}

// 1. An http page over ws: every function the portals call.
await scenario("ws-http-page", async () => {
  const page = await open(HTTP_PAGE);
  const r = await page.evaluate(
    async ({ WS, PIN, WRONG_PIN, TEXT, FLOW }) => {
      const { XtxSocket, parseUsers, showUsers } = window.xtxTest;
      const s = await new XtxSocket(WS).open();
      const out = {};
      out.version = await s.call("SOF_GetVersion");
      out.list = await s.call("SOF_GetUserList");
      showUsers(out.list);
      const users = parseUsers(out.list).users;
      const rsa = users.find((u) => u.name === "张三");
      out.rsaId = rsa.id;
      out.deviceType = await s.call("GetDeviceInfo", rsa.id, 7);
      out.cert = await s.call("SOF_ExportUserCert", rsa.id);
      out.exchange = await s.call("SOF_ExportExChangeUserCert", rsa.id);
      out.info = {};
      for (const t of [2, 3, 11, 12, 17, 33, 35]) out.info[t] = await s.call("SOF_GetCertInfo", out.cert, t);
      out.oid = await s.call("SOF_GetCertInfoByOid", out.cert, "1.2.156.10260.4.1.4");
      out.entity = await s.call("SOF_GetCertEntity", out.cert);
      out.wrongLogin = await s.call("SOF_Login", rsa.id, WRONG_PIN);
      out.wrongLoginError = await s.call("SOF_GetLastError");
      out.retry = await s.call("SOF_GetPinRetryCount", rsa.id);
      out.login = await s.call("SOF_Login", rsa.id, PIN);
      out.token = s.token;
      out.signature = await s.call("SOF_SignData", rsa.id, TEXT);
      out.flow = {};
      for (const kind of ["rsa", "sm2"]) {
        const f = FLOW[kind];
        const verified = await s.call("SOF_VerifySignedData", f.cert, f.random, f.sig);
        const signature = verified === "true" ? await s.call("SOF_SignData", rsa.id, f.random) : "";
        out.flow[kind] = { verified, signature };
      }
      out.cmsAttached = await s.call("SOF_SignMessage", 0, rsa.id, TEXT);
      out.cmsDetached = await s.call("SOF_SignMessage", 1, rsa.id, TEXT);
      out.writeFile = await s.call("WriteFile", rsa.id.split("/")[1], "x", "y", true);
      out.writeFileError = await s.call("SOF_GetLastError");
      return out;
    },
    { WS, PIN, WRONG_PIN, TEXT, FLOW },
  );
  result("ws", r);
  await page.screenshot({ path: path.join(SHOTS, "xtx-portal.png"), fullPage: true });
  check(r.list.endsWith("&&&"), "list format");
  check(r.login === "true" && r.token, "login");
  await page.close();
  return `${r.list.split("&&&").length - 1} users, login ${r.login}`;
});

// 2. An https page over wss, trusted through HOME's NSS database.
await scenario("wss-https-page", async () => {
  const page = await open(HTTPS_PAGE);
  const r = await page.evaluate(
    async ({ WSS, PIN, TEXT }) => {
      const { XtxSocket, parseUsers } = window.xtxTest;
      const s = await new XtxSocket(WSS).open();
      const out = { origin: location.origin };
      out.list = await s.call("SOF_GetUserList");
      const rsa = parseUsers(out.list).users.find((u) => u.name === "张三");
      out.login = await s.call("SOF_Login", rsa.id, PIN);
      out.signature = await s.call("SOF_SignData", rsa.id, TEXT);
      return out;
    },
    { WSS, PIN, TEXT },
  );
  result("wss", r);
  check(r.origin.startsWith("https://"), "an https page");
  await page.close();
  return `${r.origin}: login ${r.login}`;
});

// 3. The synchronous client: a preflight, then POST /synctl.
await scenario("synctl", async () => {
  const page = await open(HTTP_PAGE);
  const r = await page.evaluate(
    ({ HTTP, PIN, TEXT }) => {
      const { syncCall, parseUsers } = window.xtxTest;
      const out = {};
      out.list = syncCall(HTTP, "SOF_GetUserList").retVal;
      const rsa = parseUsers(out.list).users.find((u) => u.name === "张三");
      const login = syncCall(HTTP, "SOF_Login", [rsa.id, PIN]);
      out.login = login.retVal;
      out.unsigned = syncCall(HTTP, "SOF_SignData", [rsa.id, TEXT]).retVal;
      out.signature = syncCall(HTTP, "SOF_SignData", [rsa.id, TEXT], login.token).retVal;
      return out;
    },
    { HTTP, PIN, TEXT },
  );
  result("synctl", r);
  await page.close();
  return `login ${r.login}`;
});

// 4. An origin nobody approved: no socket, no answer, no names.
await scenario("refused-origin", async () => {
  const page = await open(DENIED_PAGE);
  const r = await page.evaluate(
    async ({ WS, HTTP }) => {
      const { XtxSocket, syncCall } = window.xtxTest;
      const out = {};
      try {
        const s = await new XtxSocket(WS).open();
        out.list = await s.call("SOF_GetUserList");
      } catch (e) {
        out.socket = String(e.message);
      }
      try {
        out.syncList = syncCall(HTTP, "SOF_GetUserList").retVal;
      } catch (e) {
        out.sync = String(e.message);
      }
      return out;
    },
    { WS, HTTP },
  );
  result("refused", r);
  check(r.list === undefined && r.syncList === undefined, "the refused page got an answer");
  await page.close();
  return `socket: ${r.socket}; sync: ${r.sync}`;
});

// 5. Key events: onUsbkeyChange when the key goes out and when it comes back, with the
// same CertID.
await scenario("key-events", async () => {
  const page = await open(HTTP_PAGE);
  await page.evaluate(async (WS) => {
    window.sock = await new window.xtxTest.XtxSocket(WS).open();
    window.before = await window.sock.call("SOF_GetUserList");
  }, WS);
  const before = await page.evaluate(() => window.before);
  check(before.includes("||" + PULLED_ID + "&&&"), `the key to pull is listed: ${before}`);
  console.log("PULL");
  const gone = await page.evaluate(async () => {
    await window.sock.events_at_least(1, 60_000);
    // The list is read again after the event, as BJCA's client does.
    for (let i = 0; i < 100; i++) {
      const l = await window.sock.call("SOF_GetUserList");
      if (l !== window.before) return l;
      await new Promise((r) => setTimeout(r, 100));
    }
    return await window.sock.call("SOF_GetUserList");
  });
  check(!gone.includes(PULLED_ID), `gone after removal: ${gone}`);
  console.log("INSERT");
  const back = await page.evaluate(async (id) => {
    const seen = window.sock.events;
    await window.sock.events_at_least(seen + 1, 60_000);
    for (let i = 0; i < 100; i++) {
      const l = await window.sock.call("SOF_GetUserList");
      if (l.includes("||" + id + "&&&")) return l;
      await new Promise((r) => setTimeout(r, 100));
    }
    return await window.sock.call("SOF_GetUserList");
  }, PULLED_ID);
  const events = await page.evaluate(() => window.sock.events);
  result("events", { before, gone, back, events });
  check(back.includes("||" + PULLED_ID + "&&&"), `the same CertID after re-insertion: ${back}`);
  await page.close();
  return `${events} events`;
});

await browser.close();
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
