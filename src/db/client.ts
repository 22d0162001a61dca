import { drizzle, type DrizzleD1Database } from "drizzle-orm/d1";
import * as schema from "./schema";

export type Database = DrizzleD1Database<typeof schema>;

// One Drizzle instance per D1 binding per isolate: building it per request is wasted work.
const instances = new WeakMap<D1Database, Database>();

export function getDb(env: Env): Database {
  let db = instances.get(env.DB);
  if (!db) {
    db = drizzle(env.DB, { schema });
    instances.set(env.DB, db);
  }
  return db;
}
