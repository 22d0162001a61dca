import { shardDatabases } from "./helpers";

/** One call that reached D1: a batch or a single statement, on one binding. */
export interface D1Call {
  binding: string;
  statements: { sql: string; params: unknown[] }[];
  /** Whether any statement writes (INSERT, UPDATE, DELETE). */
  writes: boolean;
}

type Recorded = D1PreparedStatement & { inner: D1PreparedStatement; sql: string; params: unknown[] };

const isWrite = (sql: string) => /^\s*(insert|update|delete|replace)\b/i.test(sql);

/** `db` (a database or a session), recording every call into `calls`. */
function recordingDatabase(binding: string, db: D1Database | D1DatabaseSession, calls: D1Call[]): D1Database {
  const record = (statements: Recorded[]) =>
    calls.push({ binding, statements: statements.map(({ sql, params }) => ({ sql, params })), writes: statements.some((s) => isWrite(s.sql)) });
  const statement = (inner: D1PreparedStatement, sql: string, params: unknown[]): Recorded => {
    const self = {
      inner,
      sql,
      params,
      bind: (...values: unknown[]) => statement(inner.bind(...values), sql, values),
      first: (...args: [string?]) => (record([self]), inner.first(...(args as []))),
      all: () => (record([self]), inner.all()),
      run: () => (record([self]), inner.run()),
      raw: (options?: { columnNames?: boolean }) => (record([self]), inner.raw(options as { columnNames: true })),
    } as unknown as Recorded;
    return self;
  };
  return {
    prepare: (sql: string) => statement(db.prepare(sql), sql, []),
    batch: (statements: Recorded[]) => (record(statements), db.batch(statements.map((s) => s.inner))),
    withSession: (constraint?: string) => recordingDatabase(binding, (db as D1Database).withSession(constraint), calls),
    getBookmark: () => (db as D1DatabaseSession).getBookmark(),
  } as unknown as D1Database;
}

/** `env` with every D1 binding (the directory and the shards) recording into `calls`. */
export function recordingEnv(env: Env, calls: D1Call[]): Env {
  const shards = shardDatabases();
  const names = ["DIRECTORY", ...Object.keys(env).filter((name) => shards.includes((env as unknown as Record<string, D1Database>)[name]!))];
  const wrapped: Record<string, unknown> = { ...env };
  for (const name of names) wrapped[name] = recordingDatabase(name, (env as unknown as Record<string, D1Database>)[name]!, calls);
  return wrapped as unknown as Env;
}
