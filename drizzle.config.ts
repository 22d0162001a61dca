import { defineConfig } from "drizzle-kit";

export default defineConfig({
  dialect: "sqlite",
  schema: "./src/db/schema.ts",
  // The same folder as `migrations_dir` in wrangler.toml: wrangler applies what drizzle-kit generates.
  out: "./migrations",
});
