// Drives Debian's chromium (headless, through playwright-core) to a pew node's dashboard, as a
// phone would see it, and prints one JSON line: what the page shows (its decision text, reasons,
// warnings, cards), what its charts hold, the /status and /history answers the page drew them
// from, and every console error, failed request and request to another origin. Saves a
// full-page screenshot.
//
//   node tests/browser/dashboard.cjs URL SCREENSHOT.png
//
// PLAYWRIGHT_CORE: the playwright-core package folder; CHROMIUM: the browser (/usr/bin/chromium).
"use strict";
const { chromium } = require(process.env.PLAYWRIGHT_CORE || "playwright-core");

async function main() {
  const [url, screenshot] = process.argv.slice(2);
  if (!url || !screenshot) throw new Error("usage: dashboard.cjs URL SCREENSHOT.png");
  const origin = new URL(url).origin;
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    // The sandbox needs user namespaces that containers and CI runners often lack.
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"],
  });
  try {
    const page = await browser.newPage({
      viewport: { width: 412, height: 915 },
      deviceScaleFactor: 2,
      isMobile: true,
      hasTouch: true,
    });
    const consoleErrors = [];
    const failedRequests = [];
    const externalRequests = [];
    page.on("console", m => { if (m.type() === "error") consoleErrors.push(m.text()); });
    page.on("pageerror", e => consoleErrors.push(String(e)));
    page.on("requestfailed", r => failedRequests.push(r.url()));
    page.on("request", r => {
      const u = new URL(r.url());
      // data: URLs (the page's empty icon) are not requests to anyone.
      if (u.protocol !== "data:" && u.origin !== origin) externalRequests.push(r.url());
    });
    page.on("response", r => { if (r.status() >= 400) failedRequests.push(r.status() + " " + r.url()); });

    await page.goto(url, { waitUntil: "networkidle", timeout: 30000 });
    await page.waitForFunction(() => window.pewDashboard && window.pewDashboard.refreshes >= 1, null, { timeout: 30000 });
    // One refresh of our own, with the timer stopped, so what is read below is one moment.
    await page.evaluate(async () => { window.pewDashboard.pause(); await window.pewDashboard.refresh(); });
    const seen = await page.evaluate(() => {
      const d = window.pewDashboard;
      const data = id => (d.charts[id] ? d.charts[id].data : null);
      const text = sel => [...document.querySelectorAll(sel)].map(e => e.textContent);
      return {
        status: d.status,
        history: d.history,
        week: data("chart-week"),
        day: data("chart-day"),
        earnings: data("chart-earnings"),
        decision_text: document.getElementById("decision").textContent,
        reasons: text("#reasons li"),
        warnings: text("#warnings li"),
        cards: text("#cards .card"),
        task_rows: text("#tasks tbody tr"),
        canvases: document.querySelectorAll("canvas").length,
        page_errors: d.errors,
        scroll_width: document.documentElement.scrollWidth,
        viewport_width: window.innerWidth,
      };
    });
    await page.screenshot({ path: screenshot, fullPage: true });
    seen.console_errors = consoleErrors;
    seen.failed_requests = failedRequests;
    seen.external_requests = externalRequests;
    process.stdout.write(JSON.stringify(seen) + "\n");
  } finally {
    await browser.close();
  }
}

main().catch(error => {
  process.stderr.write("dashboard check failed: " + (error && error.stack || error) + "\n");
  process.exit(1);
});
