// `npm run bench -- --profile [--conversations=20] [--turns=3]`: where the Worker's CPU goes in
// streamed turns. Starts the API under `wrangler dev --inspector-port` against the fake upstream,
// warms it up, then records a V8 CPU profile of the Worker's isolate (the Worker and its Durable
// Objects share it) over C conversations × T `add_message` turns over SSE, one user per
// conversation, and reads the workerd processes' CPU time from /proc around the same window.
// Prints the split (JavaScript in our isolate vs everything else workerd does: local D1, the dev
// proxy, sockets) and the functions with the most self time, grouped by module.
import WebSocket from "ws";
import { requestJson } from "./load.mjs";
import { startApiOnFakeUpstream } from "./processes.mjs";
import { cpuSeconds, workerdPids } from "./workerd-stats.mjs";

const PORT = 8813;
const INSPECTOR_PORT = 9233;
const API = `http://127.0.0.1:${PORT}`;

/** A minimal Chrome DevTools Protocol client over the inspector's WebSocket. */
async function connectInspector() {
  const deadline = Date.now() + 30_000;
  let targets = [];
  while (!targets.length && Date.now() < deadline) {
    try {
      targets = await (await fetch(`http://127.0.0.1:${INSPECTOR_PORT}/json`)).json();
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
  // `ws`, not Node's built-in WebSocket: wrangler's inspector proxy refuses the latter.
  const socket = new WebSocket(targets[0].webSocketDebuggerUrl);
  await new Promise((resolve, reject) => {
    socket.on("open", resolve);
    socket.on("error", reject);
  });
  let nextId = 1;
  const pending = new Map();
  socket.on("message", (data) => {
    const message = JSON.parse(data);
    pending.get(message.id)?.(message);
    pending.delete(message.id);
  });
  const send = (method, params = {}) =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      pending.set(id, (message) => (message.error ? reject(new Error(message.error.message)) : resolve(message.result)));
      socket.send(JSON.stringify({ id, method, params }));
    });
  return { send, close: () => socket.close() };
}

const json = (pathname, options) => requestJson(API, pathname, options);

async function streamedTurn(token, conversationId, index) {
  const response = await fetch(`${API}/conversations/${conversationId}/add_message/`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "text/event-stream", Authorization: `Bearer ${token}` },
    body: JSON.stringify({ content: `Profiled turn ${index}` }),
  });
  const text = await response.text();
  if (!text.includes('"status":"Completed"')) throw new Error(`turn did not complete: ${response.status} ${text.slice(-300)}`);
}

/** Self time per function and per module (esbuild marks each module with a `// path` comment). */
function summarize(profile, bundleScriptId, bundleSource) {
  const moduleStarts = [];
  if (bundleSource) {
    bundleSource.split("\n").forEach((line, index) => {
      const match = /^\/\/ (\S+\.(?:ts|js|mjs|cjs|json))$/.exec(line);
      if (match) moduleStarts.push({ line: index, module: match[1].replace(/^.*node_modules\//, "").replace(/^\.\.\/\.\.\//, "") });
    });
  }
  const moduleOf = (line) => {
    let found = "(bundle)";
    for (const start of moduleStarts) {
      if (start.line > line) break;
      found = start.module;
    }
    return found;
  };
  const intervals = new Map();
  profile.samples.forEach((nodeId, index) => intervals.set(nodeId, (intervals.get(nodeId) ?? 0) + (profile.timeDeltas[index + 1] ?? 0)));
  const byFunction = new Map();
  const byModule = new Map();
  let total = 0;
  for (const node of profile.nodes) {
    const us = intervals.get(node.id) ?? 0;
    if (!us) continue;
    const frame = node.callFrame;
    const module = frame.scriptId === bundleScriptId ? moduleOf(frame.lineNumber) : frame.url ? `(runtime) ${frame.url}` : frame.functionName || "(native)";
    if (frame.functionName === "(idle)") continue;
    total += us;
    const key = `${frame.functionName || "(anonymous)"}  ${module}`;
    byFunction.set(key, (byFunction.get(key) ?? 0) + us);
    const group = module.split("/").slice(0, module.startsWith("@") ? 2 : 1).join("/").replace(/^src$/, module);
    byModule.set(group, (byModule.get(group) ?? 0) + us);
  }
  // SQL on the objects' own storage is one native function, `exec`: charge it to its callers.
  const parentOf = new Map();
  for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node);
  const sqlCallers = new Map();
  for (const node of profile.nodes) {
    if (node.callFrame.functionName !== "exec") continue;
    const caller = parentOf.get(node.id)?.callFrame;
    const key = caller ? `${caller.functionName || "(anonymous)"}  ${caller.scriptId === bundleScriptId ? moduleOf(caller.lineNumber) : caller.url}` : "?";
    sqlCallers.set(key, (sqlCallers.get(key) ?? 0) + (intervals.get(node.id) ?? 0));
  }
  const top = (map, n) => [...map].sort((a, b) => b[1] - a[1]).slice(0, n);
  return { total, functions: top(byFunction, 30), modules: top(byModule, 20), sqlCallers: top(sqlCallers, 12) };
}

export async function profileTurns({ conversations = 20, turns = 3 } = {}) {
  const { api, cleanup } = await startApiOnFakeUpstream({ port: PORT, devArgs: ["--inspector-port", String(INSPECTOR_PORT), "--minify=false"] });
  try {
    const users = [];
    for (let i = 0; i < conversations; i++) {
      const clientIp = `10.9.1.${i}`;
      const email = `profile-${i}-${Date.now()}@example.com`;
      await json("/auth/register/", { body: { email, password: "profile password 1" }, clientIp });
      const { access } = await json("/auth/token/", { body: { email, password: "profile password 1" }, clientIp });
      const { id } = await json("/conversations/", { token: access, body: { title: `profiled ${i}` } });
      users.push({ access, conversationId: id });
    }
    // Warm-up: compile the Worker, start every object.
    await Promise.all(users.map(({ access, conversationId }) => streamedTurn(access, conversationId, 0)));

    const inspector = await connectInspector();
    await inspector.send("Debugger.enable").catch(() => {});
    await inspector.send("Profiler.enable");
    await inspector.send("Profiler.setSamplingInterval", { interval: 200 });
    const pids = workerdPids(api.pid);
    const cpuBefore = cpuSeconds(pids) * 1000;
    await inspector.send("Profiler.start");
    const started = performance.now();
    await Promise.all(
      users.map(async ({ access, conversationId }) => {
        for (let t = 1; t <= turns; t++) await streamedTurn(access, conversationId, t);
      }),
    );
    const wall = performance.now() - started;
    const { profile } = await inspector.send("Profiler.stop");
    const cpuTotal = cpuSeconds(pids) * 1000 - cpuBefore;
    // The Worker's bundle; the runtime's own modules (`cloudflare-internal:…`, `node-internal:…`) are named by their URL.
    const scriptId = profile.nodes.find((node) => node.callFrame.url.endsWith("index.js"))?.callFrame.scriptId;
    const bundleSource = scriptId ? (await inspector.send("Debugger.getScriptSource", { scriptId }).catch(() => ({}))).scriptSource : undefined;
    inspector.close();

    const turnCount = conversations * turns;
    const { total, functions, modules, sqlCallers } = summarize(profile, scriptId, bundleSource);
    const ms = (us) => (us / 1000 / turnCount).toFixed(2);
    return [
      `${conversations} conversations × ${turns} streamed \`add_message\` turns in ${(wall / 1000).toFixed(1)} s.`,
      "",
      `workerd CPU per turn (all processes, /proc): ${(cpuTotal / turnCount).toFixed(1)} ms; of it, sampled in the Worker's isolate (JavaScript, GC and the runtime calls it makes): ${ms(total)} ms. The profiler samples wall time, and workerd does not mark its idle waits: with few conversations the isolate mostly waits and the samples overcount; with 20 or more it is busy and they approximate its CPU.`,
      "",
      "| module | self ms per turn |",
      "| --- | --- |",
      ...modules.map(([module, us]) => `| ${module} | ${ms(us)} |`),
      "",
      "| function | self ms per turn |",
      "| --- | --- |",
      ...functions.map(([name, us]) => `| \`${name}\` | ${ms(us)} |`),
      "",
      "| SQL (`exec`) called from | ms per turn |",
      "| --- | --- |",
      ...sqlCallers.map(([name, us]) => `| \`${name}\` | ${ms(us)} |`),
    ].join("\n");
  } finally {
    cleanup();
  }
}

