// The CPU that choosing a turn's context costs for a 1,000-message branch: `selectContext` from
// src/conversation/context-window.ts, bundled with esbuild and timed in Node (V8, as in workerd).
// Standalone: node bench/prompt-building.mjs   (also part of `npm run bench`)
import { build } from "esbuild";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";

const ROOT = path.resolve(import.meta.dirname, "..");
const MESSAGES = 1_000;
const ITERATIONS = 2_000;

async function loadSelectContext() {
  const dir = mkdtempSync(path.join(tmpdir(), "genai-edge-prompt-"));
  const outfile = path.join(dir, "context-window.mjs");
  await build({ entryPoints: [path.join(ROOT, "src/conversation/context-window.ts")], bundle: true, format: "esm", platform: "neutral", outfile, logLevel: "error" });
  const module = await import(pathToFileURL(outfile).href);
  rmSync(dir, { recursive: true, force: true });
  return module.selectContext;
}

/**
 * A long branch: user messages of 200–1,200 characters, replies of 400–2,400. `counted`: as in
 * use, the provider has counted every message but the new one; otherwise none is counted (all
 * estimated: the worst case, e.g. rows stored before counting existed).
 */
function longBranch(counted) {
  const messages = Array.from({ length: MESSAGES }, (_, i) => {
    const role = i % 2 === 0 ? "user" : "assistant";
    const length = (role === "user" ? 200 : 400) * (1 + (i % 6));
    const content = "lorem ipsum dolor sit amet, consectetur adipiscing elit ".repeat(Math.ceil(length / 56)).slice(0, length);
    return { id: `m${i}`, order: i + 1, role, content, tokens: counted && i < MESSAGES - 1 ? Math.ceil(length / 4) : null };
  });
  return { messages, summary: { throughOrder: 10, content: "The user is planning a trip.".repeat(20), tokens: 120 } };
}

function time(selectContext, branch, budget) {
  for (let i = 0; i < 200; i++) selectContext("You are helpful.", branch, budget);
  const started = process.hrtime.bigint();
  let selection;
  for (let i = 0; i < ITERATIONS; i++) selection = selectContext("You are helpful.", branch, budget);
  const micros = Number(process.hrtime.bigint() - started) / 1000 / ITERATIONS;
  return { micros, sent: selection.window.messages };
}

export async function measurePromptBuilding() {
  const selectContext = await loadSelectContext();
  const small = { contextTokens: 8_192, maxOutputTokens: 1_024 };
  const large = { contextTokens: 1_047_576, maxOutputTokens: 1_024 };
  return {
    messages: MESSAGES,
    cases: [
      { label: "8k window, counted branch", ...time(selectContext, longBranch(true), small) },
      { label: "1M window, counted branch", ...time(selectContext, longBranch(true), large) },
      { label: "8k window, nothing counted", ...time(selectContext, longBranch(false), small) },
      { label: "1M window, nothing counted", ...time(selectContext, longBranch(false), large) },
    ],
  };
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const result = await measurePromptBuilding();
  for (const c of result.cases) console.log(`${c.label}: ${c.micros.toFixed(1)} µs per turn, ${c.sent} of ${result.messages} messages sent`);
}
