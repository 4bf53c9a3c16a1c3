// Signs with an SM2 key through `/v1/sign` from a web page in Debian's Chromium
// (playwright-core, never a downloaded browser). tests/suite/skf_browser.rs sets up the
// bridge on a softskf key (the test-only stand-in for SKF USB keys) and checks the
// signatures this script prints with OpenSSL.
//
// Environment (all required but CERTRAY_CHROMIUM):
//   CERTRAY_BRIDGE_URL   the bridge, http://127.0.0.1:PORT
//   CERTRAY_PORTAL_URL   an origin in [bridge] allowed_origins and page_pin_origins
//   CERTRAY_CERT_SHA256  the SHA-256 of the SM2 certificate to sign with (hex, lowercase)
//   CERTRAY_DATA         the text to sign (signed as its UTF-8 bytes)
//   CERTRAY_PIN          the user PIN
//   CERTRAY_CHROMIUM     the browser (default /usr/bin/chromium)
//
// Output: `SIGNED FORMAT STATUS JSON` per format (raw, cms), then `done`; exit 0 when both
// requests were answered 200.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

const env = (name, fallback) => {
  const v = process.env[name] ?? fallback;
  if (v === undefined || v === "") {
    console.log(`FAIL setup: ${name} is not set`);
    process.exit(2);
  }
  return v;
};
const BRIDGE = env("CERTRAY_BRIDGE_URL").replace(/\/$/, "");
const PORTAL = env("CERTRAY_PORTAL_URL").replace(/\/$/, "");
const SHA256 = env("CERTRAY_CERT_SHA256");
const DATA = env("CERTRAY_DATA");
const PIN = env("CERTRAY_PIN");
const CHROMIUM = env("CERTRAY_CHROMIUM", "/usr/bin/chromium");

const profile = fs.mkdtempSync(path.join(os.tmpdir(), "certray-chromium-"));
let status = 0;
const context = await chromium.launchPersistentContext(profile, {
  executablePath: CHROMIUM,
  headless: true,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
  locale: "zh-CN",
});
try {
  context.setDefaultTimeout(30_000);
  const page = context.pages()[0] || (await context.newPage());
  await page.goto(`${PORTAL}/`);
  // The page's own script: list the certificates cross-origin, pick the SM2 one, sign the
  // UTF-8 bytes of DATA with SM3, raw and as CMS SignedData.
  const answers = await page.evaluate(
    async ({ bridge, sha256, data, pin }) => {
      const list = await (await fetch(`${bridge}/v1/certificates`)).json();
      const cert = list.certificates.find((c) => c.sha256 === sha256);
      if (!cert) return { error: `no certificate ${sha256} in ${JSON.stringify(list)}` };
      const bytes = new TextEncoder().encode(data);
      const b64 = btoa(String.fromCharCode(...bytes));
      const out = {};
      for (const format of ["raw", "cms"]) {
        const r = await fetch(`${bridge}/v1/sign`, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ certificate_id: cert.id, data: b64, pin, hash: "sm3", format }),
        });
        out[format] = { status: r.status, body: await r.json() };
      }
      return out;
    },
    { bridge: BRIDGE, sha256: SHA256, data: DATA, pin: PIN },
  );
  if (answers.error) {
    console.log(`FAIL list: ${answers.error}`);
    status = 1;
  } else {
    for (const format of ["raw", "cms"]) {
      const a = answers[format];
      console.log(`SIGNED ${format} ${a.status} ${JSON.stringify(a.body)}`);
      if (a.status !== 200) status = 1;
    }
  }
} catch (e) {
  console.log(`FAIL browser: ${e && e.stack ? e.stack.split("\n").slice(0, 3).join(" | ") : e}`);
  status = 1;
} finally {
  await context.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
console.log("done");
process.exit(status);
