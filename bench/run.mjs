// `npm run bench`: starts the fake upstream and the API under `wrangler dev`, measures streaming
// turns against both, the list endpoints and the bundle, writes bench/RESULTS.md, and stops
// everything it started (by PID). Options: --runs=1x10,20x3 --list-seconds=10 --quick; --shards runs only
// the D1 sharding simulation (bench/shard-simulation.mjs); --client=http only the plain-http
// time-to-first-token breakdown (bench/ttft-breakdown.mjs); --memory the workerd memory under
// rounds of concurrent streams (bench/memory.mjs); --profile a CPU profile of streamed turns
// (bench/profile.mjs); --search only the search endpoint (bench/search.mjs); --signin the CPU of
// signing up and in (bench/signin.mjs); --d1-rtt=80 turns with D1 80 ms away, beside D1 at 0 ms (bench/distant-d1.mjs);
// --failover turns while the first of two providers fails, with and without its circuit (bench/failover.mjs);
// --heap what a burst of streams leaves in the Worker's JavaScript heap (bench/heap.mjs);
// --files upload throughput and the added TTFT of a 1 MiB image (bench/files.mjs); --tools the step after
// a server tool against a single-step turn's first token (bench/tools.mjs). BENCH_LOG=<file> appends the started processes' output to <file>.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { gzipSync } from "node:zlib";
import { distantD1Bench } from "./distant-d1.mjs";
import { failoverBench } from "./failover.mjs";
import { filesBench } from "./files.mjs";
import { toolsBench } from "./tools.mjs";
import { heapBench } from "./heap.mjs";
import { measurePromptBuilding } from "./prompt-building.mjs";
import { shardSimulation } from "./shard-simulation.mjs";
import { memoryBench } from "./memory.mjs";
import { profileTurns } from "./profile.mjs";
import { searchBench } from "./search.mjs";
import { signInBench } from "./signin.mjs";
import { loadEndpoint, percentiles, readSse, requestJson, streamedTurn } from "./load.mjs";
import { executeLocal, listSeedSql, PASSWORD, rareSearchPath, SEARCH_WORDS, searchSeedSql, shardBindingOf } from "./seed.mjs";
import { startPassthrough, startProcess, stopAll } from "./processes.mjs";
import { ttftBreakdown } from "./ttft-breakdown.mjs";
import { cpuSeconds, memoryMiB, workerdPids } from "./workerd-stats.mjs";

const ROOT = path.resolve(import.meta.dirname, "..");
const STATE = path.join(ROOT, "bench", ".state");
const BIN = path.join(ROOT, "node_modules", ".bin");
const API_PORT = 8797;
const API = `http://127.0.0.1:${API_PORT}`;
const PASSTHROUGH_PORT = 8798;
const args = Object.fromEntries(process.argv.slice(2).map((a) => a.replace(/^--/, "").split("=")));
const RUNS = (args.runs ?? ("quick" in args ? "1x5,20x2" : "1x10,20x3,100x2,500x1")).split(",").map((r) => r.split("x").map(Number));
const LIST_SECONDS = Number(args["list-seconds"] ?? ("quick" in args ? 3 : 10));
const USERS = 20; // conversations are spread over users, as a real deployment's would be

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

process.on("SIGINT", () => process.exit(130));

const apiJson = (pathname, options) => requestJson(API, pathname, options);

const apiTurn = (token, conversationId, index) => streamedTurn(API, token, conversationId, index);

/** The same request straight to the fake upstream (the physical limit), or through the passthrough Worker. */
async function directTurn(upstream, index) {
  const t0 = performance.now();
  const response = await fetch(upstream.endsWith("/") ? upstream : `${upstream}/v1/chat/completions`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: "Bearer bench" },
    body: JSON.stringify({ model: "gpt-4", stream: true, messages: [{ role: "user", content: `Benchmark turn ${index}` }] }),
  });
  if (response.status !== 200) return { error: `HTTP ${response.status}` };
  let first;
  let last;
  const gaps = [];
  await readSse(response, (_, data, at) => {
    if (data === "[DONE]") return;
    if (JSON.parse(data).choices[0]?.delta?.content) {
      if (first === undefined) first = at;
      else gaps.push(at - last);
      last = at;
    }
  });
  return { ttft: first - t0, total: performance.now() - t0, gaps };
}

async function runLoad(concurrency, turnsEach, makeTurn) {
  const results = [];
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async (_, c) => {
      for (let t = 0; t < turnsEach; t++) results.push(await makeTurn(c, t).catch((e) => ({ error: String(e) })));
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const ok = results.filter((r) => !r.error);
  return {
    seconds,
    turns: ok.length,
    errors: results.filter((r) => r.error).map((r) => r.error),
    ttft: percentiles(ok.map((r) => r.ttft)),
    total: percentiles(ok.map((r) => r.total)),
    gap: percentiles(ok.flatMap((r) => r.gaps)),
  };
}


const fmt = (n) => (Number.isFinite(n) ? (n >= 100 ? n.toFixed(0) : n.toFixed(1)) : "–");
const version = (pkg) => JSON.parse(readFileSync(path.join(ROOT, "node_modules", pkg, "package.json"), "utf8")).version;

async function main() {
  if ("shards" in args) {
    console.log(shardSimulation());
    return;
  }
  if ("memory" in args) {
    console.log(await memoryBench({ streams: Number(args.streams ?? 300), rounds: Number(args.rounds ?? 3), idleSeconds: Number(args["idle-seconds"] ?? 60) }));
    return;
  }
  if ("signin" in args) {
    console.log(await signInBench({ requests: Number(args.requests ?? 30) }));
    return;
  }
  if ("d1-rtt" in args) {
    console.log(await distantD1Bench({ rttMs: Number(args["d1-rtt"] || 80), turns: Number(args.turns ?? 10) }));
    return;
  }
  if ("files" in args) {
    console.log(await filesBench({ uploads: Number(args.uploads ?? 10), turns: Number(args.turns ?? 20) }));
    return;
  }
  if ("tools" in args) {
    console.log(await toolsBench({ turns: Number(args.turns ?? 30) }));
    return;
  }
  if ("heap" in args) {
    console.log(await heapBench({ streams: Number(args.streams ?? 200), idleSeconds: Number(args["idle-seconds"] ?? 20) }));
    return;
  }
  if ("failover" in args) {
    console.log(await failoverBench({ turns: Number(args.turns ?? 20) }));
    return;
  }
  if ("search" in args) {
    console.log(await searchBench({ seconds: Number(args.seconds ?? 5) }));
    return;
  }
  if ("profile" in args) {
    console.log(await profileTurns({ conversations: Number(args.conversations ?? 20), turns: Number(args.turns ?? 3) }));
    return;
  }
  if (args.client === "http") {
    console.log(await ttftBreakdown(Number(args.conversations ?? 30)));
    return;
  }
  rmSync(STATE, { recursive: true, force: true });
  mkdirSync(STATE, { recursive: true });
  const env = { WRANGLER_SEND_METRICS: "false", CI: "1" };

  // Before anything else runs, so nothing competes for the CPU.
  console.log("prompt building…");
  const promptBuilding = await measurePromptBuilding();

  const { match } = await startProcess("fake upstream", process.execPath, ["bench/fake-openai.mjs"], {}, /listening (\d+)/);
  const upstream = `http://127.0.0.1:${match[1]}`;

  console.log("seeding a user with 1,000 conversations and 1,000 messages…");
  const listUserEmail = "list-bench@example.com";
  const listUserId = "00000000-0000-7000-8fff-000000000001";
  const seed = listSeedSql(listUserId, listUserEmail);
  const searchUserEmail = "search-bench@example.com";
  const searchUserId = "00000000-0000-7000-8fff-000000000002";
  const searchSeed = searchSeedSql(searchUserId, searchUserEmail);
  execFileSync(process.execPath, ["scripts/apply-migrations.mjs", "--local", "--persist-to", STATE], { cwd: ROOT, env: { ...process.env, ...env }, stdio: "ignore" });
  executeLocal(STATE, "DIRECTORY", "seed-users.sql", `${seed.user}\n${searchSeed.user}`);
  executeLocal(STATE, shardBindingOf(listUserId), "seed-list.sql", seed.sql);
  executeLocal(STATE, shardBindingOf(searchUserId), "seed-search.sql", searchSeed.sql);

  const vars = {
    OPENAI_API_KEY: "bench-key",
    OPENAI_BASE_URL: `${upstream}/v1`,
    JWT_SECRET: randomBytes(32).toString("base64url"),
    MODEL_MAX_RETRIES: "0",
    // wrangler dev pretty-prints every log line in its own Node process, which costs a third of
    // the throughput on 2 cores; in production logs leave the isolate without that cost.
    LOG_LEVEL: "warn",
  };
  const wranglerArgs = ["dev", "--ip", "127.0.0.1", "--port", String(API_PORT), "--persist-to", STATE, "--show-interactive-dev-session=false", "--env-file", path.join(STATE, "bench.env")];
  writeFileSync(path.join(STATE, "bench.env"), Object.entries(vars).map(([k, v]) => `${k}=${v}`).join("\n"));
  const { child: wrangler } = await startProcess("wrangler dev", path.join(BIN, "wrangler"), wranglerArgs, env, /Ready on http/);
  const passthroughWrangler = await startPassthrough(PASSTHROUGH_PORT, upstream);
  const passthrough = `http://127.0.0.1:${PASSTHROUGH_PORT}/`;
  await sleep(500);

  console.log("registering users…");
  const tokens = [];
  for (let u = 0; u < USERS; u++) {
    const email = `bench-${u}@example.com`;
    const clientIp = `10.0.0.${u + 1}`;
    await apiJson("/auth/register/", { body: { email, password: PASSWORD }, clientIp });
    tokens.push((await apiJson("/auth/token/", { body: { email, password: PASSWORD }, clientIp })).access);
  }
  // Warm-up: the first requests compile the Worker and open the object's storage.
  const warm = await apiJson("/conversations/", { token: tokens[0], body: { title: "warm-up" } });
  for (let i = 0; i < 3; i++) await apiTurn(tokens[0], warm.id, i);
  for (let i = 0; i < 3; i++) await directTurn(upstream, i);
  for (let i = 0; i < 3; i++) await directTurn(passthrough, i);

  const pids = workerdPids(wrangler.pid);
  const passthroughPids = workerdPids(passthroughWrangler.pid);
  const turnRuns = [];
  for (const [concurrency, turnsEach] of RUNS) {
    console.log(`C=${concurrency} T=${turnsEach}…`);
    const conversations = await Promise.all(
      Array.from({ length: concurrency }, (_, c) => apiJson("/conversations/", { token: tokens[c % USERS], body: { title: `bench ${c}` } })),
    );
    const direct = await runLoad(concurrency, turnsEach, (c, t) => directTurn(upstream, c * 1000 + t));
    const floorCpuBefore = cpuSeconds(passthroughPids);
    const floor = await runLoad(concurrency, turnsEach, (c, t) => directTurn(passthrough, c * 1000 + t));
    const floorCpu = cpuSeconds(passthroughPids) - floorCpuBefore;
    const cpuBefore = cpuSeconds(pids);
    const api = await runLoad(concurrency, turnsEach, (c, t) => apiTurn(tokens[c % USERS], conversations[c].id, t));
    const cpu = cpuSeconds(pids) - cpuBefore;
    // Every reply must be stored Completed, not only streamed.
    let stored = 0;
    for (let c = 0; c < concurrency; c++) {
      let next = `/conversations/${conversations[c].id}/messages/`;
      while (next) {
        const page = await apiJson(next, { token: tokens[c % USERS] });
        stored += page.results.filter((m) => m.sender === "user" && m.ai_response_status === "Completed").length;
        next = page.next && new URL(page.next).pathname + new URL(page.next).search;
      }
    }
    turnRuns.push({
      concurrency,
      turnsEach,
      api,
      direct,
      floor,
      cpuMsPerTurn: (cpu * 1000) / Math.max(api.turns, 1),
      floorCpuMsPerTurn: (floorCpu * 1000) / Math.max(floor.turns, 1),
      stored,
    });
  }

  console.log("list endpoints…");
  const listToken = (await apiJson("/auth/token/", { body: { email: listUserEmail, password: PASSWORD }, clientIp: "10.0.1.1" })).access;
  const randomPage = () => 1 + Math.floor(Math.random() * 100);
  const lists = {
    bare: await loadEndpoint(passthrough.slice(0, -1), null, () => "/health", LIST_SECONDS),
    health: await loadEndpoint(API, listToken, () => "/health", LIST_SECONDS),
    conversations: await loadEndpoint(API, listToken, () => `/conversations/?page=${randomPage()}`, LIST_SECONDS),
    messages: await loadEndpoint(API, listToken, () => `/conversations/${seed.conversationId}/messages/?page=${randomPage()}`, LIST_SECONDS),
  };
  console.log("search and export (a user with 100,000 messages)…");
  const searchToken = (await apiJson("/auth/token/", { body: { email: searchUserEmail, password: PASSWORD }, clientIp: "10.0.1.2" })).access;
  const randomWords = () => [0, 1].map(() => SEARCH_WORDS[Math.floor(Math.random() * SEARCH_WORDS.length)]).join("%20");
  const searches = await loadEndpoint(API, searchToken, () => `/search/?q=${randomWords()}`, LIST_SECONDS, 10);
  const rareSearches = await loadEndpoint(API, searchToken, rareSearchPath, LIST_SECONDS, 10);
  const exportStarted = performance.now();
  const exported = await fetch(`${API}/users/me/export/`, { headers: { Authorization: `Bearer ${searchToken}` } });
  const exportedLines = (await exported.text()).split("\n").filter((line) => line.includes('"type":"message"')).length;
  const exportSeconds = (performance.now() - exportStarted) / 1000;
  const peakMiB = Math.round(memoryMiB(pids, "VmHWM"));
  const upstreamStats = await (await fetch(`${upstream}/stats`)).json();

  console.log("bundle…");
  const outdir = path.join(STATE, "dist");
  execFileSync(path.join(BIN, "wrangler"), ["deploy", "--dry-run", "--outdir", outdir], { cwd: ROOT, env: { ...process.env, ...env }, stdio: "ignore" });
  const bundle = readFileSync(path.join(outdir, "index.js"));
  const bundleKiB = { raw: statSync(path.join(outdir, "index.js")).size / 1024, gzip: gzipSync(bundle).length / 1024 };

  const cpu = os.cpus();
  const report = [
    "# Benchmark results",
    "",
    `Run: \`npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(" ")}` : ""}\` on ${new Date().toISOString()}.`,
    "",
    `Machine: ${cpu.length} × ${cpu[0]?.model ?? "?"}, ${Math.round(os.totalmem() / 2 ** 30)} GiB RAM, ${os.type()} ${os.release()}.`,
    `Versions: Node ${process.version}, wrangler ${version("wrangler")}, workerd ${version("workerd")}, hono ${version("hono")}, openai ${version("openai")}, drizzle-orm ${version("drizzle-orm")}.`,
    "",
    `The API runs under \`wrangler dev\` (local workerd, local D1) with \`OPENAI_BASE_URL\` pointing at \`bench/fake-openai.mjs\`: time to first token ${upstreamStats.knobs.ttftMs} ms, ${upstreamStats.knobs.gapMs} ms between tokens, ${upstreamStats.knobs.tokens} tokens per reply. Each of C conversations sends T turns one after another over SSE (\`add_message\` with \`Accept: text/event-stream\`); "direct" sends the same C×T streaming requests straight to the fake upstream in the same run; "passthrough" sends them through \`bench/passthrough-worker.js\`, a Worker under its own \`wrangler dev\` that only pipes the upstream stream through: the floor of the runtime itself. The load client runs on the same 2 cores. Times in ms, measured by the client from sending the request. The API runs with \`LOG_LEVEL=warn\`.`,
    "",
    "## Streaming turns",
    "",
    "| C × T | TTFT p50 / p95 / p99 / max: API | direct | passthrough | added TTFT p50 / p95 (API − direct) | gap p50 API / direct | done p50 / p99 | turns/s | errors | stored Completed | workerd CPU ms/turn: API / passthrough |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ...turnRuns.map(({ concurrency, turnsEach, api, direct, floor, cpuMsPerTurn, floorCpuMsPerTurn, stored }) =>
      [
        `${concurrency} × ${turnsEach}`,
        `${fmt(api.ttft.p50)} / ${fmt(api.ttft.p95)} / ${fmt(api.ttft.p99)} / ${fmt(api.ttft.max)}`,
        `${fmt(direct.ttft.p50)} / ${fmt(direct.ttft.p95)}`,
        `${fmt(floor.ttft.p50)} / ${fmt(floor.ttft.p95)}`,
        `${fmt(api.ttft.p50 - direct.ttft.p50)} / ${fmt(api.ttft.p95 - direct.ttft.p95)}`,
        `${fmt(api.gap.p50)} / ${fmt(direct.gap.p50)}`,
        `${fmt(api.total.p50)} / ${fmt(api.total.p99)}`,
        fmt(api.turns / api.seconds),
        String(api.errors.length + floor.errors.length),
        `${stored} / ${concurrency * turnsEach}`,
        `${fmt(cpuMsPerTurn)} / ${fmt(floorCpuMsPerTurn)}`,
      ].join(" | ").replace(/^/, "| ").replace(/$/, " |"),
    ),
    "",
    `Peak resident memory of the workerd processes over the whole run: ${peakMiB} MiB.`,
    ...turnRuns.flatMap((r) => (r.api.errors.length ? [`Errors at C=${r.concurrency}: ${[...new Set(r.api.errors)].slice(0, 3).join("; ")}`] : [])),
    "",
    "## List endpoints (50 connections, one user with 1,000 conversations; a conversation with 1,000 messages; random page 1–100)",
    "",
    "| endpoint | requests/s | p50 | p99 | max | errors |",
    "| --- | --- | --- | --- | --- | --- |",
    `| floor: \`GET /health\` of passthrough-worker.js (a constant, no bindings) | ${fmt(lists.bare.rps)} | ${fmt(lists.bare.latency.p50)} | ${fmt(lists.bare.latency.p99)} | ${fmt(lists.bare.latency.max)} | ${lists.bare.errors} |`,
    `| \`GET /health\` (floor: no auth, no D1) | ${fmt(lists.health.rps)} | ${fmt(lists.health.latency.p50)} | ${fmt(lists.health.latency.p99)} | ${fmt(lists.health.latency.max)} | ${lists.health.errors} |`,
    `| \`GET /conversations/?page=N\` | ${fmt(lists.conversations.rps)} | ${fmt(lists.conversations.latency.p50)} | ${fmt(lists.conversations.latency.p99)} | ${fmt(lists.conversations.latency.max)} | ${lists.conversations.errors} |`,
    `| \`GET /conversations/{id}/messages/?page=N\` | ${fmt(lists.messages.rps)} | ${fmt(lists.messages.latency.p50)} | ${fmt(lists.messages.latency.p99)} | ${fmt(lists.messages.latency.max)} | ${lists.messages.errors} |`,
    "",
    "## Search and export (one user with 100,000 messages in 100 conversations)",
    "",
    "| what | result |",
    "| --- | --- |",
    `| \`GET /search/?q=topic<n>\` (a word in 20 messages), 10 connections, ${LIST_SECONDS} s | ${fmt(rareSearches.rps)} requests/s, p50 ${fmt(rareSearches.latency.p50)} ms, p99 ${fmt(rareSearches.latency.p99)} ms, ${rareSearches.errors} errors |`,
    `| \`GET /search/?q=<two random common words>\` (each in 3,000–18,000 messages, together in 0–3,000), 10 connections, ${LIST_SECONDS} s | ${fmt(searches.rps)} requests/s, p50 ${fmt(searches.latency.p50)} ms, p99 ${fmt(searches.latency.p99)} ms, ${searches.errors} errors |`,
    `| \`GET /users/me/export/\` (NDJSON, all 100,000 messages) | ${exportedLines} messages in ${fmt(exportSeconds)} s: ${fmt(exportedLines / exportSeconds)} messages/s |`,
    "",
    `## Prompt building (\`selectContext\` over a ${promptBuilding.messages}-message branch, Node ${process.version}; also \`node bench/prompt-building.mjs\`)`,
    "",
    "| case | CPU per turn | messages sent |",
    "| --- | --- | --- |",
    ...promptBuilding.cases.map((c) => `| ${c.label} | ${fmt(c.micros)} µs | ${c.sent} |`),
    "",
    "## Bundle",
    "",
    `\`wrangler deploy --dry-run --outdir\`: ${fmt(bundleKiB.raw)} KiB, ${fmt(bundleKiB.gzip)} KiB gzip.`,
    "",
  ].join("\n");
  writeFileSync(path.join(ROOT, "bench", "RESULTS.md"), report);
  console.log(report);
}

main()
  .catch((error) => {
    console.error(error);
    process.exitCode = 1;
  })
  .finally(stopAll);
