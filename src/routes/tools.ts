import { createRoute, z } from "@hono/zod-openapi";
import { getConfig } from "../http/config";
import { createRouter } from "../http/create-router";
import { authenticated } from "../http/middleware";
import { errorResponses, jsonResponse } from "../http/schemas";
import { listServerTools } from "../model/tools/mcp-client";

const ToolsSchema = z
  .object({
    tools: z.array(
      z.object({
        name: z.string().openapi({ description: "`<server>__<tool>`: the name the model calls it by, and `server_tools` takes." }),
        description: z.string().nullable(),
        parameters: z.record(z.string(), z.unknown()).openapi({ description: "The tool's JSON Schema." }),
        server: z.string(),
        requires_approval: z.boolean().openapi({ description: "A call waits (RequiresAction) until the user approves it." }),
      }),
    ),
    unavailable_servers: z.array(z.string()).openapi({ description: "Configured servers that could not be reached just now: their tools are not offered." }),
  })
  .openapi("ServerTools");

const listTools = createRoute({
  ...authenticated("tools"),
  method: "get",
  path: "/tools",
  summary: "The server tools (MCP) a turn may use; client tools are declared per turn",
  responses: { 200: jsonResponse(ToolsSchema, "The tools of every configured MCP server"), ...errorResponses(401) },
});

export const toolRoutes = createRouter().openapi(listTools, async (c) => {
  const { tools, unavailable } = await listServerTools(getConfig(c.env).mcpServers);
  // Server URLs and headers are the deployer's: a client learns only the server's name.
  return c.json(
    {
      tools: tools.map((tool) => ({ name: tool.name, description: tool.description ?? null, parameters: tool.parameters, server: tool.server, requires_approval: tool.needsApproval })),
      unavailable_servers: unavailable,
    },
    200,
  );
});
