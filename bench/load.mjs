// Requests and load helpers shared by the benchmarks.
import http from "node:http";

export function percentiles(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] : NaN);
  return { n: sorted.length, p50: at(0.5), p95: at(0.95), p99: at(0.99), max: sorted.at(-1) ?? NaN };
}

/**
 * One GET of `url` on a kept-alive connection of `agent`, body read; resolves to the status. The
 * load runs on Node's http rather than fetch: undici's fetch costs the client about 2 ms of CPU
 * per request, taken from the same 2 cores as the server's.
 */
function getStatus(agent, url, token) {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent, headers: token ? { Authorization: `Bearer ${token}` } : {} }, (response) => {
        response.resume();
        response.on("end", () => resolve(response.statusCode));
      })
      .on("error", reject);
  });
}

/** `connections` clients sending GET `makePath()` to `base` one after another for `seconds`. */
export async function loadEndpoint(base, token, makePath, seconds, connections = 50) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const latencies = [];
  let errors = 0;
  const deadline = performance.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (performance.now() < deadline) {
        const t0 = performance.now();
        if ((await getStatus(agent, `${base}${makePath()}`, token)) !== 200) errors++;
        latencies.push(performance.now() - t0);
      }
    }),
  );
  agent.destroy();
  return { rps: latencies.length / seconds, latency: percentiles(latencies), errors };
}

/**
 * One JSON request to the API at `base`; throws unless it succeeds. `clientIp` is the address the
 * Worker sees (CF-Connecting-IP): one per simulated client, so per-address limits see many clients.
 */
export async function requestJson(base, pathname, { token, body, method, clientIp } = {}) {
  const response = await fetch(`${base}${pathname}`, {
    method: method ?? (body ? "POST" : "GET"),
    headers: {
      "Content-Type": "application/json",
      ...(token ? { Authorization: `Bearer ${token}` } : {}),
      ...(clientIp ? { "CF-Connecting-IP": clientIp } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${pathname}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/** Reads an SSE body, calling onEvent(event, data, atMs) for every frame. */
export async function readSse(response, onEvent) {
  const decoder = new TextDecoder();
  let buffer = "";
  for await (const chunk of response.body) {
    const at = performance.now();
    buffer += decoder.decode(chunk, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) !== -1) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message";
      let data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) event = line.slice(7);
        else if (line.startsWith("data: ")) data = line.slice(6);
      }
      if (data) onEvent(event, data, at);
    }
  }
}

/** One streamed `add_message` through the API at `api`: TTFT, total time, gaps between deltas, last delta → final frame, outcome. */
export async function streamedTurn(api, token, conversationId, index) {
  const t0 = performance.now();
  const response = await fetch(`${api}/conversations/${conversationId}/add_message/`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "text/event-stream", Authorization: `Bearer ${token}` },
    body: JSON.stringify({ content: `Benchmark turn ${index}: tell me something.` }),
  });
  if (response.status !== 200) return { error: `HTTP ${response.status} ${await response.text()}` };
  let first;
  let last;
  let final;
  let outcome = "no final frame";
  const gaps = [];
  await readSse(response, (event, data, at) => {
    if (event === "delta") {
      if (first === undefined) first = at;
      else gaps.push(at - last);
      last = at;
    } else if (event === "done" || event === "error") {
      final = at;
      outcome = event === "done" ? JSON.parse(data).ai_response.status : `error: ${JSON.parse(data).code}`;
    }
  });
  const total = performance.now() - t0;
  return outcome === "Completed" ? { ttft: first - t0, total, gaps, toDone: final - last } : { error: outcome };
}

/**
 * `count` users signed up and in, each from its own client address (sign-up is rate limited per
 * address); resolves to their access tokens. `name` prefixes their emails, `subnet` their addresses.
 */
export async function signedInUsers(base, count, name, subnet) {
  const tokens = [];
  for (let u = 0; u < count; u++) {
    const clientIp = `10.${subnet}.${u >> 8}.${u & 255}`;
    const body = { email: `${name}-${u}@example.com`, password: "bench password 1" };
    await requestJson(base, "/auth/register/", { body, clientIp });
    tokens.push((await requestJson(base, "/auth/token/", { body, clientIp })).access);
  }
  return tokens;
}
