// Browser tests of the playground: Debian's Chromium driven by playwright-core against the
// Worker under `wrangler dev` (fresh local state, offline stand-in model). Run: npm run test:e2e
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import http from "node:http";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { chromium } from "playwright-core";
import { startMcpDemo } from "../scripts/mcp-demo.mjs";

const ROOT = path.resolve(import.meta.dirname, "..");
const WRANGLER = path.join(ROOT, "node_modules", ".bin", "wrangler");
const PORT = 8790;
const BASE = `http://127.0.0.1:${PORT}`;
// Poll on a timer: requestAnimationFrame-based polling stalls in background headless pages.
const POLL = { polling: 50 };
const words = (n) => Array.from({ length: n }, (_, i) => `w${i + 1}`).join(" ");

let server;
let mcp;
let browser;
let state;
const account = { email: `e2e-${Date.now()}@example.com`, password: "a good password" };

before(async () => {
  state = mkdtempSync(path.join(tmpdir(), "genai-edge-e2e-"));
  const envFile = path.join(state, "e2e.env");
  mcp = await startMcpDemo(0);
  const mcpServers = JSON.stringify([{ name: "demo", url: `http://127.0.0.1:${mcp.address().port}/mcp`, require_approval: ["send_email"] }]);
  writeFileSync(envFile, `JWT_SECRET=e2e-secret-e2e-secret-e2e-secret\nOPENAI_API_KEY=\nOFFLINE_MODEL_TOKEN_DELAY_MS=25\nLOG_LEVEL=warn\nMCP_SERVERS=${mcpServers}\n`);
  const env = { ...process.env, WRANGLER_SEND_METRICS: "false" };
  execFileSync(process.execPath, ["scripts/apply-migrations.mjs", "--local", "--persist-to", state], { cwd: ROOT, env, stdio: "ignore" });
  server = spawn(
    WRANGLER,
    ["dev", "--ip", "127.0.0.1", "--port", String(PORT), "--persist-to", state, "--env-file", envFile, "--show-interactive-dev-session=false"],
    { cwd: ROOT, env, detached: true, stdio: ["ignore", "pipe", "pipe"] },
  );
  await new Promise((resolve, reject) => {
    let output = "";
    const timer = setTimeout(() => reject(new Error(`wrangler dev did not start:\n${output}`)), 60_000);
    const onData = (data) => {
      output += data;
      if (output.includes("Ready on")) {
        clearTimeout(timer);
        resolve();
      }
    };
    server.stdout.on("data", onData);
    server.stderr.on("data", onData);
    server.on("exit", (code) => reject(new Error(`wrangler dev exited with ${code}:\n${output}`)));
  });
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-sync"],
  });
});

after(async () => {
  await browser?.close();
  mcp?.closeAllConnections();
  mcp?.close();
  if (server) {
    try {
      process.kill(-server.pid, "SIGTERM");
    } catch {}
  }
  rmSync(state, { recursive: true, force: true });
});

/** A fresh page in a context of its own (with `permissions`, e.g. the clipboard), logged in as the test account (signed up by the first test). */
async function loggedInPage(viewport = { width: 1200, height: 800 }, permissions = []) {
  const context = await browser.newContext({ viewport, permissions });
  const page = await context.newPage();
  page.on("close", () => void context.close());
  page.setDefaultTimeout(15_000);
  page.on("pageerror", (error) => assert.fail(`page error: ${error.message}`));
  await page.goto(BASE);
  await page.getByLabel("Email").fill(account.email);
  await page.getByLabel("Password").fill(account.password);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.locator("#app:not([hidden])").waitFor();
  return page;
}

async function sendMessage(page, text) {
  await page.getByLabel("Message", { exact: true }).fill(text);
  await page.keyboard.press("Enter");
}

const lastAiMessage = (page) => page.locator(".message.ai").last();

test("sign up, start a conversation, and watch the reply stream in more than one step", async () => {
  const page = await browser.newPage();
  page.setDefaultTimeout(15_000);
  await page.goto(BASE);
  await page.getByLabel("Email").fill(account.email);
  await page.getByLabel("Password").fill(account.password);
  await page.getByRole("button", { name: "Sign up" }).click();
  await page.locator("#user-email", { hasText: account.email }).waitFor();

  await sendMessage(page, "Plan a weekend in Porto");
  await page.locator(".message.ai.generating").waitFor();
  const seen = new Set();
  while (await page.locator(".message.ai.generating").count()) {
    seen.add(await lastAiMessage(page).locator(".content").textContent());
    await page.waitForTimeout(40);
  }
  const final = await lastAiMessage(page).locator(".content").textContent();
  assert.ok(seen.size >= 3, `the reply appeared in ${seen.size} steps`);
  assert.match(final, /offline stand-in model/);
  assert.equal(await page.locator("#chat-title").textContent(), "Plan a weekend in Porto");
  assert.equal(await page.locator("#conversation-list button").first().textContent(), "Plan a weekend in Porto");
  await page.close();
});

test("a reload mid-reply reattaches with Last-Event-ID and shows the rest once", async () => {
  const page = await loggedInPage();
  await sendMessage(page, "[stub: tokens=80 delay=40] tell me a long story");
  await page.waitForFunction(() => (document.querySelector(".message.ai.generating .content")?.textContent ?? "").split(" ").length >= 10, null, POLL);
  await page.reload();
  await page.locator("#app:not([hidden])").waitFor();
  const afterReload = await lastAiMessage(page).locator(".content").textContent();
  assert.ok(afterReload.startsWith("w1 w2 w3"), `text kept across the reload: ${afterReload}`);
  await page.locator(".message.ai.generating").waitFor({ state: "detached", timeout: 15_000 });
  assert.equal(await lastAiMessage(page).locator(".content").textContent(), words(80));
  assert.equal(await page.locator(".message.user").count(), 1);
  assert.equal(await page.locator(".message.ai").count(), 1);
  await page.close();
});

test("Stop cancels the reply in flight and shows it as failed with the partial text", async () => {
  const page = await loggedInPage();
  await sendMessage(page, "[stub: tokens=400 delay=25] never ending");
  await page.waitForFunction(() => (document.querySelector(".message.ai.generating .content")?.textContent ?? "").length > 20, null, POLL);
  await page.getByRole("button", { name: "Stop" }).click();
  const failed = page.locator(".message.ai.failed");
  await failed.waitFor();
  assert.match(await failed.locator(".failure").textContent(), /cancelled/);
  const partial = await failed.locator(".content").textContent();
  assert.ok(partial.length > 0 && partial.length < words(400).length && words(400).startsWith(partial));
  assert.ok(await page.getByRole("button", { name: "Send" }).isVisible());
  await page.close();
});

test("edits a message, and Shift+Enter makes a new line instead of sending", async () => {
  const page = await loggedInPage();
  await page.locator("#conversation-list button", { hasText: "Plan a weekend in Porto" }).click();
  await page.locator(".message.user").first().waitFor();
  await page.getByRole("button", { name: "Edit message" }).first().click();
  await page.getByLabel("Edit message text").fill("Plan a weekend in Lisbon");
  await page.getByRole("button", { name: "Save", exact: true }).click();
  await page.locator(".message.user .edited").first().waitFor();
  assert.equal(await page.locator(".message.user .content").first().textContent(), "Plan a weekend in Lisbon");

  await page.reload();
  await page.locator("#conversation-list button", { hasText: "Plan a weekend in Porto" }).click();
  await page.locator(".message.user .edited").first().waitFor();
  assert.equal(await page.locator(".message.user .content").first().textContent(), "Plan a weekend in Lisbon");

  const prompt = page.getByLabel("Message", { exact: true });
  await prompt.fill("first line");
  await page.keyboard.press("Shift+Enter");
  await page.keyboard.type("second line");
  assert.equal(await prompt.inputValue(), "first line\nsecond line");
  assert.equal(await page.locator(".message.user").count(), 1);
  await page.close();
});

test("searches the sidebar, on a phone-width screen too", async () => {
  const page = await loggedInPage({ width: 390, height: 844 });
  for (const text of ["[stub: tokens=2] Banana bread recipe", "[stub: tokens=2] Tax questions"]) {
    await page.getByRole("button", { name: "New chat" }).click();
    await sendMessage(page, text);
    await page.locator(".message.ai:not(.generating)").waitFor();
  }
  await page.getByLabel("Search conversations").fill("banana");
  await page.waitForFunction(() => document.querySelectorAll("#conversation-list button").length === 1, null, POLL);
  assert.match(await page.locator("#conversation-list button").textContent(), /Banana bread/);
  await page.getByLabel("Search conversations").fill("");
  await page.waitForFunction(() => document.querySelectorAll("#conversation-list button").length === 5, null, POLL);
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 390, `no horizontal scrolling at phone width (${width}px)`);
  await page.close();
});

test("an expired access token is refreshed without sending the user back to the login form", async () => {
  const page = await loggedInPage();
  const before = await page.evaluate(() => {
    const tokens = JSON.parse(sessionStorage.getItem("genai-edge.tokens"));
    tokens.access = "an.expired.token";
    sessionStorage.setItem("genai-edge.tokens", JSON.stringify(tokens));
    return tokens;
  });
  await page.reload();
  await page.locator("#user-email", { hasText: account.email }).waitFor();
  const after = await page.evaluate(() => JSON.parse(sessionStorage.getItem("genai-edge.tokens")));
  assert.notEqual(after.access, before.access);
  assert.notEqual(after.refresh, before.refresh);
  assert.ok(await page.locator("#auth").isHidden());
  await page.close();
});

/** Starts a new chat with `text` and waits for its reply to finish. */
async function newChatWithReply(page, text) {
  await page.getByRole("button", { name: "New chat" }).click();
  await sendMessage(page, text);
  await page.locator(".message.ai:not(.generating)").waitFor();
}

const branchTexts = (page) => page.locator(".message .content").allTextContents();

test("Regenerate adds a new version of a reply, and the ‹ › arrows switch between versions", async () => {
  const page = await loggedInPage();
  await newChatWithReply(page, "[stub: tokens=3] Name a colour");
  const first = await lastAiMessage(page).locator(".content").textContent();
  await page.getByRole("button", { name: "Regenerate reply" }).click();
  await page.locator(".sibling-position", { hasText: "2 / 2" }).waitFor();
  assert.equal(await page.locator(".message.ai").count(), 1);
  assert.equal(await lastAiMessage(page).locator(".content").textContent(), first);

  await page.getByRole("button", { name: "Previous version" }).click();
  await page.locator(".sibling-position", { hasText: "1 / 2" }).waitFor();
  assert.ok(await page.getByRole("button", { name: "Previous version" }).isDisabled());
  await page.getByRole("button", { name: "Next version" }).click();
  await page.locator(".sibling-position", { hasText: "2 / 2" }).waitFor();
  await page.close();
});

test("Save & send resends an edited message as a new branch; plain Save edits in place", async () => {
  const page = await loggedInPage();
  await newChatWithReply(page, "[stub: tokens=2] Plan a trip to Rome");
  await sendMessage(page, "[stub: tokens=2] With kids");
  await page.locator(".message.ai:not(.generating)").nth(1).waitFor();
  assert.equal(await page.locator(".message.user").count(), 2);

  await page.getByRole("button", { name: "Edit message" }).first().click();
  await page.getByLabel("Edit message text").fill("[stub: tokens=2] Plan a trip to Paris");
  await page.getByRole("button", { name: "Save & send" }).click();
  await page.locator(".message.user .sibling-position", { hasText: "2 / 2" }).waitFor();
  // The new branch holds the resent message and its reply; the follow-up belongs to the old one.
  assert.deepEqual(await branchTexts(page), ["[stub: tokens=2] Plan a trip to Paris", "w1 w2"]);

  await page.getByRole("button", { name: "Previous version" }).click();
  await page.locator(".message.user .sibling-position", { hasText: "1 / 2" }).waitFor();
  assert.deepEqual(await branchTexts(page), ["[stub: tokens=2] Plan a trip to Rome", "w1 w2", "[stub: tokens=2] With kids", "w1 w2"]);
  await page.close();
});

test("Fork copies the branch shown into a new conversation that continues on its own", async () => {
  const page = await loggedInPage();
  await newChatWithReply(page, "[stub: tokens=2] Fork me");
  const source = await page.locator("#conversation-list button[aria-current]").getAttribute("data-id");
  await page.getByRole("button", { name: "Fork conversation" }).click();
  await page.waitForFunction((id) => document.querySelector("#conversation-list button[aria-current]")?.getAttribute("data-id") !== id, source, POLL);
  assert.deepEqual(await branchTexts(page), ["[stub: tokens=2] Fork me", "w1 w2"]);
  await sendMessage(page, "[stub: tokens=1] only in the fork");
  await page.locator(".message.ai:not(.generating)").nth(1).waitFor();
  assert.equal(await page.locator(".message.user").count(), 2);

  await page.locator(`#conversation-list button[data-id="${source}"]`).click();
  await page.waitForFunction(() => document.querySelectorAll(".message.user").length === 1, null, POLL);
  assert.deepEqual(await branchTexts(page), ["[stub: tokens=2] Fork me", "w1 w2"]);
  await page.close();
});

test("message search shows highlighted snippets and opens the conversation at the hit", async () => {
  const page = await loggedInPage();
  await newChatWithReply(page, "[stub: tokens=2] Where do flamingos sleep?");
  await newChatWithReply(page, "[stub: tokens=2] Something unrelated");
  await page.getByLabel("Search messages").fill("flamingo");
  await page.keyboard.press("Enter");
  const hit = page.locator(".search-hit").first();
  await hit.waitFor();
  // The word the query begins is found and highlighted whole.
  assert.equal(await hit.locator("mark").first().textContent(), "flamingos");
  await hit.click();
  await page.locator(".message.found", { hasText: "Where do flamingos sleep?" }).waitFor();
  assert.equal(await page.locator("#chat-title").textContent(), "[stub: tokens=2] Where do flamingos sleep?");
  await page.close();
});

test("thumbs rate a reply and stay rated after a reload; Share gives a link that opens without logging in; Export downloads JSON", async () => {
  const page = await loggedInPage();
  await newChatWithReply(page, "[stub: tokens=3] Rate and share me");
  await page.getByRole("button", { name: "Good reply" }).click();
  await page.locator('.thumb[aria-label="Good reply"][aria-pressed="true"]').waitFor();
  await page.reload();
  await page.locator("#conversation-list button", { hasText: "Rate and share me" }).click();
  await page.locator('.thumb[aria-label="Good reply"][aria-pressed="true"]').waitFor();

  await page.getByRole("button", { name: "Share conversation" }).click();
  await page.waitForFunction(() => document.getElementById("share-url").value !== "", null, POLL);
  const url = await page.getByLabel("Share link").inputValue();
  assert.match(url, /\/shared\/#[A-Za-z0-9_-]{22}$/);
  const visitor = await browser.newPage();
  await visitor.goto(url);
  await visitor.locator(".message.ai", { hasText: "w1 w2 w3" }).waitFor();
  assert.equal(await visitor.locator("#chat-title").textContent(), "[stub: tokens=3] Rate and share me");
  await visitor.close();

  const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Export conversation" }).click()]);
  assert.match(download.suggestedFilename(), /^conversation-.+\.json$/);
  const exported = JSON.parse(readFileSync(await download.path(), "utf8"));
  assert.deepEqual(exported.messages.map((m) => m.content), ["[stub: tokens=3] Rate and share me", "w1 w2 w3"]);
  await page.close();
});

const MARKDOWN_REPLY = [
  "[stub: echo=history delay=0]",
  "# Trip plan",
  "- Porto",
  "- Lisbon",
  "",
  "| city | days |",
  "|---|---|",
  "| Porto | 2 |",
  "",
  "See [the guide](https://example.com/guide).",
  "",
  "```js",
  "const answer = 42;",
  "```",
].join("\n");

// Raw HTML, script URLs and event handlers: none may run or reach the DOM as markup.
const HOSTILE_REPLY = [
  "[stub: echo=history delay=0]",
  '<img src=x onerror="window.__pwned = 1">',
  "<script>window.__pwned = 2</script>",
  "[click me](javascript:window.__pwned=3)",
  "![pic](javascript:window.__pwned=4)",
  '<a href="javascript:window.__pwned=5">html link</a>',
  '<svg onload="window.__pwned = 6"></svg>',
  '<iframe src="javascript:window.__pwned=7"></iframe>',
  "[data](data:text/html;base64,PHNjcmlwdD53aW5kb3cuX19wd25lZD04PC9zY3JpcHQ+)",
].join("\n");

/** Nothing executable in a reply's text: no script-capable elements (but our icons), handlers or script URLs, and no payload ran. */
async function assertInert(page, reply) {
  await page.waitForTimeout(200);
  assert.equal(await page.evaluate(() => window.__pwned), undefined);
  const content = reply.locator(".content");
  assert.equal(await content.locator("script, iframe, svg:not(.icon), object, embed, style, form").count(), 0);
  const unsafe = await content.evaluate((root) =>
    [...root.querySelectorAll("*")].flatMap((el) =>
      [...el.attributes].filter((a) => /^on/i.test(a.name) || /^\s*(javascript|data):/i.test(a.value)).map((a) => `${el.tagName} ${a.name}=${a.value}`),
    ),
  );
  assert.deepEqual(unsafe, []);
}

test("replies render as Markdown with a copy button on code, hostile Markdown stays inert here and on the share page, and icons need no emoji font", async () => {
  const page = await loggedInPage(undefined, ["clipboard-read", "clipboard-write"]);
  assert.match(await page.locator("#model option").first().textContent(), /^gpt-4 · 8k · images, tools$/);

  await newChatWithReply(page, MARKDOWN_REPLY);
  const reply = lastAiMessage(page);
  assert.equal(await reply.locator("h1").textContent(), "Trip plan");
  assert.deepEqual(await reply.locator("ul li").allTextContents(), ["Porto", "Lisbon"]);
  assert.deepEqual(await reply.locator("table td").allTextContents(), ["Porto", "2"]);
  const link = reply.getByRole("link", { name: "the guide" });
  assert.equal(await link.getAttribute("href"), "https://example.com/guide");
  assert.equal(await link.getAttribute("target"), "_blank");
  assert.match(await link.getAttribute("rel"), /noopener/);
  assert.equal((await reply.locator("pre code").textContent()).trim(), "const answer = 42;");
  await reply.getByRole("button", { name: "Copy code" }).click();
  await reply.getByRole("button", { name: "Copied" }).waitFor();
  assert.equal((await page.evaluate(() => navigator.clipboard.readText())).trim(), "const answer = 42;");
  // The thumbs are SVG icons with labels, not emoji characters.
  for (const name of ["Good reply", "Bad reply"]) {
    const thumb = reply.getByRole("button", { name });
    assert.equal(await thumb.locator("svg").count(), 1);
    assert.equal((await thumb.textContent()).trim(), "");
  }

  await sendMessage(page, HOSTILE_REPLY);
  await page.locator(".message.ai:not(.generating)").nth(1).waitFor();
  const hostile = lastAiMessage(page);
  await assertInert(page, hostile);
  // Raw HTML is shown as the text it is, and a script link is no link.
  assert.match(await hostile.textContent(), /<img src=x onerror="window.__pwned = 1">/);
  assert.equal(await hostile.getByRole("link", { name: "click me" }).count(), 0);
  assert.equal(await hostile.locator("a", { hasText: "click me" }).getAttribute("href"), null);
  await hostile.getByText("click me").click();
  await assertInert(page, hostile);

  await page.getByRole("button", { name: "Share conversation" }).click();
  await page.waitForFunction(() => document.getElementById("share-url").value !== "", null, POLL);
  const visitor = await browser.newPage();
  visitor.on("pageerror", (error) => assert.fail(`share page error: ${error.message}`));
  await visitor.goto(await page.getByLabel("Share link").inputValue());
  await visitor.locator(".message.ai h1", { hasText: "Trip plan" }).first().waitFor();
  await assertInert(visitor, visitor.locator(".message.ai").last());
  await visitor.close();
  await page.close();
});

const PNG_3x2 = Buffer.from("iVBORw0KGgoAAAANSUhEUgAAAAMAAAACCAIAAAASFvFNAAAAE0lEQVR4nGP4z8DAwMDAxMDAAAAbJgIEVxYpMQAAAABJRU5ErkJggg==", "base64");

test("attaches files with the button and by pasting, shows thumbnails and chips, sends them, and shows a refused file plainly", async () => {
  const page = await loggedInPage();
  await page.getByRole("button", { name: "New chat" }).click();
  await page.locator("#file-picker").setInputFiles([
    { name: "dot.png", mimeType: "image/png", buffer: PNG_3x2 },
    { name: "notes.md", mimeType: "text/markdown", buffer: Buffer.from("# Shopping\n- milk\n") },
  ]);
  await page.locator('.pending-file[data-filename="dot.png"] img.thumbnail').waitFor();
  await page.locator(".pending-file .file-chip", { hasText: "notes.md" }).waitFor();
  assert.ok(await page.locator("img.thumbnail").evaluate((img) => img.complete && img.naturalWidth === 3));

  // A pasted image joins them.
  await page.getByLabel("Message", { exact: true }).focus();
  await page.evaluate(async (bytes) => {
    const data = new DataTransfer();
    data.items.add(new File([new Uint8Array(bytes)], "pasted.png", { type: "image/png" }));
    document.getElementById("prompt").dispatchEvent(new ClipboardEvent("paste", { clipboardData: data, bubbles: true, cancelable: true }));
  }, [...PNG_3x2]);
  await page.locator('.pending-file[data-filename="pasted.png"]').waitFor();
  await page.getByRole("button", { name: "Remove pasted.png" }).click();
  assert.equal(await page.locator(".pending-file").count(), 2);

  // Bytes of no accepted kind: refused, and said so.
  await page.locator("#file-picker").setInputFiles([{ name: "tool.exe", mimeType: "application/octet-stream", buffer: Buffer.from([0x4d, 0x5a, 0x90, 0x00, 0x03, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0xff, 0xff, 0x00, 0x00]) }]);
  await page.locator("#attach-error:not([hidden])", { hasText: "Could not attach tool.exe" }).waitFor();

  await sendMessage(page, "What are these?");
  await page.locator(".message.ai:not(.generating)").waitFor();
  assert.match(await lastAiMessage(page).textContent(), /an image, 3×2 PNG, named dot\.png; a text file, notes\.md/);
  const sent = page.locator(".message.user").last();
  await page.waitForFunction(() => document.querySelector(".message.user img.attached-image")?.naturalWidth === 3, null, POLL);
  await sent.locator(".file-chip", { hasText: "notes.md" }).waitFor();
  assert.equal(await page.locator(".pending-file").count(), 0);

  // The share page shows the image through the link's token.
  await page.getByRole("button", { name: "Share conversation" }).click();
  await page.waitForFunction(() => document.getElementById("share-url").value !== "", null, POLL);
  const visitor = await browser.newPage();
  await visitor.goto(await page.getByLabel("Share link").inputValue());
  await visitor.waitForFunction(() => document.querySelector(".message.user img.attached-image")?.naturalWidth === 3, null, POLL);
  await visitor.close();
  await page.close();
});

test("tool calls show as cards: the browser's own tool answers by itself, a call needing approval waits for Approve, reasoning stays collapsed, and hostile tool output is text on the share page", async () => {
  const page = await loggedInPage();
  await page.getByRole("button", { name: "New chat" }).click();
  // The playground declares browser_local_time with every send and answers it itself.
  await sendMessage(page, "[stub: call=browser_local_time reasoning=3] what time is it here?");
  const clock = page.locator(".message.ai .tool-card", { hasText: "browser_local_time" });
  await clock.locator(".tool-status", { hasText: "done" }).waitFor();
  await page.locator(".message.ai:not(.generating) .part-text", { hasText: "Tool results: browser_local_time said" }).waitFor();
  await clock.locator("summary").click();
  assert.match(await clock.locator(".tool-output").textContent(), /"time_zone"/);
  const reasoning = page.locator(".message.ai details.reasoning").first();
  assert.equal(await reasoning.evaluate((details) => details.open), false);
  assert.match(await reasoning.textContent(), /r1 r2 r3/);

  // A server tool that needs approval: nothing runs until Approve.
  await sendMessage(page, '[stub: call=demo__send_email args={"to":"ann@example.com","subject":"Lunch"}] email Ann');
  const mail = page.locator(".message.ai .tool-card", { hasText: "demo__send_email" });
  await mail.locator(".tool-status", { hasText: "waiting for your approval" }).waitFor();
  await mail.getByRole("button", { name: "Approve" }).click();
  await mail.locator(".tool-status", { hasText: "done" }).waitFor();
  assert.match(await mail.locator(".tool-output").textContent(), /an email "Lunch" to ann@example.com would have been sent/);
  await page.locator(".message.ai:not(.generating) .part-text", { hasText: "demo__send_email said demo" }).waitFor();

  // A tool whose output is hostile HTML: shown as text here and on the share page.
  await sendMessage(page, "[stub: call=demo__html] show it");
  const hostile = page.locator(".message.ai .tool-card", { hasText: "demo__html" }).last();
  await hostile.locator(".tool-status", { hasText: "done" }).waitFor();
  assert.equal(await page.locator(".tool-card img, .tool-card script").count(), 0);
  await page.getByRole("button", { name: "Share conversation" }).click();
  await page.waitForFunction(() => document.getElementById("share-url").value !== "", null, POLL);
  const visitor = await browser.newPage();
  visitor.on("pageerror", (error) => assert.fail(`share page error: ${error.message}`));
  visitor.on("dialog", (dialog) => assert.fail(`a tool's output ran: ${dialog.message()}`));
  await visitor.goto(await page.getByLabel("Share link").inputValue());
  const shared = visitor.locator(".tool-card", { hasText: "demo__html" });
  await shared.waitFor();
  await shared.locator("summary").click();
  assert.match(await shared.locator(".tool-output").textContent(), /<script>alert\('tool'\)<\/script>/);
  assert.equal(await visitor.locator(".tool-card img, .tool-card script, img[src='x']").count(), 0);
  await visitor.close();
  await page.close();
});

test("/docs shows the API reference with every non-local request blocked", async () => {
  const page = await browser.newPage();
  page.setDefaultTimeout(20_000);
  const blocked = [];
  await page.route("**/*", (route) => {
    if (new URL(route.request().url()).hostname === "127.0.0.1") return route.continue();
    blocked.push(route.request().url());
    return route.abort();
  });
  await page.goto(`${BASE}/docs`);
  await page.getByText("Log in: exchange email and password for tokens").first().waitFor();
  for (const group of ["conversations", "messages", "turns", "chat"]) assert.ok(await page.getByText(group, { exact: true }).first().isVisible());
  assert.deepEqual(blocked, []);
  await page.close();
});

/**
 * A proxy in front of wrangler dev that cuts the first stream response it relays once it has
 * passed on `cutAfterDeltas` delta frames, the way a flaky network would; everything else passes through.
 */
async function cuttingProxy(cutAfterDeltas) {
  let cut = false;
  const proxy = http.createServer((req, res) => {
    const upstream = http.request({ host: "127.0.0.1", port: PORT, path: req.url, method: req.method, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode, answer.headers);
      const cutThis = !cut && req.url.includes("/stream/");
      if (cutThis) cut = true;
      let deltas = 0;
      answer.on("data", (chunk) => {
        res.write(chunk);
        deltas += chunk.toString().split("event: delta").length - 1;
        if (cutThis && deltas >= cutAfterDeltas) {
          answer.destroy();
          res.socket.destroy();
        }
      });
      answer.on("end", () => res.end());
    });
    req.pipe(upstream);
  });
  await new Promise((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${proxy.address().port}`, close: () => proxy.close() };
}

test("a browser EventSource follows a reply with a stream ticket and resumes after a dropped connection without repeating text", async () => {
  const proxy = await cuttingProxy(5);
  const page = await browser.newPage();
  page.setDefaultTimeout(20_000);
  await page.goto(`${proxy.url}/health`);
  await page.evaluate(async ({ email, password }) => {
    const credentials = { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ email, password }) };
    await fetch("/auth/register/", credentials);
    const tokens = await (await fetch("/auth/token/", credentials)).json();
    const auth = { Authorization: `Bearer ${tokens.access}` };
    // Start a slow reply and leave it: it runs on without us.
    const started = await fetch("/start_conversation/", {
      method: "POST",
      headers: { ...auth, "Content-Type": "application/json", Accept: "text/event-stream" },
      body: JSON.stringify({ content: "[stub: tokens=60 delay=60] slow story for EventSource" }),
    });
    const reader = started.body.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    await reader.cancel();
    const conversationId = /"conversation":\{"id":"([^"]+)"/.exec(first)[1];
    const { ticket } = await (await fetch(`/conversations/${conversationId}/stream_ticket/`, { method: "POST", headers: auth })).json();
    window.__events = { text: "", opens: 0, done: null };
    const source = new EventSource(`/conversations/${conversationId}/stream/?ticket=${encodeURIComponent(ticket)}`);
    source.onopen = () => window.__events.opens++;
    source.addEventListener("delta", (event) => (window.__events.text += JSON.parse(event.data).content));
    source.addEventListener("done", (event) => {
      window.__events.done = JSON.parse(event.data).ai_message.content;
      source.close();
    });
  }, { email: `eventsource-${Date.now()}@example.com`, password: account.password });
  await page.waitForFunction(() => window.__events.done !== null, null, { ...POLL, timeout: 20_000 });
  const events = await page.evaluate(() => window.__events);
  proxy.close();
  assert.equal(events.opens, 2, "the proxy cut the first connection and the browser reconnected once");
  assert.equal(events.text, words(60));
  assert.equal(events.done, words(60));
  await page.close();
});

test("unknown paths still get the API's JSON 404, not the page", async () => {
  const response = await fetch(`${BASE}/no-such-page`);
  assert.equal(response.status, 404);
  assert.equal((await response.json()).error.code, "not_found");
});
