import { defineConfig } from "drizzle-kit";

export default defineConfig({
  dialect: "sqlite",
  schema: "./src/db/kinds/directory.ts",
  // `migrations_dir` of the DIRECTORY binding in wrangler.toml: wrangler applies what drizzle-kit generates.
  out: "./migrations/directory",
});
