import { startMcpDemo } from "../scripts/mcp-demo.mjs";

/** Serves the demo MCP server for the whole run (vitest.config.ts chose the port), and stops it after. */
export default async function serveMcpDemo() {
  const server = await startMcpDemo(Number(process.env.TEST_MCP_PORT));
  return () => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
}
