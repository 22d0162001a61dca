import { DurableObject } from "cloudflare:workers";
import { shardSession } from "../db/client";
import { addColumnIfMissing } from "../lib/sqlite-columns";
import { usageToday } from "../rules/usage";

export type LeaseKind = "generation" | "listener";

export interface AdmitRequest {
  userId: string;
  kind: LeaseKind;
  leaseId: string;
  /** Slots of this kind the user may hold at once. */
  limit: number;
  ttlMs: number;
  /** Tokens the user may spend per UTC day (generation only); 0: no limit. */
  dailyTokens: number;
  /** Dollars the user may spend per UTC day (generation only); 0: no limit. */
  dailyCostUsd: number;
  /** Tokens the turn may spend, held against the day's budget until it settles (generation only). */
  reserveTokens?: number;
}

export type Admission =
  /** `headroomTokens`: what the budget leaves beyond this reservation and the others held; null without a token budget. */
  | { ok: true; headroomTokens: number | null }
  | { ok: false; reason: "busy" }
  /** The account was deleted (its access tokens live on for a few minutes). */
  | { ok: false; reason: "erased" }
  | { ok: false; reason: "budget"; used: Spent; resetsAt: string };

/** What a user spent on one day. */
export interface Spent {
  tokens: number;
  costUsd: number;
}

export interface Usage extends Spent {
  day: string;
  resetsAt: string;
}

/** What a conversation object owes the user's object: a slot to give back and/or tokens and dollars to count, under an id counted once. */
export interface Settlement {
  id: string;
  tokens: number;
  costUsd: number;
}

// Charged ids are remembered this long, so a settlement retried after a restart is counted once.
const CHARGE_MEMORY_MS = 48 * 60 * 60 * 1000;

const dayOf = (at: number) => new Date(at).toISOString().slice(0, 10);
const nextMidnight = (at: number) => {
  const d = new Date(at);
  return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1)).toISOString();
};

/**
 * One object per user holds the user's limited slots (replies waiting or generating, SSE
 * listeners, across all conversations) and the day's token count that the budget is checked
 * against. Both are synchronous SQL in one object, so concurrent requests cannot both take the
 * last slot, and admission needs no D1 read. Every slot is a lease: given back by the conversation
 * object that holds it (which journals it, so a restart gives it back too), and expiring by itself
 * as a last resort. D1's usage_daily is written behind by the conversation objects.
 */
export class UserObject extends DurableObject<Env> {
  readonly #sql = this.ctx.storage.sql;
  #countsSince = false;
  #purgedAt = 0;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#sql.exec(`CREATE TABLE IF NOT EXISTS leases (id TEXT PRIMARY KEY, kind TEXT NOT NULL, expires_at INTEGER NOT NULL)`);
    this.#sql.exec(`CREATE INDEX IF NOT EXISTS leases_kind ON leases (kind, expires_at)`);
    addColumnIfMissing(this.#sql, "leases", "reserved_tokens", "INTEGER NOT NULL DEFAULT 0");
    this.#sql.exec(`CREATE TABLE IF NOT EXISTS usage_days (day TEXT PRIMARY KEY, tokens INTEGER NOT NULL)`);
    addColumnIfMissing(this.#sql, "usage_days", "cost_usd", "REAL NOT NULL DEFAULT 0");
    this.#sql.exec(`CREATE TABLE IF NOT EXISTS charged (id TEXT PRIMARY KEY, at INTEGER NOT NULL)`);
    this.#sql.exec(`CREATE TABLE IF NOT EXISTS storage (id INTEGER PRIMARY KEY CHECK (id = 1), bytes INTEGER NOT NULL)`);
    this.#sql.exec(`CREATE TABLE IF NOT EXISTS erased (id INTEGER PRIMARY KEY CHECK (id = 1), at INTEGER NOT NULL)`);
  }

  /** The account is being deleted: its counts go, and from now on no turn, listener or upload is admitted. */
  erase(): void {
    this.ctx.storage.transactionSync(() => {
      for (const table of ["leases", "usage_days", "charged", "storage"]) this.#sql.exec(`DELETE FROM ${table}`);
      this.#sql.exec(`INSERT OR REPLACE INTO erased (id, at) VALUES (1, ?)`, Date.now());
    });
  }

  #isErased(): boolean {
    return this.#sql.exec(`SELECT 1 FROM erased`).toArray().length > 0;
  }

  /**
   * Takes one of the user's slots of `kind`, after the day's budget (for a generation): refused
   * when the slots are taken, or when what is spent, what running turns hold and this turn's
   * reservation together exceed the budget. The reservation is a hold, not a charge: settling
   * the slot replaces it with what the turn really spent.
   */
  admit(request: AdmitRequest): Admission {
    if (this.#isErased()) return { ok: false, reason: "erased" };
    const now = Date.now();
    this.#sql.exec(`DELETE FROM leases WHERE expires_at <= ?`, now);
    const reserve = request.kind === "generation" ? (request.reserveTokens ?? 0) : 0;
    let headroomTokens: number | null = null;
    if (request.kind === "generation" && (request.dailyTokens > 0 || request.dailyCostUsd > 0)) {
      const used = this.#usedOn(request.userId, dayOf(now));
      const held = this.#sql.exec<{ n: number }>(`SELECT coalesce(sum(reserved_tokens), 0) AS n FROM leases`).one().n;
      if (request.dailyTokens > 0) headroomTokens = request.dailyTokens - used.tokens - held - reserve;
      const spentTokens = headroomTokens !== null && headroomTokens < 0;
      const spentDollars = request.dailyCostUsd > 0 && used.costUsd >= request.dailyCostUsd;
      if (spentTokens || spentDollars) return { ok: false, reason: "budget", used, resetsAt: nextMidnight(now) };
    }
    const held = this.#sql.exec<{ n: number }>(`SELECT count(*) AS n FROM leases WHERE kind = ?`, request.kind).one().n;
    if (held >= request.limit) return { ok: false, reason: "busy" };
    this.#sql.exec(
      `INSERT OR REPLACE INTO leases (id, kind, expires_at, reserved_tokens) VALUES (?, ?, ?, ?)`,
      request.leaseId,
      request.kind,
      now + request.ttlMs,
      reserve,
    );
    return { ok: true, headroomTokens };
  }

  /**
   * Counts `bytes` more stored for the user (a fork's copies, an edit that grows a message)
   * against `limit` (0: none); refused, counting nothing, when they would not fit.
   */
  store(bytes: number, limit: number): { ok: boolean; usedBytes: number; erased?: true } {
    if (this.#isErased()) return { ok: false, usedBytes: 0, erased: true };
    const usedBytes = this.#sql.exec<{ bytes: number }>(`SELECT bytes FROM storage WHERE id = 1`).toArray()[0]?.bytes ?? 0;
    if (limit > 0 && usedBytes + bytes > limit) return { ok: false, usedBytes };
    this.#sql.exec(`INSERT INTO storage (id, bytes) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET bytes = bytes + excluded.bytes`, bytes);
    return { ok: true, usedBytes: usedBytes + bytes };
  }

  /** A running turn's reservation, once its object knows better what it may spend. */
  reserve(leaseId: string, tokens: number): void {
    this.#sql.exec(`UPDATE leases SET reserved_tokens = ? WHERE id = ?`, tokens, leaseId);
  }

  /** Gives slots back and counts tokens spent; an id already settled is not counted again. */
  settle(settlements: Settlement[]): void {
    const now = Date.now();
    if (now - this.#purgedAt > CHARGE_MEMORY_MS / 48) {
      this.#purgedAt = now;
      this.#sql.exec(`DELETE FROM charged WHERE at <= ?`, now - CHARGE_MEMORY_MS);
    }
    for (const { id, tokens, costUsd } of settlements) {
      this.#sql.exec(`DELETE FROM leases WHERE id = ?`, id);
      if (tokens <= 0 || this.#sql.exec(`SELECT 1 FROM charged WHERE id = ?`, id).toArray().length > 0) continue;
      this.#sql.exec(`INSERT INTO charged (id, at) VALUES (?, ?)`, id, now);
      this.#add(dayOf(now), { tokens, costUsd: costUsd ?? 0 });
    }
  }

  usage(userId: string): Usage {
    const now = Date.now();
    return { day: dayOf(now), ...this.#usedOn(userId, dayOf(now)), resetsAt: nextMidnight(now) };
  }

  /**
   * Tokens counted on `day`. The first time this object counts anything it takes over, in the
   * background, what D1 holds for today (a user from before the count moved here): no turn waits
   * on D1 for it, and only turns admitted in that moment miss D1's share. After that D1 only trails.
   */
  #usedOn(userId: string, day: string): Spent {
    if (!this.#countsSince && this.#sql.exec(`SELECT 1 FROM usage_days WHERE day = 'since'`).toArray().length === 0) {
      this.#sql.exec(`INSERT INTO usage_days (day, tokens) VALUES ('since', 0)`);
      this.ctx.waitUntil(this.#takeOverD1Usage(userId));
    }
    this.#countsSince = true;
    const [row] = this.#sql.exec<{ tokens: number; cost_usd: number }>(`SELECT tokens, cost_usd FROM usage_days WHERE day = ?`, day).toArray();
    return { tokens: row?.tokens ?? 0, costUsd: row?.cost_usd ?? 0 };
  }

  async #takeOverD1Usage(userId: string): Promise<void> {
    const fromD1 = await usageToday(shardSession(this.env, userId, "first-primary").db, userId);
    this.#add(fromD1.day, fromD1);
  }

  #add(day: string, { tokens, costUsd }: Spent): void {
    this.#sql.exec(
      `INSERT INTO usage_days (day, tokens, cost_usd) VALUES (?, ?, ?) ON CONFLICT (day) DO UPDATE SET tokens = tokens + excluded.tokens, cost_usd = cost_usd + excluded.cost_usd`,
      day,
      tokens,
      costUsd,
    );
  }
}

/** The object of `userId`. */
export const userObject = (env: Env, userId: string) => env.USER.get(env.USER.idFromName(userId));
