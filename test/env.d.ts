declare namespace Cloudflare {
  interface Env {
    /** Test-only bindings set in vitest.config.ts: the migrations of each database kind. */
    TEST_DIRECTORY_MIGRATIONS: import("cloudflare:test").D1Migration[];
    TEST_SHARD_MIGRATIONS: import("cloudflare:test").D1Migration[];
    /** The demo MCP server (scripts/mcp-demo.mjs) the test run started. */
    TEST_MCP_URL: string;
  }
}
