// `npm run bench -- --memory [--streams=300] [--rounds=3] [--idle-seconds=60]`: the workerd
// processes' resident memory under `wrangler dev` before, during and after rounds of concurrent
// streamed turns, and after an idle pause: what a burst of streams leaves behind.
// Each round starts `--streams` conversations at once (start_conversation over SSE, 400 tokens
// 10 ms apart from the fake upstream: about 4 s each) and reads every stream to the end.
import { signedInUsers } from "./load.mjs";
import { startApiOnFakeUpstream } from "./processes.mjs";
import { memoryMiB, workerdPids } from "./workerd-stats.mjs";

const PORT = 8812;
const API = `http://127.0.0.1:${PORT}`;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));


export async function memoryBench({ streams = 300, rounds = 3, idleSeconds = 60 } = {}) {
  const { api, cleanup } = await startApiOnFakeUpstream({ port: PORT, upstreamEnv: { FAKE_TOKENS: "400", FAKE_GAP_MS: "10" }, vars: { MAX_CONCURRENT_GENERATIONS: "1000" } });
  try {
    // One user per 10 streams: the per-user turn rate (100 a minute) is not what is measured.
    const tokens = await signedInUsers(API, Math.ceil(streams / 10), "memory", 7);
    const rows = [{ when: "idle, before", mib: memoryMiB(workerdPids(api.pid)) }];
    for (let round = 1; round <= rounds; round++) {
      let peak = 0;
      const sampler = setInterval(() => (peak = Math.max(peak, memoryMiB(workerdPids(api.pid)))), 200);
      let completed = 0;
      await Promise.all(
        Array.from({ length: streams }, async (_, i) => {
          const response = await fetch(`${API}/start_conversation/`, {
            method: "POST",
            headers: { "Content-Type": "application/json", Accept: "text/event-stream", Authorization: `Bearer ${tokens[i % tokens.length]}` },
            body: JSON.stringify({ content: `memory round ${round}, stream ${i}` }),
          });
          const text = await response.text();
          if (text.includes("event: done")) completed++;
        }),
      );
      clearInterval(sampler);
      rows.push({ when: `round ${round}: peak during ${streams} streams (${completed} completed)`, mib: peak });
      rows.push({ when: `round ${round}: just after`, mib: memoryMiB(workerdPids(api.pid)) });
      await sleep(idleSeconds * 1000);
      rows.push({ when: `round ${round}: after ${idleSeconds} s idle`, mib: memoryMiB(workerdPids(api.pid)) });
    }
    return ["| when | workerd resident memory |", "| --- | --- |", ...rows.map((r) => `| ${r.when} | ${r.mib.toFixed(0)} MiB |`)].join("\n");
  } finally {
    cleanup();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [streams, rounds, idleSeconds] = process.argv.slice(2).map(Number);
  console.log(await memoryBench({ streams: streams || 300, rounds: rounds || 3, idleSeconds: idleSeconds || 60 }));
}
