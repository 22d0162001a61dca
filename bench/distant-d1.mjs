// `npm run bench -- --d1-rtt=80`: the same streamed turns with every D1 round trip of the Worker
// and of the objects delayed by 80 ms (a D1 primary on another continent), beside a run at 0 ms,
// each on its own wrangler dev started from bench/distant-d1-entry.ts. Reports added TTFT (API −
// the fake upstream alone, same run), last token → `done`, the D1 round trips between a turn's
// request and its model request (counted by the entry, not inferred), D1 writes per turn and the
// outbox's lag at C=20, and workerd CPU per turn.
import os from "node:os";
import { percentiles, readSse, requestJson, streamedTurn } from "./load.mjs";
import { startApiOnFakeUpstream } from "./processes.mjs";
import { cpuSeconds, workerdPids } from "./workerd-stats.mjs";

const PORT = 8813;
const API = `http://127.0.0.1:${PORT}`;
const PASSWORD = "correct horse battery staple";

const turn = (token, conversationId, index) => streamedTurn(API, token, conversationId, index);

/** The same request straight to the fake upstream. */
async function directTurn(upstream, index) {
  const t0 = performance.now();
  const response = await fetch(`${upstream}/v1/chat/completions`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: "Bearer bench" },
    body: JSON.stringify({ model: "gpt-4", stream: true, messages: [{ role: "user", content: `Benchmark turn ${index}` }] }),
  });
  let first;
  await readSse(response, (_, data, at) => {
    if (data !== "[DONE]" && JSON.parse(data).choices[0]?.delta?.content) first ??= at;
  });
  return { ttft: first - t0 };
}

const events = async () => (await fetch(`${API}/__bench/events`)).json();

/** For each turn request, the D1 round trips that started after it and before its model request. */
function roundTripsBeforeModel(recorded) {
  const counts = [];
  let open = null;
  for (const event of recorded) {
    if (event.kind === "request" && event.path.endsWith("/add_message/")) open = { d1: 0 };
    else if (event.kind === "d1" && open) open.d1++;
    else if (event.kind === "model" && open) {
      counts.push(open.d1);
      open = null;
    }
  }
  return counts;
}

async function measure(rttMs, { turns, concurrency, turnsEach }) {
  const { upstream, api, cleanup } = await startApiOnFakeUpstream({ port: PORT, devArgs: ["bench/distant-d1-entry.ts", "--var", `BENCH_D1_RTT_MS:${rttMs}`] });
  try {
    const users = [];
    for (let u = 0; u < concurrency; u++) {
      const email = `distant-${u}@example.com`;
      const clientIp = `10.9.0.${u + 1}`;
      await requestJson(API, "/auth/register/", { body: { email, password: PASSWORD }, clientIp });
      users.push((await requestJson(API, "/auth/token/", { body: { email, password: PASSWORD }, clientIp })).access);
    }
    const newConversation = (token, title) => requestJson(API, "/conversations/", { token, body: { title } });
    // Warm-up: compile the Worker, start the objects, take the first turn of each user (its user object's first count).
    const conversations = await Promise.all(users.map((token, u) => newConversation(token, `bench ${u}`)));
    await Promise.all(users.map((token, u) => turn(token, conversations[u].id, -1)));
    for (let i = 0; i < 3; i++) await directTurn(upstream, i);
    await events();

    const direct = [];
    for (let i = 0; i < turns; i++) direct.push((await directTurn(upstream, i)).ttft);
    const single = [];
    for (let i = 0; i < turns; i++) single.push(await turn(users[0], conversations[0].id, i));
    const singleEvents = await events();

    const pids = workerdPids(api.pid);
    const cpuBefore = cpuSeconds(pids);
    const loaded = [];
    await Promise.all(
      users.map(async (token, u) => {
        for (let t = 0; t < turnsEach; t++) loaded.push(await turn(token, conversations[u].id, t));
      }),
    );
    const cpu = cpuSeconds(pids) - cpuBefore;
    // Writes a turn causes can land just after its final frame: wait for the outboxes to drain.
    await new Promise((resolve) => setTimeout(resolve, 1_000 + 4 * rttMs));
    const loadedEvents = (await events()).filter((e) => e.kind === "d1");
    const ok = (results) => results.filter((r) => !r.error);
    const writes = loadedEvents.filter((e) => e.writes);
    return {
      rttMs,
      direct: percentiles(direct),
      single: { ttft: percentiles(ok(single).map((r) => r.ttft)), toDone: percentiles(ok(single).map((r) => r.toDone)), errors: single.filter((r) => r.error).map((r) => r.error) },
      d1BeforeModel: roundTripsBeforeModel(singleEvents),
      loaded: {
        turns: ok(loaded).length,
        ttft: percentiles(ok(loaded).map((r) => r.ttft)),
        errors: loaded.filter((r) => r.error).map((r) => r.error),
        d1WritesPerTurn: writes.length / Math.max(ok(loaded).length, 1),
        d1ReadsPerTurn: (loadedEvents.length - writes.length) / Math.max(ok(loaded).length, 1),
        outboxLag: percentiles(writes.map((e) => e.lagMs).filter((lag) => lag !== null)),
        cpuMsPerTurn: (cpu * 1000) / Math.max(ok(loaded).length, 1),
      },
    };
  } finally {
    cleanup();
  }
}

const fmt = (n) => (Number.isFinite(n) ? (n >= 100 ? n.toFixed(0) : n.toFixed(1)) : "–");

export async function distantD1Bench({ rttMs, turns = 10, concurrency = 20, turnsEach = 3 }) {
  const runs = [];
  for (const rtt of [0, rttMs]) {
    console.error(`D1 round trip ${rtt} ms…`);
    runs.push(await measure(rtt, { turns, concurrency, turnsEach }));
  }
  const cpu = os.cpus();
  const [near, far] = runs;
  return [
    `## D1 at a distance (\`npm run bench -- --d1-rtt=${rttMs}\`, ${new Date().toISOString()})`,
    "",
    `Machine: ${cpu.length} × ${cpu[0]?.model ?? "?"}, ${Math.round(os.totalmem() / 2 ** 30)} GiB. Each row is its own \`wrangler dev bench/distant-d1-entry.ts\` with every D1 round trip of the Worker and of the objects delayed by the given time (Durable Object storage untouched), against \`bench/fake-openai.mjs\` (50 ms to first token, 64 tokens 5 ms apart). C=1: ${turns} turns one after another; C=${concurrency}: ${concurrency} users × ${turnsEach} turns. Added TTFT = API TTFT p50 − the upstream's own TTFT p50 in the same run. Times in ms.`,
    "",
    "| D1 round trip | added TTFT p50 (C=1) | API / upstream TTFT p50 | last token → done p50 / p99 | D1 round trips before the model call (each turn) | added TTFT p50 (C=20) | D1 writes / reads per turn (C=20) | outbox lag p50 / p99 (C=20) | workerd CPU ms/turn (C=20) | errors |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ...runs.map((r) =>
      [
        `${r.rttMs} ms`,
        fmt(r.single.ttft.p50 - r.direct.p50),
        `${fmt(r.single.ttft.p50)} / ${fmt(r.direct.p50)}`,
        `${fmt(r.single.toDone.p50)} / ${fmt(r.single.toDone.p99)}`,
        r.d1BeforeModel.join(", ") || "–",
        fmt(r.loaded.ttft.p50 - r.direct.p50),
        `${fmt(r.loaded.d1WritesPerTurn)} / ${fmt(r.loaded.d1ReadsPerTurn)}`,
        `${fmt(r.loaded.outboxLag.p50)} / ${fmt(r.loaded.outboxLag.p99)}`,
        fmt(r.loaded.cpuMsPerTurn),
        String(r.single.errors.length + r.loaded.errors.length),
      ].join(" | ").replace(/^/, "| ").replace(/$/, " |"),
    ),
    "",
    `Added TTFT at ${rttMs} ms minus at 0 ms: ${fmt(far.single.ttft.p50 - far.direct.p50 - (near.single.ttft.p50 - near.direct.p50))} ms (target: at most 10).`,
    "",
  ].join("\n");
}
