// How long streamed text may sit in memory before it is written to the object's SQLite. Each
// delta arrives in its own event, and a write per delta (each its own implicit transaction)
// cost more CPU than the rest of the token path; a restart loses at most this much of a reply.
const FLUSH_INTERVAL_MS = 200;

const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;

export interface IdempotentTurn {
  requestHash: string;
  aiMessageId: string;
}

/**
 * The text of the replies in flight, written to the object's SQLite every FLUSH_INTERVAL_MS so a
 * restart keeps what was streamed, and the Idempotency-Keys of the last 24 hours. All calls are
 * synchronous, so callers can rely on nothing interleaving between a read and a write.
 */
export class TurnJournal {
  readonly #sql: SqlStorage;
  readonly #pending = new Map<string, string[]>();
  #flushTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(sql: SqlStorage) {
    this.#sql = sql;
    sql.exec(`CREATE TABLE IF NOT EXISTS reply_chunks (ai_message_id TEXT NOT NULL, content TEXT NOT NULL)`);
    sql.exec(`CREATE INDEX IF NOT EXISTS reply_chunks_turn ON reply_chunks (ai_message_id)`);
    sql.exec(
      `CREATE TABLE IF NOT EXISTS idempotency_keys (user_id TEXT NOT NULL, key TEXT NOT NULL, request_hash TEXT NOT NULL,
         ai_message_id TEXT NOT NULL, created_at INTEGER NOT NULL, PRIMARY KEY (user_id, key))`,
    );
    sql.exec(`CREATE INDEX IF NOT EXISTS idempotency_keys_created ON idempotency_keys (created_at)`);
  }

  /** The turn a user's Idempotency-Key was first used for, within the last 24 hours. */
  findIdempotent(userId: string, key: string): IdempotentTurn | null {
    const [row] = this.#sql
      .exec<{ request_hash: string; ai_message_id: string }>(
        `SELECT request_hash, ai_message_id FROM idempotency_keys WHERE user_id = ? AND key = ? AND created_at > ?`,
        userId,
        key,
        Date.now() - IDEMPOTENCY_TTL_MS,
      )
      .toArray();
    return row ? { requestHash: row.request_hash, aiMessageId: row.ai_message_id } : null;
  }

  rememberIdempotent(userId: string, key: string, turn: IdempotentTurn): void {
    this.#sql.exec(`DELETE FROM idempotency_keys WHERE created_at <= ?`, Date.now() - IDEMPOTENCY_TTL_MS);
    this.#sql.exec(
      `INSERT OR REPLACE INTO idempotency_keys (user_id, key, request_hash, ai_message_id, created_at) VALUES (?, ?, ?, ?, ?)`,
      userId,
      key,
      turn.requestHash,
      turn.aiMessageId,
      Date.now(),
    );
  }

  append(aiMessageId: string, text: string): void {
    const chunks = this.#pending.get(aiMessageId);
    if (chunks) chunks.push(text);
    else this.#pending.set(aiMessageId, [text]);
    this.#flushTimer ??= setTimeout(() => this.#flush(), FLUSH_INTERVAL_MS);
  }

  /** The reply is committed in the object's store: its journaled text is no longer needed. */
  close(aiMessageId: string): void {
    this.#pending.delete(aiMessageId);
    this.#sql.exec(`DELETE FROM reply_chunks WHERE ai_message_id = ?`, aiMessageId);
  }

  /** What was journaled of a reply: its text up to the last flush. */
  text(aiMessageId: string): string {
    return this.#sql
      .exec<{ content: string }>(`SELECT content FROM reply_chunks WHERE ai_message_id = ? ORDER BY rowid`, aiMessageId)
      .toArray()
      .map((chunk) => chunk.content)
      .join("");
  }

  #flush(): void {
    this.#flushTimer = undefined;
    for (const [aiMessageId, chunks] of this.#pending) {
      this.#sql.exec(`INSERT INTO reply_chunks (ai_message_id, content) VALUES (?, ?)`, aiMessageId, chunks.join(""));
    }
    this.#pending.clear();
  }
}
