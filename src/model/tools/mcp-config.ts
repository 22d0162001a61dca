import { z } from "@hono/zod-openapi";
import { isSet, parseTable, RegistryError } from "../registry";

/** An MCP server the deployer configured: the only URLs a tool call ever reaches. */
export interface McpServer {
  name: string;
  url: URL;
  /** Header values, read from the secrets MCP_SERVERS names. */
  headers: Record<string, string>;
  /** Which of its tools wait for the user's approval before they run. */
  requireApproval: "never" | "always" | ReadonlySet<string>;
}

// A tool reaches the model as `<server>__<tool>`: a server's name may not hold the separator.
const serverSchema = z.strictObject({
  name: z.string().regex(/^[a-zA-Z0-9-]{1,32}$/, "server names are 1–32 letters, digits and -"),
  url: z.string().refine((url) => /^https?:\/\/[^/]/.test(url), "must be an http(s) URL"),
  headers: z.record(z.string().regex(/^[\w-]{1,64}$/), z.string().min(1)).optional(),
  require_approval: z.union([z.enum(["never", "always"]), z.array(z.string())]).default("never"),
});

/** MCP_SERVERS (a TOML array or a JSON string), each header's secret resolved; [] when unset. */
export function parseMcpServers(env: Record<string, unknown>): McpServer[] {
  if (!isSet(env.MCP_SERVERS)) return [];
  const entries = parseTable("MCP_SERVERS", env.MCP_SERVERS, z.array(serverSchema));
  return entries.map((entry, i) => {
    if (entries.findIndex((other) => other.name === entry.name) !== i) throw new RegistryError(`MCP_SERVERS[${i}].name: "${entry.name}" is listed twice.`);
    const headers = Object.fromEntries(
      Object.entries(entry.headers ?? {}).map(([header, secret]) => {
        const value = env[secret];
        if (typeof value !== "string" || value.trim() === "") throw new RegistryError(`MCP_SERVERS[${i}].headers.${header}: the secret ${secret} is not set.`);
        return [header, value.trim()];
      }),
    );
    const approval = entry.require_approval;
    return { name: entry.name, url: new URL(entry.url), headers, requireApproval: typeof approval === "string" ? approval : new Set(approval) };
  });
}

export const needsApproval = (server: McpServer, tool: string) =>
  server.requireApproval === "always" || (server.requireApproval !== "never" && server.requireApproval.has(tool));
