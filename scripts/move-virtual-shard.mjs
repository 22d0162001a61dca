// Moves the rows of one virtual shard (every user whose id hashes to it) from one shard database
// to another: `node scripts/move-virtual-shard.mjs <virtual shard> <FROM_BINDING> <TO_BINDING>
// --local|--remote [--persist-to dir]`. Copies, checks the counts, then deletes from the source.
// Run it while that virtual shard takes no writes, then point SHARD_MAP at the new database
// (docs/SCALING.md has the whole procedure).
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { VIRTUAL_SHARDS, virtualShardOf } from "../src/db/shard-map.ts";

const [shardArg, from, to, where, ...wranglerArgs] = process.argv.slice(2);
const virtualShard = Number(shardArg);
if (!Number.isInteger(virtualShard) || virtualShard < 0 || virtualShard >= VIRTUAL_SHARDS || !from || !to || from === to || !["--local", "--remote"].includes(where)) {
  console.error("usage: node scripts/move-virtual-shard.mjs <0-4095> <FROM_BINDING> <TO_BINDING> --local|--remote [--persist-to dir]");
  process.exit(2);
}

const work = mkdtempSync(path.join(tmpdir(), "move-shard-"));

function execute(binding, args) {
  return execFileSync(path.join(import.meta.dirname, "..", "node_modules", ".bin", "wrangler"), ["d1", "execute", binding, where, ...wranglerArgs, ...args], { encoding: "utf8", maxBuffer: 1 << 30, stdio: ["ignore", "pipe", "inherit"] });
}

/** Rows of a query, as wrangler's --json prints them. */
function select(binding, sql) {
  const [result] = JSON.parse(execute(binding, ["--json", "--command", sql]));
  return result.results;
}

function runFile(binding, name, statements) {
  const file = path.join(work, name);
  writeFileSync(file, statements.join("\n"));
  execute(binding, ["--file", file]);
}

const literal = (value) => (value === null ? "NULL" : typeof value === "number" ? String(value) : `'${String(value).replaceAll("'", "''")}'`);
const quoted = (ids) => ids.map(literal).join(", ");

// Each table, in an order that satisfies its foreign keys, with the rows of the moving users.
const tables = (users) => [
  ["conversations", `user_id IN (${users}) ORDER BY created_at, id`],
  // Parents before children: a message's parent and reply_to have a lower order.
  ["messages", `user_id IN (${users}) ORDER BY conversation_id, "order"`],
  ["ai_responses", `user_id IN (${users}) ORDER BY id`],
  ["summaries", `conversation_id IN (SELECT id FROM conversations WHERE user_id IN (${users})) ORDER BY id`],
  ["shares", `user_id IN (${users}) ORDER BY token_hash`],
  ["usage_daily", `user_id IN (${users}) ORDER BY user_id, day`],
];

try {
  const owners = select(from, "SELECT user_id FROM conversations UNION SELECT user_id FROM usage_daily").map((row) => row.user_id);
  const moving = owners.filter((userId) => virtualShardOf(userId) === virtualShard);
  console.log(`${moving.length} of ${owners.length} users in ${from} are in virtual shard ${virtualShard}.`);
  if (moving.length === 0) process.exit(0);
  const users = quoted(moving);

  const counts = {};
  for (const [table, filter] of tables(users)) {
    const rows = select(from, `SELECT * FROM ${table} WHERE ${filter}`);
    counts[table] = rows.length;
    if (rows.length === 0) continue;
    const columns = Object.keys(rows[0]).map((c) => `"${c}"`).join(", ");
    // The FTS triggers index the copied messages in the target as they are inserted.
    runFile(to, `${table}.sql`, rows.map((row) => `INSERT INTO ${table} (${columns}) VALUES (${Object.values(row).map(literal).join(", ")});`));
  }
  for (const [table, filter] of tables(users)) {
    const [{ n }] = select(to, `SELECT count(*) AS n FROM ${table} WHERE ${filter.replace(/ ORDER BY .*$/, "")}`);
    if (n !== counts[table]) throw new Error(`${table}: copied ${counts[table]} rows but ${to} has ${n}; nothing was deleted from ${from}`);
  }
  // Children first; deferred foreign keys let one statement delete a whole message tree.
  runFile(from, "delete.sql", [
    "PRAGMA defer_foreign_keys = ON;",
    ...tables(users)
      .reverse()
      .map(([table, filter]) => `DELETE FROM ${table} WHERE ${filter.replace(/ ORDER BY .*$/, "")};`),
  ]);
  console.log(`Moved ${JSON.stringify(counts)} from ${from} to ${to}. Now map virtual shard ${virtualShard} to ${to} in SHARD_MAP and deploy.`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
