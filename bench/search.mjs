// `npm run bench -- --search [--seconds=5]`: `GET /search/` alone, on a user with 100,000 messages
// (bench/seed.mjs), under `wrangler dev`: one request at a time (what one query costs), then 10
// connections (the target), beside three floors measured the same way in the same run:
// `GET /health` (no auth, no D1), `GET /conversations/?page=1` (one indexed D1 read), and a Worker
// with no bindings that answers a constant (bench/passthrough-worker.js under its own wrangler dev).
// Then a neighbour in the same shard lists its conversations, alone and while the seeded user runs
// three loops of the costliest search allowed (8 different words, 4 of them three-letter prefixes).
import { loadEndpoint, requestJson } from "./load.mjs";
import { startApiOnFakeUpstream, startPassthrough } from "./processes.mjs";
import { executeLocal, PASSWORD, rareSearchPath, SEARCH_WORDS, searchSeedSql, shardBindingOf } from "./seed.mjs";

const PORT = 8815;
const API = `http://127.0.0.1:${PORT}`;
const BARE_PORT = 8816;
const BARE = `http://127.0.0.1:${BARE_PORT}`;
const USER_ID = "00000000-0000-7000-8fff-000000000002";
const EMAIL = "search-bench@example.com";

const pick = (list) => list[Math.floor(Math.random() * list.length)];
const QUERIES = {
  "a rare word (`topic<n>`, in 20 messages)": rareSearchPath,
  "a common word (in 3,000–18,000 messages)": () => `/search/?q=${pick(SEARCH_WORDS)}`,
  "two common words": () => `/search/?q=${pick(SEARCH_WORDS)}%20${pick(SEARCH_WORDS)}`,
};

/** The costliest query search takes: 8 different words, the first 4 searched as three-letter prefixes. */
const adversarialPath = () => {
  const words = [...SEARCH_WORDS].sort(() => Math.random() - 0.5);
  return `/search/?q=${[...words.slice(0, 4).map((word) => word.slice(0, 3)), ...words.slice(4, 8)].join("%20")}`;
};

/** A user in the seeded user's shard: another tenant of the same D1 database. */
async function neighbourInSameShard() {
  for (let i = 0; ; i++) {
    const body = { email: `neighbour-${i}@example.com`, password: PASSWORD };
    const clientIp = `10.8.${i >> 8}.${i & 255}`;
    const { id } = await requestJson(API, "/auth/register/", { body, clientIp });
    if (shardBindingOf(id) !== shardBindingOf(USER_ID)) continue;
    const { access } = await requestJson(API, "/auth/token/", { body, clientIp });
    for (let c = 0; c < 20; c++) await requestJson(API, "/conversations/", { token: access, body: { title: `neighbour ${c}` } });
    return access;
  }
}

async function neighbourUnderAttack(attacker, seconds) {
  const neighbour = await neighbourInSameShard();
  const list = () => "/conversations/?page=1";
  const alone = await loadEndpoint(API, neighbour, list, seconds, 1);
  const [attacked, attack] = await Promise.all([loadEndpoint(API, neighbour, list, seconds, 1), loadEndpoint(API, attacker, adversarialPath, seconds, 3)]);
  const ratio = (a, b) => `${(a / b).toFixed(2)}×`;
  return [
    "A neighbour in the same shard lists its conversations (one connection), alone and while the seeded user searches in three loops",
    "with 8 words, 4 of them three-letter prefixes (the most a search may ask). Times in ms.",
    "",
    "| neighbour's `GET /conversations/` | p50 | p99 | requests |",
    "| --- | --- | --- | --- |",
    `| alone (the floor) | ${alone.latency.p50.toFixed(1)} | ${alone.latency.p99.toFixed(1)} | ${alone.latency.n} |`,
    `| under the search loops | ${attacked.latency.p50.toFixed(1)} (${ratio(attacked.latency.p50, alone.latency.p50)}) | ${attacked.latency.p99.toFixed(1)} (${ratio(attacked.latency.p99, alone.latency.p99)}) | ${attacked.latency.n} |`,
    "",
    `The attacker's searches: ${attack.latency.n} sent (p50 ${attack.latency.p50.toFixed(1)} ms), ${attack.errors} of them not answered 200. SEARCH_RATE_LIMITER is lifted in this run, so the`,
    "query caps alone bound the attack; with it (60 a minute) the attacker's searches past the 60th are refused before any D1 work.",
  ].join("\n");
}

export async function searchBench({ seconds = 5 } = {}) {
  const seed = searchSeedSql(USER_ID, EMAIL);
  // What a query costs is measured past the per-user search limit: here it allows them all.
  const { upstream, cleanup } = await startApiOnFakeUpstream({
    port: PORT,
    rateLimits: { SEARCH_RATE_LIMITER: 1_000_000 },
    beforeStart: (state) => {
      executeLocal(state, "DIRECTORY", "seed-user.sql", seed.user);
      executeLocal(state, shardBindingOf(USER_ID), "seed-search.sql", seed.sql);
    },
  });
  try {
    await startPassthrough(BARE_PORT, upstream);
    const { access } = await requestJson(API, "/auth/token/", { body: { email: EMAIL, password: PASSWORD } });
    const endpoints = {
      ...Object.fromEntries(Object.entries(QUERIES).map(([name, makePath]) => [name, [API, makePath]])),
      "floor: `GET /health`": [API, () => "/health"],
      "floor: `GET /conversations/?page=1`": [API, () => "/conversations/?page=1"],
      "floor: a Worker with no bindings answering a constant": [BARE, () => "/health"],
    };
    for (const [base, makePath] of Object.values(endpoints)) await loadEndpoint(base, access, makePath, 0.5, 1); // warm-up
    const rows = [];
    for (const [name, [base, makePath]] of Object.entries(endpoints)) {
      const alone = await loadEndpoint(base, access, makePath, 2, 1);
      const loaded = await loadEndpoint(base, access, makePath, seconds, 10);
      rows.push(`| ${name} | ${alone.latency.p50.toFixed(1)} | ${loaded.rps.toFixed(0)} | ${loaded.latency.p50.toFixed(1)} / ${loaded.latency.p99.toFixed(1)} | ${alone.errors + loaded.errors} |`);
    }
    return [
      `One user with 100,000 messages in 100 conversations; ${seconds} s per load, under \`wrangler dev\`. Times in ms.`,
      "",
      "| request | one at a time: p50 | 10 connections: requests/s | p50 / p99 | errors |",
      "| --- | --- | --- | --- | --- |",
      ...rows,
      "",
      await neighbourUnderAttack(access, seconds),
    ].join("\n");
  } finally {
    cleanup();
  }
}
