import { env } from "cloudflare:workers";
import { shardDatabases } from "./helpers";

/** What a shard's `batch` does instead of running: `run` is the real batch. */
export type BatchFault = (run: () => Promise<D1Result[]>) => Promise<D1Result[]>;

/** D1 is unreachable: every batch fails before it reaches the database. */
export const d1Down: BatchFault = () => Promise.reject(new Error("D1_ERROR: Network connection lost."));

/** The first `n` batches go through, then D1 is unreachable. */
export const d1DownAfter = (n: number): BatchFault => {
  let passed = 0;
  return (run) => (passed++ < n ? run() : d1Down(run));
};

/** D1 applies the first `n` batches but the answer is lost: the writer must retry what is already there. */
export const d1AnswersLost = (n: number): BatchFault => {
  let lost = 0;
  return async (run) => {
    const results = await run();
    if (lost++ < n) throw new Error("D1_ERROR: Network connection lost.");
    return results;
  };
};

function faultySession(session: D1DatabaseSession, fault: BatchFault): D1DatabaseSession {
  return {
    prepare: (sql: string) => session.prepare(sql),
    batch: (statements: D1PreparedStatement[]) => fault(() => session.batch(statements)),
    getBookmark: () => session.getBookmark(),
  } as unknown as D1DatabaseSession;
}

/** `env` with every shard's batches going through `fault`. */
export function faultyEnv(fault: BatchFault): Env {
  const shards = shardDatabases();
  const wrapped: Record<string, unknown> = { ...env };
  for (const [name, binding] of Object.entries(env)) {
    if (!shards.includes(binding as D1Database)) continue;
    const db = binding as D1Database;
    wrapped[name] = { ...db, prepare: db.prepare.bind(db), batch: db.batch.bind(db), withSession: (c?: string) => faultySession(db.withSession(c), fault) };
  }
  return wrapped as unknown as Env;
}
