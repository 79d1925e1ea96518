// Drives tolk's translation page in a real browser (Debian's Chromium through playwright-core):
// it loads, translates a text, links each translated sentence to its source, is usable with the
// keyboard and on a phone-sized screen, shows API errors as messages, translates a file picked in
// its Files section into a download and shows a refused file's reason; with --screenshot PATH it
// writes a PNG of the page after a translation.
//
//   npm install playwright-core          # in a scratch folder; the browser is Debian's chromium
//   tolk serve --model DIR --pair zh-en --port 5077 &
//   node tools/web/check.mjs http://127.0.0.1:5077/ "$(cat text.txt)" [--screenshot docs/web-ui.png]
//
// Prints one line per check and `N passed, M failed`; exits 1 if any failed.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";

const require = createRequire(process.cwd() + "/");
const { chromium } = require("playwright-core");

const [url, text, ...rest] = process.argv.slice(2);
const shot = rest[0] === "--screenshot" ? rest[1] : null;
let passed = 0;
let failed = 0;
function check(name, ok, detail) {
  if (ok) { passed++; console.log(`ok   ${name}`); }
  else { failed++; console.log(`FAIL ${name}${detail ? ": " + detail : ""}`); }
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 760 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  const outside = [];
  page.on("request", (r) => { if (!r.url().startsWith(new URL(url).origin)) outside.push(r.url()); });
  await page.goto(url);
  await page.waitForFunction(() => document.querySelectorAll("#target option").length > 0, null, { timeout: 20000 });
  check("languages are listed", await page.locator("#target option").count() > 0);
  await page.fill("#text", text);
  check("characters are counted", (await page.textContent("#count")).startsWith(String([...text].length)));
  await page.click("#go");
  await page.waitForSelector("#output .s", { timeout: 60000 });
  const sentences = await page.locator("#output .s").count();
  check("the translation comes back sentence by sentence", sentences > 1, `${sentences}`);
  check("the language was detected", /Detected/.test(await page.textContent("#detected")));
  check("the source is shown sentence by sentence", (await page.locator("#source-view .s").count()) === sentences);
  // Hover a translated sentence: its source sentence lights up.
  await page.hover("#output .s >> nth=1");
  const lit = await page.evaluate(() => [...document.querySelectorAll("#source-view .s.hl")].map((e) => e.dataset.i));
  const want = await page.getAttribute("#output .s >> nth=1", "data-i");
  check("hovering a sentence highlights its source", lit.length === 1 && lit[0] === want, JSON.stringify(lit));
  check("a summary is shown", !(await page.isHidden("#summary")));
  await page.uncheck("#show-summary");
  check("the summary can be hidden", await page.isHidden("#summary"));
  await page.check("#show-summary");
  // Keyboard: Tab reaches the language selects and the button, focus is visible.
  await page.focus("#source");
  await page.keyboard.press("Tab");
  const next = await page.evaluate(() => document.activeElement.id);
  check("Tab moves through the controls", ["swap", "target"].includes(next), next);
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  check("focus is visible", outline !== "none", outline);
  if (shot) {
    await page.mouse.move(5, 5);
    await page.hover("#output .s >> nth=1");
    await page.screenshot({ path: shot });
    console.log(`screenshot: ${shot}`);
  }
  check("no script errors", errors.length === 0, errors.join(" | "));
  // An error from the API is a readable message.
  await page.route("**/v1/translate", (route) => route.fulfill({
    status: 429, headers: { "Retry-After": "7", "Content-Type": "application/json" },
    body: JSON.stringify({ error: "Slowdown: 5 per 1 minute" }),
  }));
  await page.click("#edit");
  await page.fill("#text", text + " ");
  await page.click("#go");
  await page.waitForSelector("#status.error", { timeout: 10000 });
  check("a 429 is shown with its wait", /try again in 7 s/i.test(await page.textContent("#status")));
  await page.unroute("**/v1/translate");
  // Files: a subtitle file picked comes back as a download in its own format.
  check("the Files section is shown", !(await page.isHidden("#files")));
  const srt = "1\n00:00:01,000 --> 00:00:03,000\n" + text.split("\n\n")[1].split(". ")[0] + ".\n";
  await page.setInputFiles("#file", { name: "weer.srt", mimeType: "application/x-subrip", buffer: Buffer.from(srt) });
  await page.waitForSelector("#download:not([hidden])", { timeout: 60000 });
  check("a translated file is offered for download", /weer\.\w+\.srt/.test(await page.textContent("#download")), await page.textContent("#download"));
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#download")]);
  const got = readFileSync(await download.path(), "utf8");
  check("the download is the translated file, its timing kept", got.startsWith("1\n00:00:01,000 --> 00:00:03,000\n") && got.trim().split("\n").length >= 3, JSON.stringify(got));
  await page.setInputFiles("#file", { name: "kapot.docx", mimeType: "application/octet-stream", buffer: Buffer.from("geen zip") });
  await page.waitForFunction(() => /zip/.test(document.querySelector("#file-status").textContent), null, { timeout: 20000 });
  check("a refused file shows the server's reason", await page.isVisible("#file-status.error"));
  await page.setInputFiles("#file", { name: "prog.exe", mimeType: "application/octet-stream", buffer: Buffer.from("MZ") });
  check("a format the server does not take is refused before sending", /translates .*\.docx/.test(await page.textContent("#file-status")));
  // Phone-sized: no sideways scrolling, panes stacked.
  await page.setViewportSize({ width: 375, height: 740 });
  const wide = await page.evaluate(() => document.documentElement.scrollWidth);
  check("a phone-sized screen does not scroll sideways", wide <= 375, `${wide}`);
  check("nothing is loaded from another host", outside.length === 0, outside.join(" "));
} finally {
  await browser.close();
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
