import { drizzle, type DrizzleD1Database } from "drizzle-orm/d1";
import { getConfig } from "../http/config";
import { virtualShardOf } from "./shard-map";

export type Database = DrizzleD1Database;

/**
 * A Drizzle handle over one D1 session. Drizzle's D1 driver only calls `prepare` and `batch`,
 * which a session has too, so a session can stand in for the database.
 */
export class Connection {
  readonly db: Database;
  readonly #session: D1DatabaseSession;

  constructor(session: D1DatabaseSession) {
    this.#session = session;
    this.db = drizzle(session as unknown as D1Database);
  }

  /** A statement on the session itself, for writers that build their SQL once instead of per call (the outbox). */
  prepare(query: string): D1PreparedStatement {
    return this.#session.prepare(query);
  }

  batch(statements: D1PreparedStatement[]): Promise<D1Result[]> {
    return this.#session.batch(statements);
  }

  /** The newest point of the database this session has seen: send it back to read at least that. */
  get bookmark(): string | null {
    return this.#session.getBookmark();
  }
}

/** The directory database (users, refresh tokens), in a session at its primary: login must see the latest password. */
export const directoryDb = (env: Env): Database => new Connection(env.DIRECTORY.withSession("first-primary")).db;

/** The shard database holding `userId`'s rows. */
export const shardDatabase = (env: Env, userId: string) => virtualShardDatabase(env, virtualShardOf(userId));

/** The shard database holding the rows of the users of `virtualShard`. */
export function virtualShardDatabase(env: Env, virtualShard: number): D1Database {
  const name = getConfig(env).shardMap.bindingOf(virtualShard);
  const binding = (env as unknown as Record<string, Partial<D1Database> | undefined>)[name];
  if (typeof binding?.withSession !== "function") throw new Error(`SHARD_MAP names ${name}, which is not a D1 binding`);
  return binding as D1Database;
}

/**
 * A session on `userId`'s shard. `constraint` is a bookmark (read at least that), "first-primary"
 * (reads that decide something: order, admission) or "first-unconstrained" (any replica).
 */
export const shardSession = (env: Env, userId: string, constraint: string) => virtualShardSession(env, virtualShardOf(userId), constraint);

/** The same for the shard of the users of `virtualShard` (a share link names only that). */
export const virtualShardSession = (env: Env, virtualShard: number, constraint: string) =>
  new Connection(virtualShardDatabase(env, virtualShard).withSession(constraint));
