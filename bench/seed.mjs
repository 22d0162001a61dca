// What the benchmarks seed straight into the local databases (faster than through the API): users
// who sign in with PASSWORD, a user for the list endpoints and a user for search and export.
import { execFileSync } from "node:child_process";
import { pbkdf2Sync, randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { parseShardMap, virtualShardOf } from "../src/db/shard-map.ts";

const ROOT = path.resolve(import.meta.dirname, "..");
export const PASSWORD = "bench password 1";

/** The directory row of a user who signs in with PASSWORD. */
function userRow(userId, email, name) {
  const salt = randomBytes(16);
  const hash = pbkdf2Sync(PASSWORD, salt, 100_000, 32, "sha256");
  const b64 = (b) => b.toString("base64url");
  return `INSERT INTO users (id, email, password_hash, name) VALUES ('${userId}', '${email}', 'pbkdf2_sha256$100000$${b64(salt)}$${b64(hash)}', '${name}');`;
}

/** A user with 1,000 conversations, one of them with 1,000 messages: for the list endpoints. */
export function listSeedSql(userId, email) {
  const user = userRow(userId, email, "Bench");
  const lines = [];
  const iso = (i) => new Date(Date.UTC(2026, 0, 1) + i * 1000).toISOString();
  const hex = (n) => n.toString(16).padStart(12, "0");
  for (let i = 0; i < 1000; i++) {
    lines.push(
      `INSERT INTO conversations (id, user_id, title, title_search, model_version, created_at, updated_at) VALUES ('00000000-0000-7000-8000-${hex(i)}', '${userId}', 'Conversation ${i}', 'conversation ${i}', 'gpt-4', '${iso(i)}', '${iso(i)}');`,
    );
  }
  const conversationId = "00000000-0000-7000-8000-000000000000";
  for (let order = 1; order <= 1000; order++) {
    const id = `00000000-0000-7000-9000-${hex(order)}`;
    const sender = order % 2 ? "user" : "ai";
    const replyTo = sender === "ai" ? `'00000000-0000-7000-9000-${hex(order - 1)}'` : "NULL";
    const parent = order > 1 ? `'00000000-0000-7000-9000-${hex(order - 1)}'` : "NULL";
    lines.push(
      `INSERT INTO messages (id, conversation_id, user_id, sender, content, timestamp, "order", reply_to, parent_id) VALUES ('${id}', '${conversationId}', '${userId}', '${sender}', 'Message number ${order} with a few words of content.', '${iso(order)}', ${order}, ${replyTo}, ${parent});`,
    );
    if (sender === "ai") {
      lines.push(
        `INSERT INTO ai_responses (id, user_id, message_id, ai_message_id, status, model) VALUES ('00000000-0000-7000-a000-${hex(order)}', '${userId}', '00000000-0000-7000-9000-${hex(order - 1)}', '${id}', 'Completed', 'gpt-4');`,
      );
    }
  }
  lines.push(`UPDATE conversations SET current_leaf_id = '00000000-0000-7000-9000-${hex(1000)}' WHERE id = '${conversationId}';`);
  return { user, sql: lines.join("\n"), conversationId };
}

// Words the search user's messages are made of; the searches ask for them.
export const SEARCH_WORDS = "harbour lantern orchard granite velvet meadow compass thunder saffron glacier marble cinnamon falcon quartz willow ember tundra canyon lagoon prism".split(" ");

/**
 * A search for a word in exactly 20 of the seeded messages: `topic<n>` with n of 500–4999, which
 * (as a prefix) begins no other topic word; a smaller n also finds topic<n>0… and so thousands.
 */
export const rareSearchPath = () => `/search/?q=topic${500 + Math.floor(Math.random() * 4500)}`;

/**
 * A user with 100 conversations of 1,000 messages (100,000), generated inside SQLite by a
 * recursive CTE: each message is six words of SEARCH_WORDS (each in about 18% of the messages),
 * one of 5,000 topic words (each in 20 messages) and filler. The FTS triggers index them.
 */
export function searchSeedSql(userId, email) {
  const words = JSON.stringify([...SEARCH_WORDS, ..."and the of to in for with on at by from about".split(" ")]);
  return {
    user: userRow(userId, email, "Search"),
    sql: `INSERT INTO conversations (id, user_id, title, title_search, model_version, current_leaf_id)
       WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < 99)
       SELECT printf('00000000-0000-7000-c000-%012x', i), '${userId}', 'Search ' || i, 'search ' || i, 'gpt-4', printf('00000000-0000-7000-d%03x-%012x', i, 1000) FROM c;
     INSERT INTO messages (id, conversation_id, user_id, sender, content, "order", parent_id)
       WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 99999),
            w(k, v) AS (SELECT CAST(key AS INTEGER), value FROM json_each('${words}'))
       SELECT printf('00000000-0000-7000-d%03x-%012x', i / 1000, i % 1000 + 1),
              printf('00000000-0000-7000-c000-%012x', i / 1000), '${userId}', CASE WHEN i % 2 = 0 THEN 'user' ELSE 'ai' END,
              (SELECT group_concat(v, ' ') FROM w WHERE k IN (i % 33, (i * 7) % 33, (i * 13) % 33, (i * 29) % 33, (i * 31) % 33, (i * 37) % 33))
                || ' topic' || (i % 5000) || ' message ' || i || ' with some more ordinary words to make it a realistic length for a chat',
              i % 1000 + 1,
              CASE WHEN i % 1000 = 0 THEN NULL ELSE printf('00000000-0000-7000-d%03x-%012x', i / 1000, i % 1000) END
       FROM n;`,
  };
}

/** The shard binding that holds `userId`'s rows, by wrangler.toml's SHARD_MAP. */
export function shardBindingOf(userId) {
  const shardMap = readFileSync(path.join(ROOT, "wrangler.toml"), "utf8").match(/^SHARD_MAP\s*=\s*"([^"]+)"/m)[1];
  return parseShardMap(shardMap).bindingOf(virtualShardOf(userId));
}

/** Runs a SQL file against one local database of the state in `state`. */
export function executeLocal(state, binding, name, sql) {
  writeFileSync(path.join(state, name), sql);
  const wrangler = path.join(ROOT, "node_modules", ".bin", "wrangler");
  execFileSync(wrangler, ["d1", "execute", binding, "--local", "--persist-to", state, "--file", path.join(state, name)], { cwd: ROOT, env: { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "1" }, stdio: "ignore" });
}

