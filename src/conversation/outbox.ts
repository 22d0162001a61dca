import type { Connection } from "../db/client";
import { log } from "../lib/log";
import type { ConversationStore, PendingRow } from "./conversation-store";
import { conversationWrites, messageWrites, responseWrites, summaryWrites } from "./d1-writes";

/** Rows per D1 batch: a turn is 3–4 rows, so one batch carries several turns' worth. */
const ROWS_PER_BATCH = 40;
const MAX_RETRY_MS = 30_000;

interface Waiter {
  change: number;
  resolve: (bookmark: string | null) => void;
}

/**
 * Writes what the object committed to D1, behind the turn: every pending row in its latest
 * version, oldest first, in batches. Each write is idempotent (an upsert of the whole row, usage
 * added only alongside the first write that makes a response final), so a batch retried after a
 * failure or a restart, whether or not D1 had applied it, leaves every row there exactly once.
 * One batch at a time; what is changed meanwhile goes with the next, so a reply that ends while
 * its accept rows are still waiting reaches D1 in the same batch.
 */
export class Outbox {
  #running: Promise<void> | null = null;
  /** A drain was asked for since the running one last looked: it looks again, or another starts. */
  #requested = false;
  #failures = 0;
  #retry: ReturnType<typeof setTimeout> | undefined;
  #waiters: Waiter[] = [];
  #bookmark: string | null = null;

  constructor(
    private readonly store: ConversationStore,
    /** A session at the primary of the conversation's shard, or null while that shard is frozen (being moved). */
    private readonly connect: () => Connection | null,
    /** Called when rows stay pending: the object keeps an alarm so a restart drains them. */
    private readonly onStalled: () => void,
  ) {}

  get isEmpty(): boolean {
    return this.store.pending.syncedThrough() >= this.store.pending.lastChange();
  }

  /** Starts draining, unless a drain is running (it will pick up what is pending now). */
  drain(): Promise<void> {
    this.#requested = true;
    // A drain that found nothing left settles a moment after it looked: one asked for in that
    // moment starts again rather than waiting for the alarm.
    this.#running ??= this.#drainAll().finally(() => {
      this.#running = null;
      if (this.#requested) void this.drain();
    });
    return this.#running;
  }

  /**
   * Resolves with the D1 bookmark once D1 has every change through `change`, or with null after
   * `timeoutMs` (the change is committed in the object either way; only D1 is behind).
   */
  synced(change: number, timeoutMs: number): Promise<string | null> {
    if (this.store.pending.syncedThrough() >= change) return Promise.resolve(this.#bookmark);
    const { promise, resolve } = Promise.withResolvers<string | null>();
    const waiter = { change, resolve };
    this.#waiters.push(waiter);
    const timer = setTimeout(() => {
      this.#waiters = this.#waiters.filter((w) => w !== waiter);
      resolve(null);
    }, timeoutMs);
    void promise.finally(() => clearTimeout(timer));
    this.drain();
    return promise;
  }

  async #drainAll(): Promise<void> {
    clearTimeout(this.#retry);
    for (;;) {
      this.#requested = false;
      const rows = this.store.pending.oldest(ROWS_PER_BATCH);
      if (rows.length === 0) return;
      const connection = this.connect();
      if (!connection) return this.#stall("the conversation's shard is frozen");
      const started = Date.now();
      try {
        await connection.batch(rows.flatMap((row) => this.#statements(connection, row)));
      } catch (error) {
        return this.#stall(String(error));
      }
      this.#failures = 0;
      this.#bookmark = connection.bookmark ?? this.#bookmark;
      this.store.markSynced(rows);
      log.debug("outbox batch", { rows: rows.length, ms: Date.now() - started });
      this.#wake();
    }
  }

  #wake(): void {
    const through = this.store.pending.syncedThrough();
    const ready = this.#waiters.filter((w) => w.change <= through);
    this.#waiters = this.#waiters.filter((w) => w.change > through);
    for (const waiter of ready) waiter.resolve(this.#bookmark);
  }

  /** D1 refused or was unreachable: try again with backoff while the object lives, and from its alarm after a restart. */
  #stall(reason: string): void {
    // The retry below is the next attempt: nothing asked for meanwhile may skip its backoff.
    this.#requested = false;
    const delay = Math.min(MAX_RETRY_MS, 250 * 2 ** this.#failures++);
    log.warn("outbox could not write to D1; retrying", { reason, retry_ms: delay });
    this.#retry = setTimeout(() => this.drain(), delay);
    this.onStalled();
  }

  /** The idempotent writes that bring D1's copy of `row` to the object's. */
  #statements(connection: Connection, { kind, id }: PendingRow): D1PreparedStatement[] {
    if (kind === "conversation") return conversationWrites(connection, this.store.conversation()!);
    if (kind === "message") return messageWrites(connection, this.store.message(id)!);
    if (kind === "response") return responseWrites(connection, this.store.response(id)!);
    const { spentTokens, spentCostUsd, ...summary } = this.store.summary(id)!;
    return summaryWrites(connection, summary, this.store.conversation()!.userId, { tokens: spentTokens, costUsd: spentCostUsd });
  }
}
