// Loads the bridge's check page (证书检测) in Debian's Chromium (playwright-core, never a
// downloaded browser), opens every certificate's 更多信息, takes a full-page screenshot and
// prints what each certificate card says as one JSON line, for tests/corpus_screens.rs:
//
//   [{"id": "c-…", "issuerStatus": "verified", "text": "…the card's visible text…"}, …]
//
// Environment:
//   CERTRAY_BRIDGE_URL   the bridge, http://127.0.0.1:PORT (required)
//   CERTRAY_SCREENSHOT   the PNG to write (required)
//   CERTRAY_CHROMIUM     the browser (default /usr/bin/chromium)

import { chromium } from "playwright-core";

const BRIDGE = process.env.CERTRAY_BRIDGE_URL;
const SHOT = process.env.CERTRAY_SCREENSHOT;
if (!BRIDGE || !SHOT) {
  console.error("CERTRAY_BRIDGE_URL and CERTRAY_SCREENSHOT must be set");
  process.exit(2);
}
// The flags of shared/docs/TEST-ENVIRONMENT.md ("Browser"), as bridge.test.mjs uses them.
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

const browser = await chromium.launch({
  executablePath: process.env.CERTRAY_CHROMIUM || "/usr/bin/chromium",
  args: FLAGS,
});
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: "zh-CN" });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(`${BRIDGE.replace(/\/$/, "")}/`);
  await page.waitForSelector("body[data-loaded]", { timeout: 15_000 });
  await page.waitForSelector("#certs article.cert", { timeout: 15_000 });
  // 更多信息 open (a click, as a person would), so the chain shows in the picture.
  for (const summary of await page.locator("#certs article.cert details > summary").all()) {
    await summary.click();
  }
  const cards = await page.$$eval("#certs article.cert", (articles) =>
    articles.map((a) => ({
      id: a.dataset.certId,
      issuerStatus: a.dataset.issuerStatus || null,
      text: a.innerText,
    })));
  await page.screenshot({ path: SHOT, fullPage: true });
  if (errors.length) {
    console.error(`page errors: ${errors.join(" | ")}`);
    process.exit(1);
  }
  console.log(JSON.stringify(cards));
} finally {
  await browser.close();
}
