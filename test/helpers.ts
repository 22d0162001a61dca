import { runInDurableObject } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { getConfig } from "../src/http/config";
import { shardDatabase } from "../src/db/client";
import { expect } from "vitest";

export const BASE = "http://api.test";

export const randomIp = () => `10.${Math.floor(Math.random() * 256)}.${Math.floor(Math.random() * 256)}.${1 + Math.floor(Math.random() * 254)}`;

export interface CallOptions {
  method?: string;
  token?: string;
  body?: unknown;
  headers?: Record<string, string>;
}

/** Calls the Worker exactly as a client would: through its fetch handler. */
export function call(path: string, { method, token, body, headers = {} }: CallOptions = {}): Promise<Response> {
  // A fresh client address per request unless the test names one, so per-IP limits only bite where tested.
  const init: RequestInit = { method: method ?? (body === undefined ? "GET" : "POST"), headers: { "CF-Connecting-IP": randomIp(), ...headers } };
  if (token) (init.headers as Record<string, string>).Authorization = `Bearer ${token}`;
  if (body !== undefined) {
    (init.headers as Record<string, string>)["Content-Type"] ??= "application/json";
    init.body = typeof body === "string" ? body : JSON.stringify(body);
  }
  return exports.default.fetch(new Request(`${BASE}${path}`, init));
}

export async function callJson<T = any>(path: string, options?: CallOptions & { status?: number }): Promise<T> {
  const response = await call(path, options);
  const text = await response.text();
  if (options?.status !== undefined) expect(response.status, text).toBe(options.status);
  return (text ? JSON.parse(text) : undefined) as T;
}

let userCounter = 0;

export interface TestUser {
  id: string;
  email: string;
  password: string;
  access: string;
  refresh: string;
}

export async function createUser(prefix = "user"): Promise<TestUser> {
  const email = `${prefix}-${++userCounter}-${crypto.randomUUID().slice(0, 8)}@example.com`;
  const password = "correct horse battery";
  const user = await callJson("/auth/register/", { body: { email, password }, status: 201 });
  const tokens = await callJson("/auth/token/", { body: { email, password }, status: 200 });
  return { id: user.id, email, password, access: tokens.access, refresh: tokens.refresh };
}

/** Asserts the API's one error shape and returns it. */
export async function expectError(response: Response, status: number, code?: string) {
  const text = await response.text();
  expect(response.status, text).toBe(status);
  expect(response.headers.get("Content-Type")).toMatch(/^application\/json/);
  const body = JSON.parse(text);
  expect(body.error).toMatchObject({ message: expect.any(String), request_id: expect.any(String) });
  expect(body.error.request_id).toBe(response.headers.get("X-Request-Id"));
  if (code) expect(body.error.code).toBe(code);
  return body.error as { code: string; message: string; details?: any; request_id: string };
}

/** The shard databases, in SHARD_MAP's order. */
export const shardDatabases = () => getConfig(env).shardMap.bindings.map((name) => (env as unknown as Record<string, D1Database>)[name]!);

/** The database holding a user's rows. */
export const shardOf = (userId: string) => shardDatabase(env, userId);

/** A read run on every shard, the rows of all of them: what is stored, wherever it landed. */
export async function rowsInShards<T = Record<string, unknown>>(query: string, ...params: unknown[]): Promise<T[]> {
  const results = await Promise.all(shardDatabases().map((db) => db.prepare(query).bind(...params).all<T>()));
  return results.flatMap((result) => result.results);
}

/** A `SELECT count(*) AS n …` summed over every shard. */
export async function countInShards(query: string, ...params: unknown[]): Promise<number> {
  return (await rowsInShards<{ n: number }>(query, ...params)).reduce((sum, row) => sum + row.n, 0);
}

/** A test that waits for a rate window may spend that wait (up to 25 s) beside its own work. */
export const RATE_WINDOW_TEST_TIMEOUT_MS = 60_000;

/**
 * Waits, if needed, until at least `seconds` are left in the current minute. Rate limit windows
 * are aligned to the wall clock (miniflare's, like Cloudflare's), so a test counting requests up
 * to a per-minute limit must not straddle a window's edge, or its count starts over halfway.
 */
export async function withinOneRateWindow(seconds = 15): Promise<void> {
  const left = 60_000 - (Date.now() % 60_000);
  if (left < seconds * 1000) await new Promise((resolve) => setTimeout(resolve, left + 50));
}

export const conversationStub = (conversationId: string) => env.CONVERSATION.get(env.CONVERSATION.idFromName(conversationId));

/** Gives the running object of a conversation another `env` (D1 faults for its outbox), or its own back. */
export async function setObjectEnv(conversationId: string, objectEnv: Env): Promise<void> {
  await runInDurableObject(conversationStub(conversationId), (instance) => {
    (instance as unknown as { env: Env }).env = objectEnv;
  });
}

/** Slots the user's object holds (generation and listener leases). */
export async function heldSlots(userId: string): Promise<number> {
  return runInDurableObject(env.USER.get(env.USER.idFromName(userId)), (_instance, state) => state.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM leases").one().n);
}

/** Reads until `done` holds (every 50 ms, at most about 5 s), for what lands in the background; the last read either way. */
export async function eventually<T>(read: () => Promise<T>, done: (value: T) => boolean): Promise<T> {
  for (let i = 0; ; i++) {
    const value = await read();
    if (done(value) || i === 100) return value;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
