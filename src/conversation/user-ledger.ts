import type { AdmitRequest, LeaseKind, Settlement } from "../user/user-object";
import { userObject } from "../user/user-object";
import { log } from "../lib/log";
import { addColumnIfMissing } from "../lib/sqlite-columns";

/**
 * The user slots a conversation object holds and what it owes the user's object, in its own
 * SQLite. A slot is written here before it is asked for, and marked for settlement (with the
 * tokens its turn spent) in the same synchronous step that ends its turn or listener; a restart
 * marks every slot still held, since nothing in memory survived to use it. Settlements are sent
 * until the user's object has them, and it counts each id once.
 */
export class UserLedger {
  readonly #sql: SqlStorage;
  #sending: Promise<void> | null = null;
  /**
   * Sent and acknowledged, not yet deleted here: a write of its own after the acknowledgement
   * would cost the object a storage commit per turn, so the rows go with the next commit
   * (`prune`). Sent again after a restart, the user's object counts them once.
   */
  readonly #acknowledged = new Set<string>();
  /** Bumped by every new settlement, so a send knows whether to look again (each look costs the object a read). */
  #owedChanges = 0;

  constructor(
    sql: SqlStorage,
    private readonly env: Env,
    private readonly onStalled: () => void,
  ) {
    this.#sql = sql;
    sql.exec(`CREATE TABLE IF NOT EXISTS user_ledger (id TEXT PRIMARY KEY, user_id TEXT NOT NULL, kind TEXT NOT NULL, settle INTEGER NOT NULL, tokens INTEGER NOT NULL)`);
    addColumnIfMissing(sql, "user_ledger", "cost_usd", "REAL NOT NULL DEFAULT 0");
  }

  /** Journals the slot, then asks the user's object for it; a refused slot leaves no trace. */
  async acquire(request: Omit<AdmitRequest, "kind"> & { kind: LeaseKind }) {
    this.#sql.exec(`INSERT INTO user_ledger (id, user_id, kind, settle, tokens) VALUES (?, ?, ?, 0, 0)`, request.leaseId, request.userId, request.kind);
    try {
      const admission = await userObject(this.env, request.userId).admit(request);
      if (!admission.ok) this.#sql.exec(`DELETE FROM user_ledger WHERE id = ?`, request.leaseId);
      return admission;
    } catch (error) {
      this.settle(request.leaseId, 0);
      throw error;
    }
  }

  /** A slot taken for this object (by the Worker, for a turn) that it now holds, in the turn's commit. */
  hold(leaseId: string, userId: string, kind: LeaseKind): void {
    this.#sql.exec(`INSERT INTO user_ledger (id, user_id, kind, settle, tokens) VALUES (?, ?, ?, 0, 0)`, leaseId, userId, kind);
  }

  /**
   * The turn may spend more than its slot reserved (the Worker could not see its whole prompt):
   * the user's object holds the larger figure against the budget from now on. Not journaled:
   * the slot's settlement replaces any reservation, and a lost raise only makes the hold smaller.
   */
  raiseReservation(leaseId: string, userId: string, tokens: number): void {
    userObject(this.env, userId)
      .reserve(leaseId, tokens)
      .catch((error) => log.warn("raising a reservation failed", { user_id: userId, error: String(error) }));
  }

  /** A slot taken for a turn this object refused: given back at once. */
  release(leaseId: string, userId: string): void {
    this.#owedChanges++;
    this.#sql.exec(`INSERT OR IGNORE INTO user_ledger (id, user_id, kind, settle, tokens) VALUES (?, ?, 'generation', 1, 0)`, leaseId, userId);
    this.flush();
  }

  /** The slot's turn or listener ended, having spent `tokens` (and `costUsd`). */
  settle(leaseId: string, tokens: number, costUsd = 0): void {
    this.#owedChanges++;
    this.#sql.exec(`UPDATE user_ledger SET settle = 1, tokens = ?, cost_usd = ? WHERE id = ?`, tokens, costUsd, leaseId);
    this.flush();
  }

  /**
   * Tokens about to be spent without a slot (a summary), journaled as their most before the
   * request goes out: `settle` then records what was really spent, and a restart in between
   * charges the journaled figure, since the provider bills a request whether or not we saw its answer.
   */
  holdCharge(id: string, userId: string, tokens: number, costUsd: number): void {
    this.#sql.exec(`INSERT INTO user_ledger (id, user_id, kind, settle, tokens, cost_usd) VALUES (?, ?, 'charge', 0, ?, ?)`, id, userId, tokens, costUsd);
  }

  /** After a restart: every slot still held belongs to a turn or listener that is gone, every held charge to a request that went out. */
  settleAllHeld(): void {
    this.#sql.exec(`UPDATE user_ledger SET settle = 1 WHERE settle = 0`);
  }

  get hasUnsent(): boolean {
    return this.#owed().length > 0;
  }

  /** Deletes what the user's objects acknowledged; called inside the object's next commit. */
  prune(): void {
    if (this.#acknowledged.size === 0) return;
    this.#sql.exec(`DELETE FROM user_ledger WHERE settle = 1 AND id IN (SELECT value FROM json_each(?))`, JSON.stringify([...this.#acknowledged]));
    this.#acknowledged.clear();
  }

  #owed(): { id: string; user_id: string; tokens: number; cost_usd: number }[] {
    return this.#sql
      .exec<{ id: string; user_id: string; tokens: number; cost_usd: number }>(`SELECT id, user_id, tokens, cost_usd FROM user_ledger WHERE settle = 1`)
      .toArray()
      .filter((row) => !this.#acknowledged.has(row.id));
  }

  flush(): Promise<void> {
    this.#sending ??= this.#send().finally(() => (this.#sending = null));
    return this.#sending;
  }

  /** Sends what is owed, user by user, until nothing is left or a user's object cannot be reached. */
  async #send(): Promise<void> {
    for (;;) {
      const looked = this.#owedChanges;
      const rows = this.#owed();
      const userId = rows[0]?.user_id;
      if (userId === undefined) return;
      const settlements: Settlement[] = rows.filter((row) => row.user_id === userId).map(({ id, tokens, cost_usd }) => ({ id, tokens, costUsd: cost_usd }));
      try {
        await userObject(this.env, userId).settle(settlements);
      } catch (error) {
        log.warn("settling user slots failed; retrying from the alarm", { user_id: userId, error: String(error) });
        this.onStalled();
        return;
      }
      for (const { id } of settlements) this.#acknowledged.add(id);
      if (settlements.length === rows.length && looked === this.#owedChanges) return;
    }
  }
}
