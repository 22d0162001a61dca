// `npm run bench -- --heap [--streams=200]`: what a burst of streams leaves in the Worker's
// JavaScript heap under `wrangler dev`. Takes a heap snapshot through the inspector (after a full
// GC) before a burst of streamed turns and again after it and an idle pause, and lists the
// constructors whose retained instances grew most, with the workerd processes' resident memory.
import { requestJson } from "./load.mjs";
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
  const socket = new WebSocket(target.webSocketDebuggerUrl);
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
    new Promise((resolve) => {
      const id = nextId++;
      pending.set(id, resolve);
      socket.send(JSON.stringify({ id, method, params }));
    });
  return { send, listeners, close: () => socket.close() };
}

/** Retained JavaScript objects by constructor: count and self size, after a full GC. */
async function heapByConstructor(session) {
  await session.send("HeapProfiler.enable");
  await session.send("HeapProfiler.collectGarbage");
  const chunks = [];
  const onChunk = (message) => message.method === "HeapProfiler.addHeapSnapshotChunk" && chunks.push(message.params.chunk);
  session.listeners.add(onChunk);
  await session.send("HeapProfiler.takeHeapSnapshot", { reportProgress: false });
  session.listeners.delete(onChunk);
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

async function burst(tokens, streams, round) {
  let completed = 0;
  await Promise.all(
    Array.from({ length: streams }, async (_, i) => {
      const response = await fetch(`${API}/start_conversation/`, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "text/event-stream", Authorization: `Bearer ${tokens[i % tokens.length]}` },
        body: JSON.stringify({ content: `heap round ${round}, stream ${i}` }),
      });
      if ((await response.text()).includes("event: done")) completed++;
    }),
  );
  return completed;
}

export async function heapBench({ streams = 200, idleSeconds = 20 } = {}) {
  const { api, cleanup } = await startApiOnFakeUpstream({
    port: PORT,
    upstreamEnv: { FAKE_TOKENS: "500", FAKE_GAP_MS: "5" },
    vars: { MAX_CONCURRENT_GENERATIONS: "1000" },
    devArgs: ["--inspector-port", String(INSPECTOR_PORT)],
  });
  const session = await inspect();
  try {
    const tokens = [];
    for (let u = 0; u < Math.ceil(streams / 10); u++) {
      const clientIp = `10.6.${u >> 8}.${u & 255}`;
      const body = { email: `heap-${u}@example.com`, password: "bench password 1" };
      await requestJson(API, "/auth/register/", { body, clientIp });
      tokens.push((await requestJson(API, "/auth/token/", { body, clientIp })).access);
    }
    await burst(tokens, 10, 0); // warm-up: code compiled, first objects made
    const rows = [];
    const before = await heapByConstructor(session);
    rows.push(["before", memoryMiB(workerdPids(api.pid)), before.total]);
    const snapshots = [before];
    for (let round = 1; round <= 2; round++) {
      const completed = await burst(tokens, streams, round);
      await sleep(idleSeconds * 1000);
      const after = await heapByConstructor(session);
      snapshots.push(after);
      rows.push([`after round ${round} (${completed} of ${streams} completed) and ${idleSeconds} s idle`, memoryMiB(workerdPids(api.pid)), after.total]);
    }
    const last = snapshots.at(-1);
    const grown = [...last.byName]
      .map(([name, { count, size }]) => ({ name, count, size, countDelta: count - (before.byName.get(name)?.count ?? 0), sizeDelta: size - (before.byName.get(name)?.size ?? 0) }))
      .sort((a, b) => b.sizeDelta - a.sizeDelta)
      .slice(0, 15);
    const mib = (bytes) => (bytes / 2 ** 20).toFixed(1);
    return [
      `${streams} streamed start_conversation turns at once (500 tokens 5 ms apart), twice, each followed by ${idleSeconds} s idle; heap snapshots after a full GC.`,
      "",
      "| when | workerd resident | JS heap (snapshot) |",
      "| --- | --- | --- |",
      ...rows.map(([when, resident, heap]) => `| ${when} | ${resident.toFixed(0)} MiB | ${mib(heap)} MiB |`),
      "",
      "Constructors that grew most from before the first burst to after the second:",
      "",
      "| constructor | retained now | growth |",
      "| --- | --- | --- |",
      ...grown.map((g) => `| \`${g.name.slice(0, 60)}\` | ${g.count} (${mib(g.size)} MiB) | +${g.countDelta} (+${mib(g.sizeDelta)} MiB) |`),
    ].join("\n");
  } finally {
    session.close();
    cleanup();
  }
}
