import { defineConfig } from "drizzle-kit";

export default defineConfig({
  dialect: "sqlite",
  schema: "./src/db/kinds/shard.ts",
  // `migrations_dir` of every SHARD_* binding in wrangler.toml: wrangler applies what drizzle-kit generates.
  out: "./migrations/shard",
});
