import { createExecutionContext, runInDurableObject, waitOnExecutionContext } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { getConfig } from "../src/http/config";
import { parseShardMap, parseVirtualShardSet, virtualShardOf } from "../src/db/shard-map";
import { deleteDeadRefreshTokens } from "../src/db/housekeeping";
import worker from "../src/index";
import { type D1Call, recordingEnv } from "./d1-recorder";
import { BASE, call, callJson, countInShards, createUser, expectError, randomIp, shardDatabases, shardOf, type TestUser } from "./helpers";
import { collectFrames, deltaText, firstFrames } from "./sse";

const bindingOf = (user: TestUser) => getConfig(env).shardMap.bindings.find((name) => (env as unknown as Record<string, D1Database>)[name] === shardOf(user.id))!;

/** Users until two of them live in different shard databases (the hash splits them about evenly). */
async function usersInTwoShards(): Promise<[TestUser, TestUser]> {
  const first = await createUser("shard-a");
  for (;;) {
    const other = await createUser("shard-b");
    if (bindingOf(other) !== bindingOf(first)) return [first, other];
  }
}

/** Sends one request through the Worker with every D1 binding recording, and returns the calls it made. */
async function recorded(path: string, init: { method?: string; token?: string; body?: unknown; headers?: Record<string, string> } = {}) {
  const calls: D1Call[] = [];
  const headers: Record<string, string> = { "CF-Connecting-IP": randomIp(), ...init.headers };
  if (init.token) headers.Authorization = `Bearer ${init.token}`;
  if (init.body !== undefined) headers["Content-Type"] = "application/json";
  const request = new Request(`${BASE}${path}`, {
    method: init.method ?? (init.body === undefined ? "GET" : "POST"),
    headers,
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
  });
  const ctx = createExecutionContext();
  const response = await worker.fetch(request as Request<unknown, IncomingRequestCfProperties>, recordingEnv(env, calls), ctx);
  const text = await response.text();
  await waitOnExecutionContext(ctx);
  return { response, text, calls, json: () => JSON.parse(text) };
}

describe("sharding", () => {
  it("keeps each user's rows in one shard database and users in the directory", async () => {
    const [a, b] = await usersInTwoShards();
    const turnA = await callJson("/start_conversation/", { token: a.access, body: { content: "[stub: tokens=3] from a" }, status: 201 });
    const turnB = await callJson("/start_conversation/", { token: b.access, body: { content: "[stub: tokens=3] from b" }, status: 201 });
    const rowsOf = async (db: D1Database, conversationId: string) => [
      await db.prepare("SELECT count(*) AS n FROM conversations WHERE id = ?").bind(conversationId).first("n"),
      await db.prepare("SELECT count(*) AS n FROM messages WHERE conversation_id = ?").bind(conversationId).first("n"),
    ];
    expect(await rowsOf(shardOf(a.id), turnA.conversation.id)).toEqual([1, 2]);
    expect(await rowsOf(shardOf(b.id), turnA.conversation.id)).toEqual([0, 0]);
    expect(await rowsOf(shardOf(b.id), turnB.conversation.id)).toEqual([1, 2]);
    expect(await rowsOf(shardOf(a.id), turnB.conversation.id)).toEqual([0, 0]);
    // Users live in the directory only; the shards have no users table at all.
    expect(await env.DIRECTORY.prepare("SELECT count(*) AS n FROM users WHERE id IN (?, ?)").bind(a.id, b.id).first("n")).toBe(2);
    for (const shard of shardDatabases()) {
      expect(await shard.prepare("SELECT count(*) AS n FROM sqlite_master WHERE name = 'users'").first("n")).toBe(0);
    }
  });

  it("touches at most the directory and the caller's one shard in every request", { timeout: 60_000 }, async () => {
    const [user, other] = await usersInTwoShards();
    const shard = bindingOf(user);
    const turn = await callJson("/start_conversation/", { token: user.access, body: { content: "[stub: tokens=4] hello shards" }, status: 201 });
    const id = turn.conversation.id;
    const share = await callJson(`/conversations/${id}/share/`, { token: user.access, method: "POST", status: 201 });
    const requests: [string, Parameters<typeof recorded>[1]][] = [
      ["/auth/register/", { body: { email: `shard-${crypto.randomUUID()}@example.com`, password: "correct horse battery" } }],
      ["/auth/token/", { body: { email: user.email, password: user.password } }],
      ["/auth/token/refresh/", { body: { refresh: user.refresh } }],
      ["/users/me/", { token: user.access }],
      ["/users/me/usage/", { token: user.access }],
      ["/conversations/", { token: user.access }],
      ["/conversations/", { token: user.access, body: { title: "empty" } }],
      [`/conversations/${id}/`, { token: user.access }],
      [`/conversations/${id}/`, { token: user.access, method: "PATCH", body: { title: "renamed" } }],
      [`/conversations/${id}/messages/`, { token: user.access }],
      [`/conversations/${id}/add_message/`, { token: user.access, body: { content: "[stub: tokens=3] again" } }],
      [`/messages/${turn.ai_message.id}/regenerate/`, { token: user.access, method: "POST" }],
      [`/messages/${turn.ai_message.id}/feedback/`, { token: user.access, method: "PUT", body: { rating: "up" } }],
      ["/messages/?cursor=", { token: user.access }],
      ["/search/?q=hello", { token: user.access }],
      [`/conversations/${id}/export/`, { token: user.access }],
      ["/users/me/export/", { token: user.access }],
      [`/shared/${share.token}/`, { headers: { Accept: "application/json" } }],
      [`/conversations/${id}/`, { token: other.access }],
    ];
    for (const [path, init] of requests) {
      const { response, text, calls } = await recorded(path, init);
      expect(response.status, `${path}: ${text}`).toBeLessThan(500);
      const touched = new Set(calls.map((c) => c.binding));
      const shards = [...touched].filter((binding) => binding !== "DIRECTORY");
      expect(shards.length, `${path} touched ${[...touched]}`).toBeLessThanOrEqual(1);
      if (init?.token === user.access || path.startsWith("/shared/")) expect(shards.every((binding) => binding === shard), path).toBe(true);
    }
  });

  it("takes a streamed turn on a running object with no D1 call before the model, and writes D1 behind in at most two batches", { timeout: 30_000 }, async () => {
    const user = await createUser();
    const { id } = await callJson("/conversations/", { token: user.access, body: {}, status: 201 });
    const calls: D1Call[] = [];
    // The conversation's object, with its D1 bindings recording too.
    await runInDurableObject(env.CONVERSATION.get(env.CONVERSATION.idFromName(id)), (instance) => {
      (instance as unknown as { env: Env }).env = recordingEnv(env, calls);
    });
    // About 2.5 s of streaming (the old write path wrote a checkpoint every 2 s on top), well within
    // the 5 s limit on a whole reply that the tests run with, even on a loaded machine.
    const { response, calls: workerCalls } = await recorded(`/conversations/${id}/add_message/`, {
      token: user.access,
      headers: { Accept: "text/event-stream" },
      body: { content: "[stub: tokens=250 delay=10] a long one" },
    });
    expect(response.status).toBe(200);
    // Ownership, status, leaf, branch and budget are the objects': the Worker asks D1 nothing.
    expect(workerCalls).toEqual([]);
    // The final frame waits at most 2 s for D1; on a loaded machine the final batch may land after it.
    await vi.waitFor(() => expect(calls.at(-1)!.statements.find((s) => /^insert into "ai_responses"/i.test(s.sql))!.params).toContain("Completed"), {
      timeout: 10_000,
    });
    expect(calls.every((c) => c.writes)).toBe(true);
    expect(calls.length).toBeLessThanOrEqual(2);
    expect(calls.every((c) => c.binding === bindingOf(user))).toBe(true);
    expect(calls[0]!.statements.some((s) => /^insert into "messages"/i.test(s.sql))).toBe(true);
    const listed = await callJson(`/conversations/${id}/messages/`, { token: user.access, status: 200 });
    expect(listed.results[1].content.split(" ")).toHaveLength(250);
  });

  it("takes over a conversation it does not hold yet (a fork) with one D1 read, and reads D1 no more after that", { timeout: 30_000 }, async () => {
    const user = await createUser();
    const turn = await callJson("/start_conversation/", { token: user.access, body: { content: "[stub: tokens=3] to fork" }, status: 201 });
    const fork = await callJson(`/conversations/${turn.conversation.id}/fork/`, { token: user.access, body: { message: turn.ai_message.id }, status: 201 });
    const calls: D1Call[] = [];
    await runInDurableObject(env.CONVERSATION.get(env.CONVERSATION.idFromName(fork.id)), (instance) => {
      (instance as unknown as { env: Env }).env = recordingEnv(env, calls);
    });
    const send = (content: string) => callJson(`/conversations/${fork.id}/add_message/`, { token: user.access, body: { content }, status: 201 });
    const first = await send("[stub: echo=history] first on the fork");
    // The model saw the copied branch: the object took all of it over from D1.
    expect(first.ai_message.content.split("\n")[0]).toBe("user: [stub: tokens=3] to fork");
    expect(first.user_message.order).toBe(3);
    expect(calls.filter((c) => !c.writes)).toHaveLength(1);
    calls.length = 0;
    await send("[stub: tokens=2] second");
    expect(calls.filter((c) => !c.writes)).toEqual([]);
  });

  it("serves the text of a reply in flight from its conversation object, not from D1", async () => {
    const user = await createUser();
    const response = await call("/start_conversation/", {
      token: user.access,
      headers: { Accept: "text/event-stream" },
      body: { content: "[stub: tokens=60 delay=30] keep going" },
    });
    const frames = await firstFrames(response, 11);
    const { conversation, ai_message } = frames[0]!.data;
    // D1 has no text of it: not the row yet (it goes with the final rows), or an empty one.
    const stored = await shardOf(user.id).prepare("SELECT content FROM messages WHERE id = ?").bind(ai_message.id).first("content");
    expect(stored ?? "").toBe("");
    const listed = await callJson(`/conversations/${conversation.id}/messages/`, { token: user.access, status: 200 });
    const inFlight = listed.results.find((m: { id: string }) => m.id === ai_message.id);
    expect(inFlight.content.startsWith(deltaText(frames.slice(1)))).toBe(true);
    expect(inFlight.content.length).toBeGreaterThanOrEqual(deltaText(frames.slice(1)).length);
    const paged = await callJson(`/messages/?conversation=${conversation.id}`, { token: user.access, status: 200 });
    expect(paged.results[1].content.length).toBeGreaterThan(0);
  });
});

describe("SHARD_MAP", () => {
  it("maps every virtual shard exactly once, and refuses a gap, an overlap or a range out of bounds", () => {
    const map = parseShardMap("A:0-1023,B:1024-4095");
    expect(map.bindings).toEqual(["A", "B"]);
    expect([map.bindingOf(0), map.bindingOf(1023), map.bindingOf(1024), map.bindingOf(4095)]).toEqual(["A", "A", "B", "B"]);
    expect(() => parseShardMap("A:0-1000,B:1002-4095")).toThrow(/1001 is not mapped/);
    expect(() => parseShardMap("A:0-2048,B:2048-4095")).toThrow(/2048 is mapped twice/);
    expect(() => parseShardMap("A:0-4096")).toThrow(/within 0-4095/);
    expect(() => parseShardMap("A 0-4095")).toThrow(/BINDING:first-last/);
    expect([...parseVirtualShardSet("7, 10-12")]).toEqual([7, 10, 11, 12]);
    expect(() => parseVirtualShardSet("5000")).toThrow(/FROZEN_VIRTUAL_SHARDS/);
    // Pinned: a user's virtual shard may never change between releases, or their rows are lost to them.
    expect(virtualShardOf("abc")).toBe(2315);
  });
});

describe("moving a virtual shard", () => {
  it("refuses the writes of a frozen virtual shard's users with 503 and Retry-After, and still serves their reads", async () => {
    const [user, other] = await usersInTwoShards();
    await callJson("/start_conversation/", { token: user.access, body: { content: "[stub: tokens=2] before the move" }, status: 201 });
    const frozen = { ...env, FROZEN_VIRTUAL_SHARDS: String(virtualShardOf(user.id)) } as Env;
    const send = async (who: TestUser, path: string, body?: unknown) => {
      const headers: Record<string, string> = { Authorization: `Bearer ${who.access}`, "CF-Connecting-IP": randomIp() };
      if (body !== undefined) headers["Content-Type"] = "application/json";
      const request = new Request(`${BASE}${path}`, { method: body === undefined ? "GET" : "POST", headers, body: body === undefined ? undefined : JSON.stringify(body) });
      return worker.fetch(request as Request<unknown, IncomingRequestCfProperties>, frozen, createExecutionContext());
    };
    const refused = await send(user, "/start_conversation/", { content: "[stub: tokens=2] during the move" });
    expect(refused.headers.get("Retry-After")).toBe("60");
    await expectError(refused, 503, "moving");
    await expectError(await send(user, "/conversations/", { title: "new" }), 503, "moving");
    const listed = await send(user, "/conversations/");
    expect(listed.status).toBe(200);
    expect((await listed.json<{ count: number }>()).count).toBe(1);
    // Another virtual shard's users write as usual, and nothing of the refused turn was stored.
    expect((await send(other, "/conversations/", { title: "elsewhere" })).status).toBe(201);
    expect(await countInShards("SELECT count(*) AS n FROM conversations WHERE user_id = ?", user.id)).toBe(1);
  });
});

describe("read replicas (D1 sessions)", () => {
  it("answers with X-D1-Bookmark, follows one sent back, and ignores one that is not a bookmark", async () => {
    const user = await createUser();
    const created = await call("/conversations/", { token: user.access, body: { title: "bookmarked" } });
    expect(created.status).toBe(201);
    const bookmark = created.headers.get("X-D1-Bookmark");
    expect(bookmark).toMatch(/^[0-9a-f]+(-[0-9a-f]+)+$/);
    const listed = await call("/conversations/", { token: user.access, headers: { "X-D1-Bookmark": bookmark! } });
    expect(listed.status).toBe(200);
    expect((await listed.json<{ count: number }>()).count).toBe(1);
    expect(listed.headers.get("X-D1-Bookmark")! >= bookmark!).toBe(true);
    const garbage = await call("/conversations/", { token: user.access, headers: { "X-D1-Bookmark": "not a bookmark'; --" } });
    expect(garbage.status).toBe(200);
    // A JSON turn carries the bookmark of its final write, which is newer.
    const turn = await call("/start_conversation/", { token: user.access, body: { content: "[stub: tokens=2] hi" } });
    expect(turn.headers.get("X-D1-Bookmark")! > bookmark!).toBe(true);
    // A streamed turn's final frame carries it: the headers went out before the reply was stored.
    const frames = await collectFrames(await call("/start_conversation/", { token: user.access, headers: { Accept: "text/event-stream" }, body: { content: "[stub: tokens=2] hi" } }));
    expect(frames.at(-1)!.event).toBe("done");
    expect(frames.at(-1)!.data.bookmark > turn.headers.get("X-D1-Bookmark")!).toBe(true);
  });
});

describe("housekeeping", () => {
  it("deletes expired and revoked refresh tokens, and keeps live and used-but-unexpired ones", async () => {
    const user = await createUser();
    const now = new Date();
    const at = (days: number) => new Date(now.getTime() + days * 86_400_000).toISOString();
    const rows = [
      { id: `expired-${crypto.randomUUID()}`, expires: at(-1), used: null, revoked: null, kept: false },
      { id: `expired-used-${crypto.randomUUID()}`, expires: at(-2), used: at(-3), revoked: null, kept: false },
      { id: `revoked-${crypto.randomUUID()}`, expires: at(3), used: null, revoked: at(-1), kept: false },
      { id: `live-${crypto.randomUUID()}`, expires: at(3), used: null, revoked: null, kept: true },
      { id: `used-${crypto.randomUUID()}`, expires: at(3), used: at(-1), revoked: null, kept: true },
    ];
    await env.DIRECTORY.batch(
      rows.map((row) =>
        env.DIRECTORY.prepare("INSERT INTO refresh_tokens (id, family_id, user_id, expires_at, used_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?)").bind(
          row.id,
          crypto.randomUUID(),
          user.id,
          row.expires,
          row.used,
          row.revoked,
        ),
      ),
    );
    expect(await deleteDeadRefreshTokens(env, now.toISOString())).toBeGreaterThanOrEqual(3);
    const left = await env.DIRECTORY.prepare("SELECT id FROM refresh_tokens WHERE user_id = ?").bind(user.id).all<{ id: string }>();
    const ids = left.results.map((r) => r.id);
    for (const row of rows) expect(ids.includes(row.id), row.id).toBe(row.kept);
    // The user's own login session is untouched: it still refreshes.
    await callJson("/auth/token/refresh/", { body: { refresh: user.refresh }, status: 200 });
  });

  it("runs from the cron trigger in bounded batches", async () => {
    const user = await createUser();
    const expired = new Date(Date.now() - 1000).toISOString();
    const statements = Array.from({ length: 1_200 }, (_, i) =>
      env.DIRECTORY.prepare("INSERT INTO refresh_tokens (id, family_id, user_id, expires_at) VALUES (?, ?, ?, ?)").bind(`bulk-${i}-${user.id}`, "f", user.id, expired),
    );
    for (let i = 0; i < statements.length; i += 100) await env.DIRECTORY.batch(statements.slice(i, i + 100));
    const calls: D1Call[] = [];
    const ctx = createExecutionContext();
    await worker.scheduled({ scheduledTime: Date.now(), cron: "17 * * * *", noRetry() {} } as ScheduledController, recordingEnv(env, calls), ctx);
    await waitOnExecutionContext(ctx);
    expect(await env.DIRECTORY.prepare("SELECT count(*) AS n FROM refresh_tokens WHERE user_id = ? AND id LIKE 'bulk-%'").bind(user.id).first("n")).toBe(0);
    const deletes = calls.filter((c) => c.writes);
    expect(deletes.length).toBeGreaterThanOrEqual(3);
    for (const batch of deletes) expect(batch.statements[0]!.sql).toMatch(/limit \?/i);
  });
});

describe("keyset paging", () => {
  it("pages through conversations and messages with ?cursor= and never repeats or skips a row", async () => {
    const user = await createUser();
    for (let i = 0; i < 5; i++) await callJson("/start_conversation/", { token: user.access, body: { content: `[stub: tokens=1] chat ${i}` }, status: 201 });
    const walk = async (first: string) => {
      const seen: string[] = [];
      let next: string | null = first;
      while (next) {
        const page: { next: string | null; previous: null; count: number; results: { id: string }[] } = await callJson(next.replace(BASE, ""), { token: user.access, status: 200 });
        expect(page.previous).toBeNull();
        seen.push(...page.results.map((r) => r.id));
        next = page.next;
        if (next) expect(new URL(next).searchParams.get("cursor")).toBeTruthy();
      }
      return seen;
    };
    const conversations = await walk(`${BASE}/conversations/?cursor=&page_size=2`);
    const byPage = await callJson("/conversations/?page_size=100", { token: user.access, status: 200 });
    expect(conversations).toEqual(byPage.results.map((r: { id: string }) => r.id));
    const messages = await walk(`${BASE}/messages/?cursor=&page_size=3`);
    expect(messages).toHaveLength(10);
    expect(new Set(messages).size).toBe(10);
    const inOne = await walk(`${BASE}/messages/?conversation=${byPage.results[0].id}&cursor=&page_size=1`);
    expect(inOne).toHaveLength(2);
    const bad = await call("/messages/?cursor=bm90IGpzb24", { token: user.access });
    expect(bad.status).toBe(400);
    const otherList = await callJson(`/messages/?cursor=&page_size=1`, { token: user.access, status: 200 });
    const wrongKind = await call(`/messages/?conversation=${byPage.results[0].id}&cursor=${new URL(otherList.next).searchParams.get("cursor")}`, { token: user.access });
    expect(wrongKind.status).toBe(400);
  });
});

describe("query plans", () => {
  it("uses an index for every list query on a filled database: no table scans, no sorts of a user's rows", { timeout: 60_000 }, async () => {
    const user = await createUser();
    const turn = await callJson("/start_conversation/", { token: user.access, body: { content: "[stub: tokens=3] plans and indexes" }, status: 201 });
    const id = turn.conversation.id;
    const db = shardOf(user.id);
    // 2,000 more messages and 200 more conversations, and other users' rows beside them, so the
    // planner's statistics (ANALYZE) look like a real shard's.
    const statements: D1PreparedStatement[] = [];
    for (let i = 0; i < 2_000; i++) {
      const owner = `other-user-${i % 40}`;
      const conversation = `other-conversation-${i % 400}`;
      if (i < 400) statements.push(db.prepare("INSERT INTO conversations (id, user_id, model_version) VALUES (?, ?, 'gpt-4')").bind(conversation, owner));
      statements.push(
        db
          .prepare(`INSERT INTO messages (id, conversation_id, user_id, sender, content, "order") VALUES (?, ?, ?, 'user', ?, ?)`)
          .bind(crypto.randomUUID(), conversation, owner, `someone else's message ${i}`, 1 + Math.floor(i / 400)),
      );
    }
    for (let order = 3; order <= 2002; order++) {
      statements.push(
        db
          .prepare(`INSERT INTO messages (id, conversation_id, user_id, sender, content, "order") VALUES (?, ?, ?, ?, ?, ?)`)
          .bind(crypto.randomUUID(), id, user.id, order % 2 ? "user" : "ai", `filler message ${order}`, order),
      );
    }
    for (let i = 0; i < 200; i++) {
      statements.push(db.prepare("INSERT INTO conversations (id, user_id, model_version) VALUES (?, ?, 'gpt-4')").bind(crypto.randomUUID(), user.id));
    }
    for (let i = 0; i < statements.length; i += 100) await db.batch(statements.slice(i, i + 100));

    const lists = [
      "/conversations/",
      "/conversations/?page=3",
      "/conversations/?cursor=",
      "/conversations/?search=plans",
      "/messages/",
      "/messages/?cursor=",
      `/messages/?conversation=${id}`,
      `/messages/?conversation=${id}&cursor=`,
      `/conversations/${id}/messages/`,
      "/search/?q=filler",
      `/conversations/${id}/export/`,
      "/users/me/export/",
    ];
    // Without statistics (a new database) and with them (after ANALYZE or PRAGMA optimize).
    for (const analyzed of [false, true]) {
      if (analyzed) await db.prepare("ANALYZE").run();
      for (const path of lists) {
        const { response, calls } = await recorded(path, { token: user.access });
        expect(response.status, path).toBe(200);
        for (const { sql, params } of calls.flatMap((c) => c.statements).filter((s) => /^\s*(select|with)\b/i.test(s.sql))) {
          const plan = await db.prepare(`EXPLAIN QUERY PLAN ${sql}`).bind(...params).all<{ detail: string }>();
          const where = `${path} (${analyzed ? "analyzed" : "no statistics"}): ${sql}`;
          // A search starts from the index's matches, not from every message of the user.
          const firstRead = plan.results.find(({ detail }) => /^(SCAN|SEARCH)\b/.test(detail));
          if (sql.includes("message_words MATCH")) expect(firstRead?.detail, where).toMatch(/^SCAN message_words VIRTUAL TABLE/);
          for (const { detail } of plan.results) {
            expect(detail, where).not.toMatch(/^SCAN (messages|conversations|ai_responses|summaries|shares|m|c|r)\b/);
            // Sorting is fine for a page fetched by its ids, and for ranking search matches.
            if (!/message_words|message_trigrams|json_each/.test(sql)) expect(detail, where).not.toMatch(/TEMP B-TREE FOR ORDER BY/);
          }
        }
      }
    }
  });
});

it("finds a share link's shard through the directory, and refuses tokens it does not know", async () => {
  const [a, b] = await usersInTwoShards();
  for (const user of [a, b]) {
    const turn = await callJson("/start_conversation/", { token: user.access, body: { content: `[stub: tokens=2] shared by ${user.id}` }, status: 201 });
    const { token } = await callJson(`/conversations/${turn.conversation.id}/share/`, { token: user.access, method: "POST", status: 201 });
    const shared = await callJson("/shared/", { headers: { Accept: "application/json", "X-Share-Token": token }, status: 200 });
    expect(shared.messages[0].content).toContain(user.id);
  }
  for (const token of ["fff" + "A".repeat(22), "xyz" + "A".repeat(22), "A".repeat(22), "short"]) {
    const response = await exports.default.fetch(new Request(`${BASE}/shared/`, { headers: { Accept: "application/json", "X-Share-Token": token } }));
    expect(response.status).toBe(404);
  }
});
