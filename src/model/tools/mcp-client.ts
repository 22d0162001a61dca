import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ErrorCode, McpError } from "@modelcontextprotocol/sdk/types.js";
import { CfWorkerJsonSchemaValidator } from "@modelcontextprotocol/sdk/validation/cfworker-provider.js";
import { log } from "../../lib/log";
import { type McpServer, needsApproval } from "./mcp-config";

/** A tool of a configured MCP server, as the model is offered it (`name` is `<server>__<tool>`). */
export interface ServerTool {
  name: string;
  description?: string;
  parameters: Record<string, unknown>;
  server: string;
  tool: string;
  needsApproval: boolean;
}

/** What a tool call gave back: its text, or why it failed (both go to the model). */
export type ToolOutcome = { output: string } | { error: string };

/** A tool list older than this is refreshed in the background; the turn meanwhile uses the one it has. */
const TOOL_LIST_TTL_MS = 60_000;
/** A server that could not list its tools is not asked again for this long: turns do not wait on it. */
const UNAVAILABLE_FOR_MS = 30_000;
/** Listing tools comes before a turn's model call: it may never hold the first token for long. */
const LIST_TIMEOUT_MS = 5_000;
const CLIENT_INFO = { name: "genai-edge", version: "0.1.0" };

/*
 * Per isolate: one connected client per server (an MCP session costs two requests to open), and
 * each server's tool list. Both are dropped when a call fails, so a restarted server gets a new
 * session.
 */
const clients = new Map<string, Promise<Client>>();
const toolLists = new Map<string, { at: number; tools: Promise<ServerTool[]>; failed: boolean }>();

/**
 * Only POSTs reach the server: the standalone GET stream (server-initiated messages, which we do
 * not use) would outlive the request that opened it, and a Worker may not read it from another.
 */
const postOnly: typeof fetch = (input, init) => (init?.method === "GET" ? Promise.resolve(new Response(null, { status: 405 })) : fetch(input, init));

function clientFor(server: McpServer): Promise<Client> {
  const key = server.url.href;
  let client = clients.get(key);
  if (!client) {
    // Redirects are not followed: only the configured URL is ever called.
    const transport = new StreamableHTTPClientTransport(server.url, { requestInit: { headers: server.headers, redirect: "manual" }, fetch: postOnly });
    // The SDK's default validator (Ajv) compiles schemas with `new Function`, which Workers forbid.
    const connecting = new Client(CLIENT_INFO, { jsonSchemaValidator: new CfWorkerJsonSchemaValidator() });
    client = connecting.connect(transport, { timeout: LIST_TIMEOUT_MS }).then(() => connecting);
    client.catch(() => clients.delete(key));
    clients.set(key, client);
  }
  return client;
}

function forget(server: McpServer): void {
  const client = clients.get(server.url.href);
  clients.delete(server.url.href);
  void client?.then((c) => c.close()).catch(() => undefined);
}

/**
 * A server's tools from the isolate's cache: a list older than TOOL_LIST_TTL_MS is still used
 * while a fresh one is fetched; only the first listing (or one after UNAVAILABLE_FOR_MS of
 * failure) is waited for.
 */
function toolsOf(server: McpServer): Promise<ServerTool[]> {
  const cached = toolLists.get(server.url.href);
  const age = cached ? Date.now() - cached.at : Infinity;
  if (cached?.failed) return age < UNAVAILABLE_FOR_MS ? cached.tools : fetchTools(server);
  if (cached && age >= TOOL_LIST_TTL_MS) {
    cached.at = Date.now();
    // Swapped in only once it arrives: until then, and if it fails, turns keep the list they had.
    void fetchTools(server, true).catch(() => undefined);
  }
  return cached?.tools ?? fetchTools(server);
}

/** Lists a server's tools; `refreshing`: a list is cached, and this one replaces it only when it arrives. */
function fetchTools(server: McpServer, refreshing = false): Promise<ServerTool[]> {
  const tools = clientFor(server)
    .then((client) => client.listTools(undefined, { timeout: LIST_TIMEOUT_MS }))
    .then(({ tools }) =>
      tools.map((tool) => ({
        name: `${server.name}__${tool.name}`,
        description: tool.description,
        parameters: tool.inputSchema as Record<string, unknown>,
        server: server.name,
        tool: tool.name,
        needsApproval: needsApproval(server, tool.name),
      })),
    );
  if (!refreshing) toolLists.set(server.url.href, { at: Date.now(), tools, failed: false });
  tools.then(
    () => refreshing && toolLists.set(server.url.href, { at: Date.now(), tools, failed: false }),
    (error) => {
      log.warn("an MCP server's tools could not be listed", { server: server.name, error: String(error) });
      forget(server);
      if (!refreshing) toolLists.set(server.url.href, { at: Date.now(), tools, failed: true });
    },
  );
  return tools;
}

/** Every configured server's tools; a server that cannot be reached is left out (and named in `unavailable`). */
export async function listServerTools(servers: readonly McpServer[]): Promise<{ tools: ServerTool[]; unavailable: string[] }> {
  const lists = await Promise.allSettled(servers.map((server) => toolsOf(server)));
  const unavailable = servers.filter((_, i) => lists[i]!.status === "rejected").map((server) => server.name);
  return { tools: lists.flatMap((list) => (list.status === "fulfilled" ? list.value : [])), unavailable };
}

/** The text of a tool's result: its text content, and a line for anything else it holds. */
function resultText(content: { type: string; text?: string }[]): string {
  return content.map((item) => (item.type === "text" ? (item.text ?? "") : `[${item.type} content omitted]`)).join("\n");
}

/** Calls a tool, within `timeoutMs` and `signal`; an MCP error or a failed call is the tool's error, never thrown. */
export async function callServerTool(server: McpServer, tool: string, args: Record<string, unknown>, timeoutMs: number, signal: AbortSignal): Promise<ToolOutcome> {
  try {
    const client = await clientFor(server);
    const result = await client.callTool({ name: tool, arguments: args }, undefined, { timeout: timeoutMs, signal });
    const text = resultText((result.content ?? []) as { type: string; text?: string }[]);
    return result.isError ? { error: text || "The tool failed." } : { output: text };
  } catch (error) {
    if (signal.aborted) throw signal.reason;
    if (error instanceof McpError && error.code === ErrorCode.RequestTimeout) return { error: `The tool did not answer within ${timeoutMs / 1000} s.` };
    // The server answered with a JSON-RPC error (an unknown tool, invalid arguments): its session is fine.
    if (error instanceof McpError && error.code !== ErrorCode.ConnectionClosed) return { error: error.message };
    forget(server);
    log.warn("an MCP tool call failed", { server: server.name, tool, error: String(error) });
    return { error: "The tool's server could not be reached or failed." };
  }
}
