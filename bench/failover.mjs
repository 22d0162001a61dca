// `npm run bench -- --failover`: a model served by two fake upstreams, `first` then `second`,
// under wrangler dev. `first` is healthy, then answers 503, then hangs (until the first-byte
// limit); `second` stays healthy. Reports the TTFT of streamed turns in each phase against the
// healthy phase of the same run, once with the circuit kept shut (PROVIDER_CIRCUIT_FAILURES very
// high: every turn pays for the failing provider) and once with the default circuit (3 failures
// open it for 30 s): the turns before it opens, and those after.
import os from "node:os";
import { percentiles, requestJson, streamedTurn } from "./load.mjs";
import { startApi, startFakeUpstream, stopAll } from "./processes.mjs";

const PORT = 8815;
const API = `http://127.0.0.1:${PORT}`;
const PASSWORD = "correct horse battery staple";
const FIRST_BYTE_TIMEOUT_MS = 1_000;

const setMode = (upstream, mode) => fetch(`${upstream}/mode`, { method: "POST", body: JSON.stringify({ mode }) });

async function startTwoProviders(circuitFailures) {
  const [first, second] = [await startFakeUpstream({ FAKE_TTFT_MS: "50", FAKE_TOKENS: "16" }), await startFakeUpstream({ FAKE_TTFT_MS: "50", FAKE_TOKENS: "16" })];
  // A secret wrangler dev loads: with [secrets] required, only the listed ones are.
  const providers = { first: { base_url: `${first}/v1`, api_key: "OPENAI_API_KEY" }, second: { base_url: `${second}/v1`, api_key: "OPENAI_API_KEY" } };
  const models = [{ id: "gpt-4", providers: ["first", "second"], context_window: 8_192, max_output_tokens: 1_024, price: { input: 30, output: 60 } }];
  const vars = {
    OPENAI_API_KEY: "bench",
    PROVIDERS: `'${JSON.stringify(providers)}'`,
    MODELS: `'${JSON.stringify(models)}'`,
    PROVIDER_FIRST_BYTE_TIMEOUT_MS: String(FIRST_BYTE_TIMEOUT_MS),
    PROVIDER_CIRCUIT_FAILURES: String(circuitFailures),
  };
  const { cleanup } = await startApi({ port: PORT, vars });
  return { first, second, cleanup };
}

async function newConversation() {
  const email = `failover-${crypto.randomUUID()}@example.com`;
  // Its own client address each: sign-up and login are rate limited per address.
  const clientIp = `10.${Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`;
  await requestJson(API, "/auth/register/", { body: { email, password: PASSWORD }, clientIp });
  const { access } = await requestJson(API, "/auth/token/", { body: { email, password: PASSWORD }, clientIp });
  const { id } = await requestJson(API, "/conversations/", { token: access, body: { title: "failover" } });
  return { token: access, id };
}

/** `turns` streamed turns one after another; their TTFTs in order, and the provider of each reply. */
async function sequentialTurns(turns) {
  const { token, id } = await newConversation();
  const ttfts = [];
  for (let i = 0; i < turns; i++) {
    const result = await streamedTurn(API, token, id, i);
    if (result.error) throw new Error(`turn ${i}: ${result.error}`);
    ttfts.push(result.ttft);
  }
  const messages = await requestJson(API, `/conversations/${id}/messages/?page_size=100`, { token });
  const providers = messages.results.filter((m) => m.sender === "ai").map((m) => m.provider);
  return { ttfts, providers };
}

const fmt = (ms) => `${ms.toFixed(1)} ms`;
const row = (phase, { ttfts, providers }, healthyP50) => {
  const { p50, p99 } = percentiles(ttfts);
  const answered = Object.entries(providers.reduce((n, p) => ({ ...n, [p]: (n[p] ?? 0) + 1 }), {}))
    .map(([p, n]) => `${p} ×${n}`)
    .join(", ");
  return `| ${phase} | ${ttfts.length} | ${fmt(p50)} | ${fmt(p99)} | ${healthyP50 === null ? "—" : `${(p50 - healthyP50 >= 0 ? "+" : "") + (p50 - healthyP50).toFixed(1)} ms (${(p50 / healthyP50).toFixed(2)}×)`} | ${answered} |`;
};

export async function failoverBench({ turns = 20 }) {
  const lines = [];
  // 1. The circuit kept shut: what each kind of failure costs every turn.
  let run = await startTwoProviders(1_000_000);
  try {
    await sequentialTurns(3); // warm-up: isolates, SDK clients, connections
    const healthy = await sequentialTurns(turns);
    const healthyP50 = percentiles(healthy.ttfts).p50;
    lines.push(row("first healthy (the floor)", healthy, null));
    await setMode(run.first, "503");
    lines.push(row("first answers 503, circuit kept shut", await sequentialTurns(turns), healthyP50));
    await setMode(run.first, "hang");
    lines.push(row(`first hangs (first-byte limit ${FIRST_BYTE_TIMEOUT_MS} ms), circuit kept shut`, await sequentialTurns(Math.min(turns, 5)), healthyP50));
  } finally {
    run.cleanup();
  }
  // 2. The default circuit: 3 failures in a row, then the failing provider is asked last.
  run = await startTwoProviders(3);
  try {
    await sequentialTurns(3);
    const healthyP50 = percentiles((await sequentialTurns(turns)).ttfts).p50;
    for (const mode of ["503", "hang"]) {
      await setMode(run.first, mode);
      const { ttfts, providers } = await sequentialTurns(turns);
      lines.push(row(`first ${mode === "503" ? "answers 503" : "hangs"}: turns 1–3, before the circuit opens`, { ttfts: ttfts.slice(0, 3), providers: providers.slice(0, 3) }, healthyP50));
      lines.push(row(`first ${mode === "503" ? "answers 503" : "hangs"}: turns 4–${turns}, circuit open`, { ttfts: ttfts.slice(3), providers: providers.slice(3) }, healthyP50));
      await setMode(run.first, "ok");
      // Wait out the open circuit so the next mode starts from a closed one.
      await new Promise((resolve) => setTimeout(resolve, 31_000));
      await sequentialTurns(1);
    }
  } finally {
    run.cleanup();
    stopAll();
  }
  return [
    `## Failover between providers (${new Date().toISOString().slice(0, 10)})`,
    "",
    `Command: \`npm run bench -- --failover --turns=${turns}\`. Machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? "cpu"}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}.`,
    "Two fake upstreams (50 ms to the first token) serve gpt-4 as providers `first` then `second`; streamed turns one at a time under wrangler dev.",
    "Added TTFT is against the healthy phase of the same API instance.",
    "",
    "| phase | turns | TTFT p50 | TTFT p99 | added p50 | answered by |",
    "|---|---|---|---|---|---|",
    ...lines,
  ].join("\n");
}
