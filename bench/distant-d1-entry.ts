// A bench-only Worker entry (`wrangler dev bench/distant-d1-entry.ts`): the real Worker and its
// Durable Object classes, given an `env` whose D1 bindings answer BENCH_D1_RTT_MS later, as a D1
// primary on another continent would; the objects' own storage stays local, as in production.
// The wrapping is outside the code under test, so no code path can skip the delay. It also
// records every D1 round trip, every model request and every turn request, served as JSON on
// GET /__bench/events (and cleared) for bench/distant-d1.mjs to count.
import worker, { ConversationObject as RealConversationObject, UserObject as RealUserObject } from "../src/index";

type BenchEvent =
  | { kind: "request"; at: number; path: string }
  | { kind: "model"; at: number }
  | { kind: "d1"; at: number; ms: number; binding: string; writes: boolean; lagMs: number | null };

const events: BenchEvent[] = [];
const ISO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const isWrite = (sql: string) => /^\s*(insert|update|delete|replace)\b/i.test(sql);

// The model is called with fetch from the conversation object: record when each request leaves.
const realFetch = globalThis.fetch;
globalThis.fetch = (input, init) => {
  if (String(input instanceof Request ? input.url : input).includes("/chat/completions")) events.push({ kind: "model", at: Date.now() });
  return realFetch(input, init);
};

type Statement = D1PreparedStatement & { sql: string; params: unknown[]; inner: D1PreparedStatement };

function distantDatabase(binding: string, db: D1Database | D1DatabaseSession, rttMs: number): D1Database {
  /** One round trip: the delay, then the real call; a write batch's lag is measured from the newest time it carries. */
  const roundTrip = async <T>(statements: Statement[], run: () => Promise<T>): Promise<T> => {
    const at = Date.now();
    if (rttMs > 0) await scheduler.wait(rttMs);
    const result = await run();
    const writes = statements.some((s) => isWrite(s.sql));
    // The outbox's lag: from the newest change a batch of turn rows carries to D1's answer.
    const turnRows = statements.filter((s) => /"ai_responses"|"messages"/.test(s.sql));
    const times = turnRows.flatMap((s) => s.params).filter((p): p is string => typeof p === "string" && ISO_TIME.test(p));
    const newest = times.length ? Math.max(...times.map((t) => Date.parse(t))) : null;
    events.push({ kind: "d1", at, ms: Date.now() - at, binding, writes, lagMs: writes && newest !== null ? Date.now() - newest : null });
    return result;
  };
  const statement = (inner: D1PreparedStatement, sql: string, params: unknown[]): Statement => {
    const self = {
      inner,
      sql,
      params,
      bind: (...values: unknown[]) => statement(inner.bind(...values), sql, values),
      first: (column?: string) => roundTrip([self], () => inner.first(column as string)),
      all: () => roundTrip([self], () => inner.all()),
      run: () => roundTrip([self], () => inner.run()),
      raw: (options?: { columnNames?: boolean }) => roundTrip([self], () => inner.raw(options as { columnNames: true })),
    } as unknown as Statement;
    return self;
  };
  return {
    prepare: (sql: string) => statement(db.prepare(sql), sql, []),
    batch: (statements: Statement[]) => roundTrip(statements, () => db.batch(statements.map((s) => s.inner))),
    exec: (sql: string) => roundTrip([], () => (db as D1Database).exec(sql)),
    withSession: (constraint?: string) => distantDatabase(binding, (db as D1Database).withSession(constraint), rttMs),
    getBookmark: () => (db as D1DatabaseSession).getBookmark(),
  } as unknown as D1Database;
}

const wrapped = new WeakMap<Env, Env>();

function distantEnv(env: Env): Env {
  let result = wrapped.get(env);
  if (!result) {
    const rttMs = Number((env as unknown as { BENCH_D1_RTT_MS?: string }).BENCH_D1_RTT_MS ?? 0);
    const copy: Record<string, unknown> = { ...env };
    for (const [name, value] of Object.entries(env)) {
      if (value && typeof (value as D1Database).withSession === "function") copy[name] = distantDatabase(name, value as D1Database, rttMs);
    }
    result = copy as unknown as Env;
    wrapped.set(env, result);
  }
  return result;
}

export class ConversationObject extends RealConversationObject {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, distantEnv(env));
  }
}

export class UserObject extends RealUserObject {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, distantEnv(env));
  }
}

export default {
  fetch(request, env, ctx) {
    const url = new URL(request.url);
    if (url.pathname === "/__bench/events") return Response.json(events.splice(0));
    if (request.method === "POST") events.push({ kind: "request", at: Date.now(), path: url.pathname });
    return worker.fetch(request, distantEnv(env), ctx);
  },
  scheduled: (controller, env, ctx) => worker.scheduled(controller, distantEnv(env), ctx),
} satisfies ExportedHandler<Env>;
