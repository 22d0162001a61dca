// A small OpenAI-compatible server for benchmarks: POST /v1/chat/completions, streaming or not.
// No dependencies beyond Node. Knobs (environment or query-free defaults):
//   FAKE_TTFT_MS (50)  time to the first token    FAKE_GAP_MS (5)   gap between tokens
//   FAKE_TOKENS (64)   tokens per reply           FAKE_FAIL_RATE (0) share of requests answered 500
//   FAKE_PORT (0 = any free port; the chosen one is printed as `listening <port>`)
// GET /stats returns every request's arrival time (ms since start) and the messages it carried.
// POST /mode with {"mode": "ok" | "503" | "hang"} switches how it answers from then on: normally,
// HTTP 503 at once, or never (the connection stays open until the client gives up).
import { createServer } from "node:http";

const knobs = {
  ttftMs: Number(process.env.FAKE_TTFT_MS ?? 50),
  gapMs: Number(process.env.FAKE_GAP_MS ?? 5),
  tokens: Number(process.env.FAKE_TOKENS ?? 64),
  failRate: Number(process.env.FAKE_FAIL_RATE ?? 0),
};
let mode = "ok";
const started = performance.now();
const requests = [];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const server = createServer(async (req, res) => {
  if (req.method === "GET" && req.url === "/stats") {
    res.writeHead(200, { "Content-Type": "application/json" });
    return res.end(JSON.stringify({ knobs, requests }));
  }
  if (req.method === "POST" && req.url === "/mode") {
    let raw = "";
    for await (const chunk of req) raw += chunk;
    mode = JSON.parse(raw).mode;
    res.writeHead(204);
    return res.end();
  }
  if (req.method !== "POST" || !req.url.endsWith("/chat/completions")) {
    res.writeHead(404, { "Content-Type": "application/json" });
    return res.end(JSON.stringify({ error: { message: "not found" } }));
  }
  const arrivedMs = performance.now() - started;
  let raw = "";
  for await (const chunk of req) raw += chunk;
  const body = JSON.parse(raw);
  requests.push({ arrived_ms: Math.round(arrivedMs * 10) / 10, arrived_at: Date.now(), messages: body.messages });

  if (mode === "hang") return;
  if (mode === "503") {
    res.writeHead(503, { "Content-Type": "application/json" });
    return res.end(JSON.stringify({ error: { message: "overloaded", type: "server_error" } }));
  }
  if (Math.random() < knobs.failRate) {
    res.writeHead(500, { "Content-Type": "application/json" });
    return res.end(JSON.stringify({ error: { message: "injected failure", type: "server_error" } }));
  }
  const id = `chatcmpl-fake-${requests.length}`;
  const created = Math.floor(Date.now() / 1000);
  const tokens = Array.from({ length: knobs.tokens }, (_, i) => (i === 0 ? "tok0" : ` tok${i}`));
  const usage = { prompt_tokens: body.messages.length * 10, completion_tokens: knobs.tokens, total_tokens: body.messages.length * 10 + knobs.tokens };

  if (!body.stream) {
    await sleep(knobs.ttftMs + knobs.gapMs * (knobs.tokens - 1));
    res.writeHead(200, { "Content-Type": "application/json" });
    return res.end(JSON.stringify({ id, object: "chat.completion", created, model: body.model, choices: [{ index: 0, message: { role: "assistant", content: tokens.join("") }, finish_reason: "stop" }], usage }));
  }
  res.writeHead(200, { "Content-Type": "text/event-stream", "Cache-Control": "no-cache" });
  res.flushHeaders();
  const send = (data) => res.write(`data: ${typeof data === "string" ? data : JSON.stringify(data)}\n\n`);
  const chunk = (delta, finish = null) => ({ id, object: "chat.completion.chunk", created, model: body.model, choices: [{ index: 0, delta, finish_reason: finish }] });
  await sleep(knobs.ttftMs);
  for (let i = 0; i < tokens.length; i++) {
    if (i > 0) await sleep(knobs.gapMs);
    send(chunk(i === 0 ? { role: "assistant", content: tokens[i] } : { content: tokens[i] }));
  }
  send(chunk({}, "stop"));
  send({ id, object: "chat.completion.chunk", created, model: body.model, choices: [], usage });
  send("[DONE]");
  res.end();
});

server.keepAliveTimeout = 60_000;
server.listen(Number(process.env.FAKE_PORT ?? 0), "127.0.0.1", () => {
  console.log(`listening ${server.address().port}`);
});
