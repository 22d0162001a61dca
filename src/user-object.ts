import { DurableObject } from "cloudflare:workers";

export type LeaseKind = "generation" | "listener";

/**
 * One object per user holds the user's limited slots: replies waiting or generating, and SSE
 * listeners, across all conversations. Taking a slot is synchronous SQL in one object, so
 * concurrent requests cannot both take the last one (a count read from D1 could not promise that).
 * Every slot is a lease: released when its turn or listener ends, and expiring by itself if the
 * release never comes (a crashed conversation object).
 */
export class UserObject extends DurableObject<Env> {
  readonly #sql = this.ctx.storage.sql;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#sql.exec(`CREATE TABLE IF NOT EXISTS leases (id TEXT PRIMARY KEY, kind TEXT NOT NULL, expires_at INTEGER NOT NULL)`);
    this.#sql.exec(`CREATE INDEX IF NOT EXISTS leases_kind ON leases (kind, expires_at)`);
  }

  /** Takes one of `limit` slots of `kind` for at most `ttlMs`; false when all are taken. */
  acquire(kind: LeaseKind, id: string, limit: number, ttlMs: number): boolean {
    const now = Date.now();
    this.#sql.exec(`DELETE FROM leases WHERE expires_at <= ?`, now);
    const held = this.#sql.exec<{ n: number }>(`SELECT count(*) AS n FROM leases WHERE kind = ?`, kind).one().n;
    if (held >= limit) return false;
    this.#sql.exec(`INSERT OR REPLACE INTO leases (id, kind, expires_at) VALUES (?, ?, ?)`, id, kind, now + ttlMs);
    return true;
  }

  release(ids: string[]): void {
    for (const id of ids) this.#sql.exec(`DELETE FROM leases WHERE id = ?`, id);
  }
}

/** The object of `userId`. */
export const userObject = (env: Env, userId: string) => env.USER.get(env.USER.idFromName(userId));
