// How long streamed text may sit in memory before it is written to the object's SQLite. Each
// delta arrives in its own event, and a write per delta (each its own implicit transaction)
// cost more CPU than the rest of the token path; a restart loses at most this much of a reply.
const FLUSH_INTERVAL_MS = 200;

const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;

export interface IdempotentTurn {
  requestHash: string;
  aiMessageId: string;
}

export interface UnfinishedTurn {
  aiMessageId: string;
  aiResponseId: string;
  /** The user's generation slot the turn holds (see UserObject); its user is the conversation's owner. */
  lease: { userId: string; id: string };
  /** The reply text written so far. */
  text: string;
}

/**
 * The conversation object's own SQLite: the order counter, the current leaf of the conversation
 * tree, the turns not yet stored in D1, the text of the reply in flight, and the Idempotency-Keys
 * of the last 24 hours. All calls are synchronous, so callers can rely on nothing interleaving
 * between a read and a write.
 */
export class TurnJournal {
  readonly #sql: SqlStorage;
  readonly #pending = new Map<string, string[]>();
  #flushTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(sql: SqlStorage) {
    this.#sql = sql;
    sql.exec(`CREATE TABLE IF NOT EXISTS order_counter (id INTEGER PRIMARY KEY CHECK (id = 1), next_order INTEGER NOT NULL)`);
    sql.exec(`CREATE TABLE IF NOT EXISTS branch_state (id INTEGER PRIMARY KEY CHECK (id = 1), current_leaf TEXT, leaf_version INTEGER NOT NULL)`);
    sql.exec(`CREATE TABLE IF NOT EXISTS unfinished_turns (ai_message_id TEXT PRIMARY KEY, ai_response_id TEXT NOT NULL)`);
    sql.exec(`CREATE TABLE IF NOT EXISTS turn_leases (ai_message_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, lease_id TEXT NOT NULL)`);
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

  forgetIdempotent(userId: string, key: string): void {
    this.#sql.exec(`DELETE FROM idempotency_keys WHERE user_id = ? AND key = ?`, userId, key);
  }

  hasCounter(): boolean {
    return this.#sql.exec(`SELECT 1 FROM order_counter`).toArray().length > 0;
  }

  /** Whether the counter and the branch state are both set (objects older than the tree lack the latter). */
  isInitialized(): boolean {
    return this.hasCounter() && this.#sql.exec(`SELECT 1 FROM branch_state`).toArray().length > 0;
  }

  /** Sets the counter and the current leaf where they are not set yet: the first caller wins. */
  initialize(nextOrder: number, currentLeaf: string | null, leafVersion: number): void {
    this.#sql.exec(`INSERT OR IGNORE INTO order_counter (id, next_order) VALUES (1, ?)`, nextOrder);
    this.#sql.exec(`INSERT OR IGNORE INTO branch_state (id, current_leaf, leaf_version) VALUES (1, ?, ?)`, currentLeaf, leafVersion);
  }

  /** Reserves `count` consecutive orders and returns the first. */
  reserveOrders(count: number): number {
    const [row] = this.#sql
      .exec<{ next_order: number }>(`UPDATE order_counter SET next_order = next_order + ? WHERE id = 1 RETURNING next_order`, count)
      .toArray();
    return row!.next_order - count;
  }

  currentLeaf(): string | null {
    return this.#sql.exec<{ current_leaf: string | null }>(`SELECT current_leaf FROM branch_state`).one().current_leaf;
  }

  /** Makes `leafId` the current leaf and returns the new version, to guard its D1 write with. */
  moveLeaf(leafId: string): number {
    return this.#sql
      .exec<{ leaf_version: number }>(`UPDATE branch_state SET current_leaf = ?, leaf_version = leaf_version + 1 WHERE id = 1 RETURNING leaf_version`, leafId)
      .one().leaf_version;
  }

  /** Puts the leaf back to `previous` if it still is `failed`, a reply whose messages never reached D1. */
  restoreLeaf(failed: string, previous: string | null): void {
    this.#sql.exec(`UPDATE branch_state SET current_leaf = ? WHERE id = 1 AND current_leaf = ?`, previous, failed);
  }

  open(aiMessageId: string, aiResponseId: string, lease: { userId: string; id: string }): void {
    this.#sql.exec(`INSERT INTO unfinished_turns (ai_message_id, ai_response_id) VALUES (?, ?)`, aiMessageId, aiResponseId);
    this.#sql.exec(`INSERT INTO turn_leases (ai_message_id, user_id, lease_id) VALUES (?, ?, ?)`, aiMessageId, lease.userId, lease.id);
  }

  append(aiMessageId: string, text: string): void {
    const chunks = this.#pending.get(aiMessageId);
    if (chunks) chunks.push(text);
    else this.#pending.set(aiMessageId, [text]);
    this.#flushTimer ??= setTimeout(() => this.#flush(), FLUSH_INTERVAL_MS);
  }

  /** The turn is stored in D1: forget it. */
  close(aiMessageId: string): void {
    this.#pending.delete(aiMessageId);
    this.#sql.exec(`DELETE FROM reply_chunks WHERE ai_message_id = ?`, aiMessageId);
    this.#sql.exec(`DELETE FROM unfinished_turns WHERE ai_message_id = ?`, aiMessageId);
    this.#sql.exec(`DELETE FROM turn_leases WHERE ai_message_id = ?`, aiMessageId);
  }

  unfinished(): UnfinishedTurn[] {
    return this.#sql
      .exec<{ ai_message_id: string; ai_response_id: string; user_id: string; lease_id: string }>(
        `SELECT t.ai_message_id, t.ai_response_id, l.user_id, l.lease_id FROM unfinished_turns t JOIN turn_leases l USING (ai_message_id)`,
      )
      .toArray()
      .map((row) => ({
        aiMessageId: row.ai_message_id,
        aiResponseId: row.ai_response_id,
        lease: { userId: row.user_id, id: row.lease_id },
        text: this.#sql
          .exec<{ content: string }>(`SELECT content FROM reply_chunks WHERE ai_message_id = ? ORDER BY rowid`, row.ai_message_id)
          .toArray()
          .map((chunk) => chunk.content)
          .join(""),
      }));
  }

  #flush(): void {
    this.#flushTimer = undefined;
    for (const [aiMessageId, chunks] of this.#pending) {
      this.#sql.exec(`INSERT INTO reply_chunks (ai_message_id, content) VALUES (?, ?)`, aiMessageId, chunks.join(""));
    }
    this.#pending.clear();
  }
}
