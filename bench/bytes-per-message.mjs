// `node bench/bytes-per-message.mjs`: bytes of a shard database per stored message, with every
// index and the FTS5 index, for chat-sized turns. Builds a shard from migrations/shard in SQLite
// (node:sqlite, the same engine as D1), stores TURNS turns, and divides the file size.
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { DatabaseSync } from "node:sqlite";

const TURNS = 20_000;
const USER_CHARS = 300;
const REPLY_CHARS = 1_500; // about 350 tokens

const words = "the of and to in a is that for it as with was on be by at this are from or have an but not what all were when we there can use your how said each which do their time if will way about many then them would write like so these her long make thing see him two has look more day could go come did number sound no most people my over know water than call first who may down side been now find".split(" ");
const text = (n, seed) => {
  let out = "";
  for (let i = seed; out.length < n; i = (i * 1103515245 + 12345) % 2147483648) out += `${words[i % words.length]} `;
  return out.slice(0, n);
};

function build(withDuplicateText) {
  const db = new DatabaseSync(":memory:");
  const dir = path.join(import.meta.dirname, "..", "migrations", "shard");
  for (const file of readdirSync(dir).filter((f) => f.endsWith(".sql")).sort()) {
    for (const statement of readFileSync(path.join(dir, file), "utf8").split("--> statement-breakpoint")) db.exec(statement);
  }
  // The layout before this change also kept the reply's text in ai_responses.response_content.
  if (withDuplicateText) db.exec("ALTER TABLE ai_responses ADD COLUMN response_content TEXT NOT NULL DEFAULT ''");
  const userId = "01a21404-ecf5-7000-be72-e2cbec498da6";
  const insertMessage = db.prepare(`INSERT INTO messages (id, conversation_id, user_id, sender, content, "order", reply_to, parent_id, tokens) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`);
  const insertResponse = db.prepare(
    `INSERT INTO ai_responses (id, user_id, message_id, ai_message_id, status, model, prompt_tokens, completion_tokens, total_tokens, finish_reason, context_first_order, context_messages, first_token_at, completed_at) VALUES (?, ?, ?, ?, 'Completed', 'gpt-4o-2024-08-06', 900, 350, 1250, 'stop', 1, 10, '2026-11-25T18:00:00.100Z', '2026-11-25T18:00:09.000Z')`,
  );
  const setText = withDuplicateText ? db.prepare("UPDATE ai_responses SET response_content = ? WHERE id = ?") : null;
  db.exec("BEGIN");
  let conversation = "";
  let parent = null;
  for (let turn = 0; turn < TURNS; turn++) {
    if (turn % 50 === 0) {
      conversation = crypto.randomUUID();
      parent = null;
      db.prepare("INSERT INTO conversations (id, user_id, title, title_search, model_version) VALUES (?, ?, 'A conversation title', 'a conversation title', 'gpt-4o')").run(conversation, userId);
    }
    const order = (turn % 50) * 2 + 1;
    const [userMessage, aiMessage, response] = [crypto.randomUUID(), crypto.randomUUID(), crypto.randomUUID()];
    insertMessage.run(userMessage, conversation, userId, "user", text(USER_CHARS, turn + 1), order, null, parent, 80);
    insertMessage.run(aiMessage, conversation, userId, "ai", text(REPLY_CHARS, turn + 7), order + 1, userMessage, userMessage, 350);
    insertResponse.run(response, userId, userMessage, aiMessage);
    setText?.run(text(REPLY_CHARS, turn + 7), response);
    parent = aiMessage;
  }
  db.exec("COMMIT");
  db.exec("VACUUM");
  const { page_count } = db.prepare("PRAGMA page_count").get();
  const { page_size } = db.prepare("PRAGMA page_size").get();
  return (page_count * page_size) / (TURNS * 2);
}

const now = build(false);
const before = build(true);
console.log(
  `${TURNS} turns (user ${USER_CHARS} chars, reply ${REPLY_CHARS} chars), all indexes and the FTS5 index: ` +
    `${Math.round(now)} bytes per message now, ${Math.round(before)} with the reply text stored twice (before); ` +
    `a 10 GB database holds ${(10e9 / now / 1e6).toFixed(1)} million messages (${(10e9 / before / 1e6).toFixed(1)} million before).`,
);
