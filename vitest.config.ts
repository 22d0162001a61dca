import path from "node:path";
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";
import { createServer } from "node:net";
import { build } from "esbuild";

export default defineConfig(async () => {
  const migrationsOf = (kind: string) => readD1Migrations(path.join(import.meta.dirname, "migrations", kind));
  // The demo MCP server (the SDK's own server), for the tool tests: they give the objects an env
  // with MCP_SERVERS pointing at it. test/mcp-global-setup.ts serves it on this free port.
  process.env.TEST_MCP_PORT ??= String(await freePort());
  // The PDF text Worker (workers/pdf-text), bundled for the pool as an auxiliary worker: the API's
  // PDF_TEXT service binding reaches it by its name, as in production.
  const pdfText = path.join(import.meta.dirname, "node_modules", ".cache", "pdf-text.mjs");
  await build({ entryPoints: ["workers/pdf-text/src/index.ts"], bundle: true, format: "esm", platform: "neutral", mainFields: ["module", "main"], conditions: ["workerd", "worker", "browser"], outfile: pdfText, logLevel: "error" });
  return {
    plugins: [
      cloudflareTest({
        wrangler: { configPath: "./wrangler.toml" },
        miniflare: {
          workers: [{ name: "genai-edge-pdf-text", modules: true, scriptPath: pdfText, compatibilityDate: "2026-11-01" }],
          bindings: {
            TEST_DIRECTORY_MIGRATIONS: await migrationsOf("directory"),
            TEST_SHARD_MIGRATIONS: await migrationsOf("shard"),
            TEST_MCP_URL: `http://127.0.0.1:${process.env.TEST_MCP_PORT}/mcp`,
            JWT_SECRET: "test-secret-that-is-long-enough-for-hs256-signing",
            OPENAI_API_KEY: "",
            // Fast stand-in and short timeouts keep the suite quick; tests script slower cases. The idle
            // limit leaves room for a starved isolate: three files at once on two cores can stall a
            // reply for over a second, which then failed as upstream_timeout.
            OFFLINE_MODEL_TOKEN_DELAY_MS: "2",
            MODEL_IDLE_TIMEOUT_MS: "2500",
            MODEL_TIMEOUT_MS: "5000",
            MODEL_MAX_RETRIES: "0",
            MAX_MESSAGE_LENGTH: "2000",
            // The 50-concurrent-sends test needs the queue cap at 50 (default 32).
            MAX_QUEUED_TURNS: "50",
            // A model with a small window, for the long-conversation tests.
            ALLOWED_MODELS: "gpt-4,gpt-4o,gpt-4o-mini,gpt-4.1,gpt-4.1-mini,small-window",
            MODEL_CONTEXT_TOKENS: "small-window:1200,gpt-4:8192,gpt-4o:128000,gpt-4.1:1047576,*:8192",
            // gpt-4.1 may write long replies: the 5,000-token resume test.
            MODEL_MAX_OUTPUT_TOKENS: "small-window:100,gpt-4.1:32768,*:1024",
          },
        },
      }),
    ],
    test: {
      include: ["test/**/*.test.ts"],
      setupFiles: ["./test/apply-migrations.ts"],
      globalSetup: ["./test/mcp-global-setup.ts"],
      silent: "passed-only" as const,
      testTimeout: 20_000,
      // More files than cores at once: most of a test file's time is spent waiting on timers and workerd.
      maxWorkers: 3,
    },
  };
});

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const probe = createServer().listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}
