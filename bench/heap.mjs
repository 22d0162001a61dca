// `npm run bench -- --heap [--streams=200] [--idle-seconds=20]`: what bursts of streams leave in
// the Worker's JavaScript heap under `wrangler dev`. Takes a heap snapshot through the inspector
// (after a full GC) before the bursts and after each one and an idle pause: two bursts of new
// conversations, then one more turn in each conversation of the second. Lists the constructors
// whose retained instances grew most, beside the workerd processes' resident memory.
import { signedInUsers } from "./load.mjs";
import { startApiOnFakeUpstream } from "./processes.mjs";
import { memoryMiB, workerdPids } from "./workerd-stats.mjs";

const PORT = 8817;
const INSPECTOR_PORT = 9239;
const API = `http://127.0.0.1:${PORT}`;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A Chrome DevTools Protocol session with the Worker's isolate. */
async function inspect() {
  const targets = await (await fetch(`http://127.0.0.1:${INSPECTOR_PORT}/json`)).json();
  const target = targets.find((t) => t.webSocketDebuggerUrl) ?? targets[0];
  // The inspector refuses an unknown Origin; Node sends none, but a User-Agent, which it also checks.
  const socket = new WebSocket(target.webSocketDebuggerUrl, { headers: { Origin: "http://localhost" } });
  await new Promise((resolve, reject) => ((socket.onopen = resolve), (socket.onerror = reject)));
  let nextId = 1;
  const pending = new Map();
  const listeners = new Set();
  socket.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.id && pending.has(message.id)) {
      pending.get(message.id)(message);
      pending.delete(message.id);
    } else for (const listener of listeners) listener(message);
  };
  const send = (method, params = {}) =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      const timer = setTimeout(() => reject(new Error(`${method}: no answer from the inspector in 120 s`)), 120_000);
      pending.set(id, (message) => (clearTimeout(timer), message.error ? reject(new Error(`${method}: ${message.error.message}`)) : resolve(message)));
      socket.send(JSON.stringify({ id, method, params }));
    });
  return { send, listeners, close: () => socket.close() };
}

/**
 * Retained JavaScript objects by constructor: count and self size. A session of
 * its own: one left open across an idle pause stops answering.
 */
async function heapByConstructor() {
  const session = await inspect();
  // A snapshot collects garbage first (V8 does so for every heap snapshot).
  const chunks = [];
  const onChunk = (message) => message.method === "HeapProfiler.addHeapSnapshotChunk" && chunks.push(message.params.chunk);
  session.listeners.add(onChunk);
  await session.send("HeapProfiler.takeHeapSnapshot", { reportProgress: false });
  session.listeners.delete(onChunk);
  session.close();
  const snapshot = JSON.parse(chunks.join(""));
  const fields = snapshot.snapshot.meta.node_fields;
  const types = snapshot.snapshot.meta.node_types[0];
  const [typeAt, nameAt, sizeAt] = ["type", "name", "self_size"].map((field) => fields.indexOf(field));
  const byName = new Map();
  let total = 0;
  for (let i = 0; i < snapshot.nodes.length; i += fields.length) {
    const type = types[snapshot.nodes[i + typeAt]];
    const name = type === "object" || type === "closure" ? snapshot.strings[snapshot.nodes[i + nameAt]] : `(${type})`;
    const size = snapshot.nodes[i + sizeAt];
    total += size;
    const entry = byName.get(name) ?? { count: 0, size: 0 };
    entry.count++;
    entry.size += size;
    byName.set(name, entry);
  }
  return { total, byName };
}

/** `streams` streamed turns at once: new conversations, or one more turn in each of `conversations`. */
async function burst(tokens, streams, round, conversations = null) {
  let completed = 0;
  const ids = [];
  await Promise.all(
    Array.from({ length: streams }, async (_, i) => {
      const path = conversations ? `/conversations/${conversations[i]}/add_message/` : "/start_conversation/";
      const response = await fetch(`${API}${path}`, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "text/event-stream", Authorization: `Bearer ${tokens[i % tokens.length]}` },
        body: JSON.stringify({ content: `heap round ${round}, stream ${i}` }),
      });
      const text = await response.text();
      if (text.includes("event: done")) completed++;
      ids[i] = /"conversation":\{"id":"([^"]+)"/.exec(text)?.[1];
    }),
  );
  return { completed, ids };
}

export async function heapBench({ streams = 200, idleSeconds = 20 } = {}) {
  const { api, cleanup } = await startApiOnFakeUpstream({
    port: PORT,
    upstreamEnv: { FAKE_TOKENS: "500", FAKE_GAP_MS: "5" },
    vars: { MAX_CONCURRENT_GENERATIONS: "1000" },
    devArgs: ["--inspector-port", String(INSPECTOR_PORT)],
  });
  try {
    // One user per 10 streams: the per-user turn rate (100 a minute) is not what is measured.
    const tokens = await signedInUsers(API, Math.ceil(streams / 10), "heap", 6);
    await burst(tokens, 10, 0); // warm-up: code compiled, first objects made
    const rows = [];
    const before = await heapByConstructor();
    rows.push(["before", memoryMiB(workerdPids(api.pid)), before.total]);
    const snapshots = [before];
    let conversations = null;
    for (let round = 1; round <= 3; round++) {
      // Rounds 1 and 2 start new conversations; round 3 adds a turn to each of round 2's.
      const { completed, ids } = await burst(tokens, streams, round, round === 3 ? conversations : null);
      conversations = ids;
      await sleep(idleSeconds * 1000);
      const after = await heapByConstructor();
      snapshots.push(after);
      const what = round === 3 ? `${streams} more turns in round 2's conversations` : `${streams} new conversations`;
      rows.push([`after round ${round}: ${what} (${completed} completed), ${idleSeconds} s idle`, memoryMiB(workerdPids(api.pid)), after.total]);
    }
    const last = snapshots.at(-1);
    const grown = [...last.byName]
      .map(([name, { count, size }]) => ({ name, count, size, countDelta: count - (before.byName.get(name)?.count ?? 0), sizeDelta: size - (before.byName.get(name)?.size ?? 0) }))
      .sort((a, b) => b.sizeDelta - a.sizeDelta)
      .slice(0, 15);
    const mib = (bytes) => (bytes / 2 ** 20).toFixed(1);
    return [
      `Bursts of ${streams} streamed turns at once (500 tokens 5 ms apart), each followed by ${idleSeconds} s idle; heap snapshots (each after a full GC).`,
      "",
      "| when | workerd resident | JS heap (snapshot) |",
      "| --- | --- | --- |",
      ...rows.map(([when, resident, heap]) => `| ${when} | ${resident.toFixed(0)} MiB | ${mib(heap)} MiB |`),
      "",
      "Constructors that grew most from before the first burst to after the last:",
      "",
      "| constructor | retained now | growth |",
      "| --- | --- | --- |",
      ...grown.map((g) => `| \`${g.name.slice(0, 60)}\` | ${g.count} (${mib(g.size)} MiB) | +${g.countDelta} (+${mib(g.sizeDelta)} MiB) |`),
    ].join("\n");
  } finally {
    cleanup();
  }
}
