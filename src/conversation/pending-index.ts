import type { PendingRow, RowKind } from "./conversation-store";

const SYNCED_WRITE_DELAY_MS = 10_000;

/**
 * Which rows of the store D1 lacks in their latest version: the `outbox` table in the object's
 * SQLite, and the same index in memory, which every read uses. Changes are numbered in order; D1
 * has everything through `syncedThrough()`.
 */
export class PendingIndex {
  readonly #sql: SqlStorage;
  readonly #pending = new Map<string, PendingRow & { firstChange: number }>();
  /** The newest change: numbers only compare within one run of the object, so they restart above what is still pending. */
  #lastChange: number;
  /**
   * Rows D1 confirmed that the `outbox` table still lists. A write of their own after each D1
   * answer would cost the object a storage commit; they go with the next commit instead (or
   * SYNCED_WRITE_DELAY_MS later, through `commitSoon`). Lost in a crash, they are only written to
   * D1 once more, which changes nothing there.
   */
  #syncedUnsaved: PendingRow[] = [];
  #syncedTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    sql: SqlStorage,
    private readonly commitSoon: () => void,
  ) {
    this.#sql = sql;
    sql.exec(
      `CREATE TABLE IF NOT EXISTS outbox (kind TEXT NOT NULL, id TEXT NOT NULL, first_change INTEGER NOT NULL, version INTEGER NOT NULL, PRIMARY KEY (kind, id))`,
    );
    for (const row of sql.exec<PendingRow & { first_change: number }>(`SELECT kind, id, first_change, version FROM outbox`)) {
      this.#pending.set(`${row.kind}:${row.id}`, { kind: row.kind, id: row.id, version: row.version, firstChange: row.first_change });
    }
    this.#lastChange = Math.max(0, ...[...this.#pending.values()].map((row) => row.version));
  }

  /** The last change made here: D1 has everything once it has synced through it. */
  lastChange(): number {
    return this.#lastChange;
  }

  /** Every change up to the returned one is in D1. */
  syncedThrough(): number {
    let oldest = Infinity;
    for (const row of this.#pending.values()) oldest = Math.min(oldest, row.firstChange);
    return oldest === Infinity ? this.#lastChange : oldest - 1;
  }

  /** The oldest pending rows, at most `limit`: parents were changed before their children, so references come first. */
  oldest(limit: number): PendingRow[] {
    return [...this.#pending.values()]
      .sort((a, b) => a.firstChange - b.firstChange)
      .slice(0, limit)
      .map(({ kind, id, version }) => ({ kind, id, version }));
  }

  ids(kind: RowKind): string[] {
    return [...this.#pending.values()].filter((row) => row.kind === kind).map((row) => row.id);
  }

  /** A row changed: pending from this change on. Returns the change's number. */
  mark(kind: RowKind, id: string): number {
    const change = ++this.#lastChange;
    const pending = this.#pending.get(`${kind}:${id}`);
    if (pending) pending.version = change;
    else this.#pending.set(`${kind}:${id}`, { kind, id, version: change, firstChange: change });
    this.#sql.exec(
      `INSERT INTO outbox (kind, id, first_change, version) VALUES (?, ?, ?, ?) ON CONFLICT (kind, id) DO UPDATE SET version = excluded.version`,
      kind,
      id,
      change,
      change,
    );
    return change;
  }

  /**
   * D1 has `rows` in these versions. A row changed again since stays pending; it is in D1 now,
   * so it no longer has to precede its children.
   */
  synced(rows: PendingRow[]): void {
    for (const { kind, id, version } of rows) {
      const pending = this.#pending.get(`${kind}:${id}`);
      if (pending?.version === version) this.#pending.delete(`${kind}:${id}`);
      else if (pending) pending.firstChange = pending.version;
    }
    this.#syncedUnsaved.push(...rows);
    this.#syncedTimer ??= setTimeout(this.commitSoon, SYNCED_WRITE_DELAY_MS);
  }

  /** Brings the `outbox` table in line with what D1 confirmed; runs inside every commit. */
  saveSynced(): void {
    clearTimeout(this.#syncedTimer);
    this.#syncedTimer = undefined;
    if (this.#syncedUnsaved.length === 0) return;
    const synced = JSON.stringify(this.#syncedUnsaved.map(({ kind, id, version }) => [kind, id, version]));
    this.#syncedUnsaved = [];
    const written = `SELECT value ->> 0 AS kind, value ->> 1 AS id, value ->> 2 AS version FROM json_each(?)`;
    this.#sql.exec(`DELETE FROM outbox WHERE (kind, id, version) IN (${written})`, synced);
    this.#sql.exec(`UPDATE outbox SET first_change = version WHERE (kind, id) IN (SELECT kind, id FROM (${written}))`, synced);
  }
}
