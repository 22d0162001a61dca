// The floor for anything under `wrangler dev`: a Worker that only pipes the upstream's stream
// through, and answers `GET /health` with a constant (a request that does nothing at all). The
// benchmarks run it beside the API to show what the runtime itself costs.
export default {
  async fetch(request, env) {
    if (request.method === "GET") return Response.json({ status: "ok" });
    const upstream = await fetch(`${env.UPSTREAM}/v1/chat/completions`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: await request.text(),
    });
    return new Response(upstream.body, { status: upstream.status, headers: { "Content-Type": "text/event-stream" } });
  },
};
