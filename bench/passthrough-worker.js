// The floor for anything under `wrangler dev`: a Worker that only pipes the upstream's stream
// through. The benchmark runs it beside the API to show what the runtime itself costs.
export default {
  async fetch(request, env) {
    const upstream = await fetch(`${env.UPSTREAM}/v1/chat/completions`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: await request.text(),
    });
    return new Response(upstream.body, { status: upstream.status, headers: { "Content-Type": "text/event-stream" } });
  },
};
