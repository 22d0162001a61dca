import { env } from "cloudflare:workers";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createApp } from "../src/app";
import { call, callJson, createUser, expectError, shardOf, type TestUser, withinOneRateWindow, RATE_WINDOW_TEST_TIMEOUT_MS } from "./helpers";
import { virtualShardOf } from "../src/db/shard-map";
import { sha256Hex } from "../src/lib/ids";

const search = (user: TestUser, q: string, extra = "") => callJson(`/search/?q=${encodeURIComponent(q)}${extra}`, { token: user.access, status: 200 });
const ids = (page: any) => page.results.map((hit: any) => hit.message.id);

describe("full-text search", () => {
  it("finds words in your messages and replies, best match first, with highlighted snippets", async () => {
    const user = await createUser();
    const porto = await callJson("/start_conversation/", { token: user.access, body: { content: "[stub: tokens=2] Plan a weekend in Porto with pastéis de nata", title: "Porto" }, status: 201 });
    await callJson("/start_conversation/", { token: user.access, body: { content: "[stub: tokens=2] Porto again? Porto, Porto, Porto!" }, status: 201 });
    await callJson("/start_conversation/", { token: user.access, body: { content: "[stub: tokens=2] Something else entirely" }, status: 201 });

    const page = await search(user, "porto");
    expect(page.count).toBe(2);
    // The message that says it four times ranks first.
    expect(page.results[0].message.content).toContain("Porto again");
    expect(page.results[0].rank).toBeLessThanOrEqual(page.results[1].rank);
    expect(page.results[1]).toMatchObject({ conversation: { id: porto.conversation.id, title: "Porto" }, message: { id: porto.user_message.id } });
    expect(page.results[1].snippet).toContain("<mark>Porto</mark>");

    // Replies are indexed once they finish; accents and case fold.
    expect((await search(user, "w1 w2")).count).toBe(3);
    expect(ids(await search(user, "PASTEIS"))).toEqual([porto.user_message.id]);
    // A word of three or more letters also finds the words it begins; a shorter one, whole words only.
    expect((await search(user, "port")).count).toBe(2);
    expect(ids(await search(user, "weekend pas"))).toEqual([porto.user_message.id]);
    expect((await search(user, "po")).count).toBe(0);
    expect(ids(await search(user, "de"))).toEqual([porto.user_message.id]);
  });

  it("pages through many matches with an exact count", async () => {
    const user = await createUser();
    for (let i = 0; i < 3; i++) {
      await callJson("/start_conversation/", { token: user.access, body: { content: `[stub: tokens=1] quokka number ${i} quokka` }, status: 201 });
    }
    const first = await search(user, "quokka", "&page_size=2");
    const second = await search(user, "quokka", "&page_size=2&page=2");
    expect([first.count, second.count]).toEqual([3, 3]);
    expect(new Set([...ids(first), ...ids(second)]).size).toBe(3);
    expect(second.next).toBeNull();
    await expectError(await call("/search/?q=quokka&page_size=2&page=3", { token: user.access }), 404, "invalid_page");
  });

  it("ranks hundreds of a user's matches as it ranks a few: the same scores, best first, counted exactly", async () => {
    const user = await createUser();
    const best = await callJson("/start_conversation/", { token: user.access, body: { content: "[stub: tokens=1] ocelot ocelot ocelot ocelot" }, status: 201 });
    // 600 more matches, more than are ranked row by row (see wordHits), inserted as a backfill would; the triggers index them.
    const db = shardOf(user.id);
    await db
      .prepare(
        `INSERT INTO messages (id, conversation_id, user_id, sender, content, "order", parent_id)
         WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 599)
         SELECT ?1 || '-' || i, ?2, ?3, 'user', 'an ocelot, number ' || i || CASE WHEN i % 200 = 0 THEN ' and a zebu' ELSE '' END, 3 + i, NULL FROM n`,
      )
      .bind(best.user_message.id, best.conversation.id, user.id)
      .run();
    let neighbour = await createUser();
    while (shardOf(neighbour.id) !== shardOf(user.id)) neighbour = await createUser();
    // The same text in the same database: the same bm25 score, whichever way its matches are ranked.
    const twin = await callJson("/start_conversation/", { token: neighbour.access, body: { content: "[stub: tokens=1] ocelot ocelot ocelot ocelot" }, status: 201 });

    const many = await search(user, "ocelot", "&page_size=100");
    expect(many.count).toBe(601);
    expect(many.results[0].message.id).toBe(best.user_message.id);
    expect(many.results[0].snippet).toBe("[stub: tokens=1] <mark>ocelot</mark> <mark>ocelot</mark> <mark>ocelot</mark> <mark>ocelot</mark>");
    const ranks = many.results.map((hit: any) => hit.rank);
    expect(ranks).toEqual([...ranks].sort((a, b) => a - b));
    expect((await search(user, "ocelot", "&page_size=100&page=7")).results).toHaveLength(1);
    const few = await search(user, "ocelot zebu");
    expect(few.count).toBe(3);
    expect(few.results.map((hit: any) => hit.snippet)).toEqual(expect.arrayContaining(["an <mark>ocelot</mark>, number 200 and a <mark>zebu</mark>"]));
    const alone = await search(neighbour, "ocelot");
    expect(ids(alone)).toEqual([twin.user_message.id]);
    expect(alone.results[0].rank).toBe(many.results[0].rank);
  });

  it("finds CJK, Hangul, Thai and accented text, also words shorter than three characters", async () => {
    const user = await createUser();
    const turn = await callJson("/start_conversation/", { token: user.access, body: { content: "[stub: tokens=1] 東京で美味しいラーメンを食べたい。Café crème à Paris." }, status: 201 });
    const korean = await callJson("/start_conversation/", { token: user.access, body: { content: "[stub: tokens=1] 내일 서울에서 만나요" }, status: 201 });
    const thai = await callJson("/start_conversation/", { token: user.access, body: { content: "[stub: tokens=1] สวัสดีครับ ยินดีที่ได้รู้จัก" }, status: 201 });
    for (const q of ["ラーメン", "東京", "美味しい ラーメン", "東京 ラーメン", "cafe creme", "PARIS", "à"]) {
      expect(ids(await search(user, q)), q).toEqual([turn.user_message.id]);
    }
    // Written without spaces between words: any run of characters inside the text is found.
    expect(ids(await search(user, "서울에"))).toEqual([korean.user_message.id]);
    expect(ids(await search(user, "서울"))).toEqual([korean.user_message.id]);
    expect(ids(await search(user, "ดีคร"))).toEqual([thai.user_message.id]);
    expect((await search(user, "ラーメン 서울")).count).toBe(0);
  });

  it("only ever shows the caller's own visible messages", async () => {
    const owner = await createUser();
    const other = await createUser();
    const turn = await callJson("/start_conversation/", { token: owner.access, body: { content: "[stub: tokens=1] the zanzibar plan" }, status: 201 });
    const second = await callJson("/start_conversation/", { token: owner.access, body: { content: "[stub: tokens=1] zanzibar in a deleted conversation" }, status: 201 });
    expect((await search(owner, "zanzibar")).count).toBe(2);
    expect((await search(other, "zanzibar")).count).toBe(0);
    // A user whose rows share the owner's database (and its search index) sees none of them either.
    let neighbour = await createUser();
    while (shardOf(neighbour.id) !== shardOf(owner.id)) neighbour = await createUser();
    await callJson("/start_conversation/", { token: neighbour.access, body: { content: "[stub: tokens=1] my own zanzibar" }, status: 201 });
    expect((await search(neighbour, "zanzibar")).count).toBe(1);
    expect((await search(neighbour, "zanzibar")).results[0].message.content).toBe("[stub: tokens=1] my own zanzibar");
    expect((await search(owner, "zanzibar")).count).toBe(2);

    await callJson(`/messages/${turn.user_message.id}/mark_deleted/`, { token: owner.access, method: "PATCH", status: 200 });
    await call(`/conversations/${second.conversation.id}/`, { token: owner.access, method: "DELETE" });
    expect((await search(owner, "zanzibar")).count).toBe(0);
    // Restoring the conversation brings its messages back.
    await callJson(`/conversations/${second.conversation.id}/`, { token: owner.access, method: "PATCH", body: { status: "Active" }, status: 200 });
    expect(ids(await search(owner, "zanzibar"))).toEqual([second.user_message.id]);
  });

  it("keeps the index right through edits, regenerates and forks", async () => {
    const user = await createUser();
    const turn = await callJson("/start_conversation/", { token: user.access, body: { content: "[stub: echo=history] original marmalade" }, status: 201 });
    await callJson(`/messages/${turn.user_message.id}/edit_message/`, { token: user.access, method: "PATCH", body: { content: "[stub: echo=history] edited quince" }, status: 200 });
    expect((await search(user, "marmalade")).results.map((h: any) => h.message.sender)).toEqual(["ai"]); // the reply still quotes it
    expect(ids(await search(user, "quince"))).toEqual([turn.user_message.id]);

    const regenerated = await callJson(`/messages/${turn.ai_message.id}/regenerate/`, { token: user.access, method: "POST", status: 201 });
    expect(ids(await search(user, "quince"))).toEqual(expect.arrayContaining([turn.user_message.id, regenerated.ai_message.id]));
    const fork = await callJson(`/conversations/${turn.conversation.id}/fork/`, { token: user.access, body: { message: turn.user_message.id }, status: 201 });
    const forked = (await search(user, "quince")).results.filter((h: any) => h.conversation.id === fork.id);
    expect(forked).toHaveLength(1);
  });

  it("is built by its migration for the messages already stored, visible ones only", async () => {
    const user = await createUser();
    const kept = await callJson("/start_conversation/", { token: user.access, body: { content: "[stub: tokens=1] backfilled walrus 東京タワー" }, status: 201 });
    const hidden = await callJson("/start_conversation/", { token: user.access, body: { content: "[stub: tokens=1] hidden walrus" }, status: 201 });
    const gone = await callJson("/start_conversation/", { token: user.access, body: { content: "[stub: tokens=1] walrus of a deleted conversation" }, status: 201 });
    await callJson(`/messages/${hidden.user_message.id}/mark_deleted/`, { token: user.access, method: "PATCH", status: 200 });
    await call(`/conversations/${gone.conversation.id}/`, { token: user.access, method: "DELETE" });
    // The database as it was before the word index: both indexes empty, then the migration's own backfill.
    const db = shardOf(user.id);
    await db.batch([db.prepare("DELETE FROM message_words"), db.prepare("DELETE FROM message_trigrams")]);
    expect((await search(user, "walrus")).count).toBe(0);
    const migration = env.TEST_SHARD_MIGRATIONS.find((m) => m.name.startsWith("0002_"))!;
    const backfill = migration.queries.filter((query) => /^\s*(--[^\n]*\n\s*)*INSERT INTO/.test(query));
    expect(backfill).toHaveLength(2);
    await db.batch(backfill.map((query) => db.prepare(query)));

    expect(ids(await search(user, "walrus"))).toEqual([kept.user_message.id]);
    expect(ids(await search(user, "タワー"))).toEqual([kept.user_message.id]);
    // And the triggers go on from there: restoring the conversation brings its message back.
    await callJson(`/conversations/${gone.conversation.id}/`, { token: user.access, method: "PATCH", body: { status: "Active" }, status: 200 });
    expect((await search(user, "walrus")).count).toBe(2);
  });

  it("ranks a user's results by their own messages only: the same order and ranks with or without a neighbour's rows in the shard", async () => {
    const user = await createUser();
    let neighbour = await createUser();
    while (shardOf(neighbour.id) !== shardOf(user.id)) neighbour = await createUser();
    for (const content of ["zetak7 quartz lamp", "quartz quartz lamp on the desk", "a lamp, zetak7q2x9 and quartz", "quartz"]) {
      await callJson("/start_conversation/", { token: user.access, body: { content: `[stub: tokens=1] ${content}` }, status: 201 });
    }
    const queries = ["quartz", "quartz lamp", "lamp quartz zetak7", "zetak"];
    const before = await Promise.all(queries.map((q) => search(user, q)));
    // The attack: the neighbour floods the shard's index with the words and with candidate prefixes.
    for (const content of ["quartz quartz quartz", "zetak7q2x9 zetak7q2x9", "lamp lamp lamp lamp quartz", "zetak7a zetak7b zetak7c zetak7d"]) {
      await callJson("/start_conversation/", { token: neighbour.access, body: { content: `[stub: tokens=1] ${content}` }, status: 201 });
    }
    const after = await Promise.all(queries.map((q) => search(user, q)));
    const shape = (page: any) => page.results.map((hit: any) => [hit.message.id, hit.rank]);
    expect(after.map(shape)).toEqual(before.map(shape));
    expect(before[0].count).toBe(4);
  });

  it("bounds what one search may cost: repeated words count once, at most 8 different words, and a per-user rate limit", { timeout: RATE_WINDOW_TEST_TIMEOUT_MS }, async () => {
    await withinOneRateWindow(20);
    const user = await createUser();
    await callJson("/start_conversation/", { token: user.access, body: { content: "[stub: tokens=1] one two three four five six seven eight nine" }, status: 201 });
    expect((await search(user, Array(50).fill("one").join(" "))).count).toBe(1);
    expect((await search(user, "one two three four five six seven eight")).count).toBe(1);
    const tooMany = await expectError(await call(`/search/?q=${encodeURIComponent("one two three four five six seven eight nine")}`, { token: user.access }), 400, "validation_failed");
    expect(JSON.stringify(tooMany.details)).toContain("at most 8");
    // SEARCH_RATE_LIMITER: 60 a minute per user.
    const statuses = [];
    for (let i = 0; i < 61; i++) statuses.push((await call("/search/?q=one", { token: user.access })).status);
    expect(statuses.filter((status) => status === 200).length).toBeLessThanOrEqual(60);
    await expectError(await call("/search/?q=one", { token: user.access }), 429, "rate_limited");
  });

  it("takes any text as plain words: syntax, hostile and random queries all answer 200; empty or over-long is a 400", async () => {
    const user = await createUser();
    await callJson("/start_conversation/", { token: user.access, body: { content: '[stub: tokens=1] say "hello" AND (maybe) NEAR -not* OR' }, status: 201 });
    const encoded = ['"hello"', "hello*", "NEAR(hello maybe)", "-not", "AND", "OR hello", "(maybe", 'say "hel', "^hello", "hello:", "a\0b", "{}[]"].map(encodeURIComponent);
    // A lone surrogate's bytes, and bytes that are not UTF-8 at all.
    encoded.push("%ED%A0%80x", "%FF%FEabc");
    for (const q of encoded) {
      const response = await call(`/search/?q=${q}`, { token: user.access });
      expect(response.status, q).toBe(200);
    }
    expect((await search(user, "(maybe)")).count).toBe(1);
    // A thousand searches are past the per-user rate limit: this app's limiter lets them all through.
    const app = createApp();
    const unlimited = { ...env, SEARCH_RATE_LIMITER: { limit: async () => ({ success: true }) } } as unknown as Env;
    await fc.assert(
      fc.asyncProperty(fc.string({ minLength: 1, maxLength: 60, unit: fc.oneof(fc.constant("grapheme"), fc.constant("binary")) as any }), async (q) => {
        const text = q.replaceAll("\0", " ").toWellFormed().trim();
        if (!text) return;
        const response = await app.request(`/search/?q=${encodeURIComponent(q.toWellFormed())}`, { headers: { Authorization: `Bearer ${user.access}` } }, unlimited);
        const words = new Set(text.split(/\s+/).map((word) => word.toLowerCase()));
        // More than 8 different words is the one thing refused.
        expect(response.status, JSON.stringify(q)).toBe(words.size > 8 ? 400 : 200);
        await response.arrayBuffer();
      }),
      { numRuns: 1_000 },
    );
    await expectError(await call("/search/?q=", { token: user.access }), 400, "validation_failed");
    await expectError(await call("/search/?q=%20%20", { token: user.access }), 400, "validation_failed");
    await expectError(await call(`/search/?q=${"x".repeat(201)}`, { token: user.access }), 400, "validation_failed");
    await expectError(await call("/search/?q=hello"), 401, "unauthorized");
  });
});

describe("feedback", () => {
  it("rates your own AI replies, shows it in listings, and clears it with null", async () => {
    const user = await createUser();
    const turn = await callJson("/start_conversation/", { token: user.access, body: { content: "[stub: tokens=2] rate me" }, status: 201 });
    const rated = await callJson(`/messages/${turn.ai_message.id}/feedback/`, { token: user.access, method: "PUT", body: { rating: "down", comment: "too short" }, status: 200 });
    expect(rated.feedback).toEqual({ rating: "down", comment: "too short" });
    const listed = await callJson(`/conversations/${turn.conversation.id}/messages/`, { token: user.access, status: 200 });
    expect(listed.results[1].feedback).toEqual({ rating: "down", comment: "too short" });
    expect((await callJson(`/messages/?conversation=${turn.conversation.id}`, { token: user.access, status: 200 })).results[1].feedback).toEqual({ rating: "down", comment: "too short" });

    const cleared = await callJson(`/messages/${turn.ai_message.id}/feedback/`, { token: user.access, method: "PUT", body: { rating: null }, status: 200 });
    expect(cleared.feedback).toBeNull();

    await expectError(await call(`/messages/${turn.user_message.id}/feedback/`, { token: user.access, method: "PUT", body: { rating: "up" } }), 400, "bad_request");
    const stranger = await createUser();
    await expectError(await call(`/messages/${turn.ai_message.id}/feedback/`, { token: stranger.access, method: "PUT", body: { rating: "up" } }), 404, "not_found");
    await expectError(await call(`/messages/${turn.ai_message.id}/feedback/`, { token: user.access, method: "PUT", body: { rating: "meh" } }), 400, "validation_failed");
  });
});

describe("export", () => {
  it("downloads a conversation as JSON or Markdown, the current branch or every branch", async () => {
    const user = await createUser();
    const turn = await callJson("/start_conversation/", { token: user.access, body: { content: "[stub: tokens=2] first question", title: "Export me" }, status: 201 });
    const regenerated = await callJson(`/messages/${turn.ai_message.id}/regenerate/`, { token: user.access, method: "POST", status: 201 });
    const id = turn.conversation.id;

    const json = await call(`/conversations/${id}/export/`, { token: user.access });
    expect(json.headers.get("Content-Disposition")).toBe(`attachment; filename="conversation-${id}.json"`);
    const current = await json.json<any>();
    expect(current.conversation).toMatchObject({ id, title: "Export me" });
    expect(current.messages.map((m: any) => m.id)).toEqual([turn.user_message.id, regenerated.ai_message.id]);
    const all = await callJson(`/conversations/${id}/export/?branch=all`, { token: user.access, status: 200 });
    expect(all.messages.map((m: any) => m.order)).toEqual([1, 2, 3]);

    const markdown = await call(`/conversations/${id}/export/?format=markdown&branch=all`, { token: user.access });
    expect(markdown.headers.get("Content-Type")).toMatch(/^text\/markdown/);
    const text = await markdown.text();
    expect(text).toContain("# Export me");
    expect(text).toContain("### You · #1\n\n> [stub: tokens=2] first question");
    expect(text).toContain("### Assistant · #3 (after #1)");

    const stranger = await createUser();
    await expectError(await call(`/conversations/${id}/export/`, { token: stranger.access }), 404, "not_found");
    await expectError(await call(`/conversations/${id}/export/?format=pdf`, { token: user.access }), 400, "validation_failed");
  });

  it("keeps each message inside its own section of the Markdown export, whatever it or the title holds", async () => {
    const user = await createUser();
    const forged = "fine\n### Assistant · #99\n   # Also not a heading\r\nend";
    const turn = await callJson("/start_conversation/", { token: user.access, body: { content: `[stub: tokens=1] ${forged}` }, status: 201 });
    const id = turn.conversation.id;
    await callJson(`/conversations/${id}/`, { token: user.access, method: "PATCH", body: { title: "Line one\r\n## Injected section" }, status: 200 });
    const text = await (await call(`/conversations/${id}/export/?format=markdown`, { token: user.access })).text();
    const headings = text.split("\n").filter((line) => /^ {0,3}#/.test(line));
    expect(headings).toEqual(["# Line one ## Injected section", "### You · #1", "### Assistant · #2"]);
    expect(text).toContain("> \\### Assistant · #99\n>    \\# Also not a heading\n> end");
  });

  it("streams a large conversation and a whole account as NDJSON, page by page", { timeout: 60_000 }, async () => {
    const user = await createUser();
    const turn = await callJson("/start_conversation/", { token: user.access, body: { content: "[stub: tokens=1] big one" }, status: 201 });
    // 1,200 more messages, written straight to D1 as a long history would be.
    const db = shardOf(user.id);
    const statements = [];
    let parent = turn.ai_message.id;
    for (let order = 3; order <= 1202; order++) {
      const id = crypto.randomUUID();
      statements.push(
        db.prepare(`INSERT INTO messages (id, conversation_id, user_id, sender, content, "order", parent_id) VALUES (?, ?, ?, ?, ?, ?, ?)`).bind(
          id,
          turn.conversation.id,
          user.id,
          order % 2 ? "user" : "ai",
          `message ${order}`,
          order,
          parent,
        ),
      );
      parent = id;
    }
    statements.push(db.prepare("UPDATE conversations SET current_leaf_id = ? WHERE id = ?").bind(parent, turn.conversation.id));
    for (let i = 0; i < statements.length; i += 100) await db.batch(statements.slice(i, i + 100));
    await callJson("/start_conversation/", { token: user.access, body: { content: "[stub: tokens=1] small one" }, status: 201 });

    const big = await callJson(`/conversations/${turn.conversation.id}/export/`, { token: user.access, status: 200 });
    expect(big.messages).toHaveLength(1202);
    expect(big.messages.at(-1).content).toBe("message 1202");

    const response = await call("/users/me/export/", { token: user.access });
    expect(response.headers.get("Content-Type")).toMatch(/^application\/x-ndjson/);
    const lines = (await response.text()).trim().split("\n").map((line) => JSON.parse(line));
    expect(lines.filter((l) => l.type === "conversation")).toHaveLength(2);
    expect(lines.filter((l) => l.type === "message")).toHaveLength(1204);
    expect(lines[0]).toMatchObject({ type: "conversation", id: turn.conversation.id });
    expect(lines[1202]).toMatchObject({ type: "message", content: "message 1202" });
    expect(lines.every((l) => l.type !== "message" || l.conversation)).toBe(true);
  });
});

describe("share links", () => {
  const readLink = (token: string) => call("/shared/", { headers: { Accept: "application/json", "X-Share-Token": token } });

  it("serve a read-only snapshot of the current branch without auth, until revoked", async () => {
    const user = await createUser();
    const turn = await callJson("/start_conversation/", { token: user.access, body: { content: "[stub: tokens=2] share this", title: "Shared plans", system_prompt: "secret prompt" }, status: 201 });
    const id = turn.conversation.id;
    const link = await callJson(`/conversations/${id}/share/`, { token: user.access, method: "POST", status: 201 });
    // 128 random bits, in the fragment: no server, log or trace ever sees it.
    expect(link.token).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(link.url).toBe(`http://api.test/shared/#${link.token}`);

    // Later messages are not part of the snapshot.
    await callJson(`/conversations/${id}/add_message/`, { token: user.access, body: { content: "[stub: tokens=1] after sharing" }, status: 201 });
    const response = await readLink(link.token);
    expect(response.status).toBe(200);
    expect(response.headers.get("Cache-Control")).toBe("no-store");
    expect(response.headers.get("Vary")).toContain("Accept");
    const shared = await response.json();
    expect(shared).toEqual({
      title: "Shared plans",
      messages: [
        { sender: "user", content: "[stub: tokens=2] share this", timestamp: turn.user_message.timestamp },
        { sender: "ai", content: "w1 w2", timestamp: turn.ai_message.timestamp },
      ],
    });
    expect(JSON.stringify(shared)).not.toMatch(new RegExp(`${user.id}|${user.email}|secret prompt|${id}`));

    const page = await call("/shared/", { headers: { Accept: "text/html" } });
    expect(page.status).toBe(200);
    expect(page.headers.get("Content-Type")).toMatch(/^text\/html/);
    expect(page.headers.get("Cache-Control")).toBe("no-store");
    expect(await page.text()).toContain("/shared.js");

    const stranger = await createUser();
    await expectError(await call(`/conversations/${id}/share/`, { token: stranger.access, method: "POST" }), 404, "not_found");
    await expectError(await call(`/conversations/${id}/share/`, { token: stranger.access, method: "DELETE" }), 404, "not_found");

    expect((await call(`/conversations/${id}/share/`, { token: user.access, method: "DELETE" })).status).toBe(204);
    const revoked = await readLink(link.token);
    expect(revoked.headers.get("Cache-Control")).toBe("no-store");
    await expectError(revoked, 404, "not_found");
    await expectError(await readLink("not-a-real-token"), 404, "not_found");

    // A new link replaces the old one.
    const first = await callJson(`/conversations/${id}/share/`, { token: user.access, method: "POST", status: 201 });
    const second = await callJson(`/conversations/${id}/share/`, { token: user.access, method: "POST", status: 201 });
    await expectError(await readLink(first.token), 404, "not_found");
    expect((await readLink(second.token)).status).toBe(200);
  });

  it("stops working when its conversation is deleted, and stays revoked when it is restored", async () => {
    const user = await createUser();
    const turn = await callJson("/start_conversation/", { token: user.access, body: { content: "[stub: tokens=2] share then delete" }, status: 201 });
    const id = turn.conversation.id;
    const link = await callJson(`/conversations/${id}/share/`, { token: user.access, method: "POST", status: 201 });
    expect((await readLink(link.token)).status).toBe(200);
    expect((await call(`/conversations/${id}/`, { token: user.access, method: "DELETE" })).status).toBe(204);
    await expectError(await readLink(link.token), 404, "not_found");
    await callJson(`/conversations/${id}/`, { token: user.access, method: "PATCH", body: { status: "Active" }, status: 200 });
    await expectError(await readLink(link.token), 404, "not_found");
  });

  it("still opens links made before tokens moved to the fragment (owner's virtual shard first, in the path)", async () => {
    const user = await createUser();
    const turn = await callJson("/start_conversation/", { token: user.access, body: { content: "[stub: tokens=2] an old link" }, status: 201 });
    const legacy = virtualShardOf(user.id).toString(16).padStart(3, "0") + "A".repeat(22);
    await shardOf(user.id)
      .prepare("INSERT INTO shares (token_hash, conversation_id, user_id, leaf_message_id, created_at) VALUES (?, ?, ?, ?, ?)")
      .bind(await sha256Hex(legacy), turn.conversation.id, user.id, turn.ai_message.id, new Date().toISOString())
      .run();
    const shared = await callJson(`/shared/${legacy}/`, { headers: { Accept: "application/json" }, status: 200 });
    expect(shared.messages.map((m: { content: string }) => m.content)).toEqual(["[stub: tokens=2] an old link", "w1 w2"]);
    expect((await readLink(legacy)).status).toBe(200);
  });
});
