// `npm run bench -- --client=http [--conversations=30]`: time to first token as a plain client
// sees it, split at the upstream. Node's own `http` with a keep-alive agent (not fetch), a fresh
// user per conversation (so its user object and conversation object start cold, as real traffic's
// do), one `start_conversation` and then one `add_message`, each over SSE, reported separately.
// The fake upstream stamps each request's arrival, so the time before the model call (ours) and
// after it (the upstream's 50 ms plus streaming back) are measured apart; "direct" is the same
// request straight to the upstream in the same run.
import http from "node:http";
import { percentiles } from "./load.mjs";
import { startApiOnFakeUpstream } from "./processes.mjs";

const PORT = 8811;
const API = `http://127.0.0.1:${PORT}`;

const agent = new http.Agent({ keepAlive: true });
let clients = 0;

/** One request over keep-alive http; for SSE, the time of the first delta frame since sending. */
function request(base, method, pathname, { token, body, sse } = {}) {
  const clientIp = `10.8.${(clients >> 8) & 255}.${clients++ & 255}`;
  return new Promise((resolve, reject) => {
    const sentAt = Date.now();
    const t0 = performance.now();
    const req = http.request(
      `${base}${pathname}`,
      {
        method,
        agent,
        headers: {
          "Content-Type": "application/json",
          "CF-Connecting-IP": clientIp,
          ...(token ? { Authorization: `Bearer ${token}` } : {}),
          ...(sse ? { Accept: "text/event-stream" } : {}),
        },
      },
      (res) => {
        let text = "";
        let firstDelta;
        res.on("data", (chunk) => {
          const piece = chunk.toString();
          if (firstDelta === undefined && (piece.includes("event: delta") || piece.includes('"content":"tok'))) firstDelta = performance.now() - t0;
          text += piece;
        });
        res.on("end", () => resolve({ status: res.statusCode, text, firstDelta, sentAt }));
      },
    );
    req.on("error", reject);
    req.end(body ? JSON.stringify(body) : undefined);
  });
}

const fmt = (n) => n.toFixed(1);

export async function ttftBreakdown(conversations = 30) {
  const { upstream, cleanup } = await startApiOnFakeUpstream({ port: PORT });
  try {
    let seen = 0;
    const arrivals = async () => {
      const { requests } = await (await fetch(`${upstream}/stats`)).json();
      const fresh = requests.slice(seen);
      seen = requests.length;
      return fresh;
    };
    const rows = { start: [], add: [], direct: [] };
    // Two warm-up conversations compile the Worker; they are not counted.
    for (let i = 0; i < conversations + 2; i++) {
      const email = `ttft-${i}-${Date.now()}@example.com`;
      await request(API, "POST", "/auth/register/", { body: { email, password: "bench password 1" } });
      const { access } = JSON.parse((await request(API, "POST", "/auth/token/", { body: { email, password: "bench password 1" } })).text);
      await arrivals();
      const start = await request(API, "POST", "/start_conversation/", { token: access, body: { content: "Hello there" }, sse: true });
      const [startArrival] = await arrivals();
      const conversationId = JSON.parse(start.text.split("\n").find((line) => line.startsWith("data: ")).slice(6)).conversation.id;
      const add = await request(API, "POST", `/conversations/${conversationId}/add_message/`, { token: access, body: { content: "And again" }, sse: true });
      const [addArrival] = await arrivals();
      const direct = await request(upstream, "POST", "/v1/chat/completions", { body: { model: "gpt-4", stream: true, messages: [{ role: "user", content: "Hello there" }] } });
      await arrivals();
      if (i < 2) continue;
      rows.start.push({ before: startArrival.arrived_at - start.sentAt, ttft: start.firstDelta });
      rows.add.push({ before: addArrival.arrived_at - add.sentAt, ttft: add.firstDelta });
      rows.direct.push({ before: 0, ttft: direct.firstDelta });
    }
    const ttft = (list) => percentiles(list.map((r) => r.ttft));
    const directP50 = ttft(rows.direct).p50;
    const line = (name, list) =>
      `| ${name} | ${fmt(ttft(list).p50)} / ${fmt(ttft(list).p95)} | ${fmt(ttft(list).p50 - directP50)} | ${fmt(percentiles(list.map((r) => r.before)).p50)} |`;
    return [
      `Plain \`http\` client (keep-alive agent), a fresh user per conversation, ${conversations} conversations one after another: \`start_conversation\`, then \`add_message\`, both SSE. "Before the model call": from sending the request to the fake upstream receiving the model request (wall clock, one machine).`,
      "",
      "| request | TTFT p50 / p95 (ms) | added TTFT p50 vs direct (ms) | before the model call p50 (ms) |",
      "| --- | --- | --- | --- |",
      line("`start_conversation`", rows.start),
      line("`add_message`", rows.add),
      `| direct to the upstream | ${fmt(directP50)} / ${fmt(ttft(rows.direct).p95)} | – | – |`,
    ].join("\n");
  } finally {
    cleanup();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) console.log(await ttftBreakdown(Number(process.argv[2] ?? 30)));
