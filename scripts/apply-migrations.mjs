// Applies the D1 migrations to every database wrangler.toml declares (the directory and each
// shard, each from its own migrations_dir): `node scripts/apply-migrations.mjs --local|--remote`.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";

const where = process.argv[2];
if (where !== "--local" && where !== "--remote") {
  console.error("usage: node scripts/apply-migrations.mjs --local|--remote [wrangler args…]");
  process.exit(2);
}
const ROOT = path.resolve(import.meta.dirname, "..");
const WRANGLER = path.join(ROOT, "node_modules", ".bin", "wrangler");
const config = readFileSync(path.join(ROOT, "wrangler.toml"), "utf8");
const bindings = [...config.matchAll(/\[\[d1_databases\]\][^[]*?binding\s*=\s*"([^"]+)"/g)].map((match) => match[1]);
for (const binding of bindings) {
  console.log(`Applying migrations to ${binding} (${where.slice(2)})`);
  execFileSync(WRANGLER, ["d1", "migrations", "apply", binding, where, ...process.argv.slice(3)], { cwd: ROOT, stdio: "inherit" });
}
