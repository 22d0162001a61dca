// A small MCP server for `npm run dev` and the tests, with the maintained SDK's server over
// Streamable HTTP (stateless: a server and transport per request), on 127.0.0.1 only.
//   node scripts/mcp-demo.mjs [port]     (default 8795; 0 picks a free one, printed on stdout)
// Point MCP_SERVERS at it, e.g. in .dev.vars:
//   MCP_SERVERS='[{"name":"demo","url":"http://127.0.0.1:8795/mcp","require_approval":["send_email"]}]'
import { createServer } from "node:http";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { z } from "zod";

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const text = (value) => ({ content: [{ type: "text", text: String(value) }] });

function demoServer() {
  const server = new McpServer({ name: "genai-edge-demo", version: "1.0.0" });
  server.registerTool("add", { description: "Adds two numbers.", inputSchema: { a: z.number(), b: z.number() } }, async ({ a, b }) => text(a + b));
  server.registerTool("echo", { description: "Says the text back.", inputSchema: { text: z.string() } }, async ({ text: said }) => text(said));
  server.registerTool("utc_time", { description: "The current UTC time (ISO 8601).", inputSchema: {} }, async () => text(new Date().toISOString()));
  server.registerTool("sleep", { description: "Waits, then says how long.", inputSchema: { ms: z.number().int().min(0).max(600_000) } }, async ({ ms }) => {
    await sleep(ms);
    return text(`slept ${ms} ms`);
  });
  server.registerTool("fail", { description: "Always fails with the message.", inputSchema: { message: z.string() } }, async ({ message }) => ({ ...text(message), isError: true }));
  server.registerTool("lorem", { description: "Returns that many bytes of text.", inputSchema: { bytes: z.number().int().min(0).max(10_000_000) } }, async ({ bytes }) => text("lorem ipsum ".repeat(Math.ceil(bytes / 12)).slice(0, bytes)));
  server.registerTool("html", { description: "Returns a hostile snippet (for share page tests).", inputSchema: {} }, async () => text(`<img src=x onerror="alert('tool')"><script>alert('tool')</script>`));
  server.registerTool(
    "send_email",
    { description: "Pretends to send an email (needs the user's approval when configured so).", inputSchema: { to: z.string(), subject: z.string() } },
    async ({ to, subject }) => text(`demo: an email "${subject}" to ${to} would have been sent`),
  );
  return server;
}

async function readJson(request) {
  const chunks = [];
  for await (const chunk of request) chunks.push(chunk);
  return chunks.length ? JSON.parse(Buffer.concat(chunks).toString("utf8")) : undefined;
}

/** Serves the demo on `port` (0: any free one); resolves with the listening server. */
export function startMcpDemo(port = 8795) {
  const http = createServer(async (request, response) => {
    const { pathname } = new URL(request.url, "http://x");
    // A server that accepts the connection and never answers (for the tests of a hung server).
    if (pathname === "/hang") return;
    if (pathname !== "/mcp") return response.writeHead(404).end();
    if (request.method !== "POST") return response.writeHead(405, { Allow: "POST" }).end();
    try {
      const server = demoServer();
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
      response.on("close", () => {
        void transport.close();
        void server.close();
      });
      await server.connect(transport);
      await transport.handleRequest(request, response, await readJson(request));
    } catch (error) {
      if (!response.headersSent) response.writeHead(400, { "Content-Type": "application/json" }).end(JSON.stringify({ jsonrpc: "2.0", error: { code: -32700, message: String(error) }, id: null }));
    }
  });
  return new Promise((resolve) => http.listen(port, "127.0.0.1", () => resolve(http)));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const http = await startMcpDemo(Number(process.argv[2] ?? 8795));
  console.log(`MCP demo server on http://127.0.0.1:${http.address().port}/mcp`);
}
