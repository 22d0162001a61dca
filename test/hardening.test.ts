import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createApp } from "../src/app";
import { call, callJson, countInShards, createUser, expectError, withinOneRateWindow, RATE_WINDOW_TEST_TIMEOUT_MS } from "./helpers";
import { collectFrames, deltaText, readFrames } from "./sse";

afterEach(() => vi.restoreAllMocks());

const words = (n: number) => Array.from({ length: n }, (_, i) => `w${i + 1}`).join(" ");

describe("listeners", () => {
  it("a listener joining a 5,000-token reply late gets the backlog in frames of 16 KiB, not one per token, and is not dropped for it", async () => {
    const user = await createUser();
    // 5,000 tokens at once, then the stand-in stalls until the idle timeout (1 s in tests) ends the turn.
    const response = await call("/start_conversation/", {
      token: user.access,
      headers: { Accept: "text/event-stream" },
      body: { content: "[stub: tokens=5200 delay=0 hang_after=5000] a very long answer", model_version: "gpt-4.1" },
    });
    const { value: message } = await readFrames(response.body!).next();
    const conversationId = message!.data.conversation.id;
    await new Promise((resolve) => setTimeout(resolve, 700));

    // More than 256 KiB of delta frames were sent by now: replayed one by one they would fill the new listener's buffer.
    const late = await collectFrames(await call(`/conversations/${conversationId}/stream/`, { token: user.access }));
    expect(late[0]!.event).toBe("message");
    expect(late[1]!.event).toBe("delta");
    // About 29,000 characters: two frames instead of 5,000.
    expect(late[1]!.data.content.length).toBe(16 * 1024);
    expect(late.filter((frame) => frame.event === "delta")).toHaveLength(2);
    expect(late.at(-1)).toMatchObject({ event: "error", data: { code: "upstream_timeout" } });
    expect(deltaText(late)).toBe(words(5000));
  });
});

describe("accounts", () => {
  // Up to a window edge of waiting (withinOneRateWindow) plus the test itself.
  it("limits password changes per user: a stolen access token cannot guess the old password without bound", { timeout: RATE_WINDOW_TEST_TIMEOUT_MS }, async () => {
    const user = await createUser();
    await withinOneRateWindow();
    const guesses = await Promise.all(
      Array.from({ length: 30 }, (_, i) => call("/users/me/password/", { token: user.access, body: { old_password: `guess ${i}`, new_password: "a new good passphrase" } })),
    );
    const statuses = guesses.map((r) => r.status);
    expect(statuses.filter((s) => s === 400)).toHaveLength(20);
    expect(statuses.filter((s) => s === 429)).toHaveLength(10);
    await expectError(await call("/users/me/password/", { token: user.access, body: { old_password: user.password, new_password: "a new good passphrase" } }), 429, "rate_limited");
  });

  it("refuses weak passwords: blank, one or two characters repeated, and common ones in disguise", async () => {
    for (const password of ["        ", "aaaaaaaa", "abababab", "password123", "Passw0rd!", "P@ssw0rd2024", "qwertyuiop", "iloveyou!!", "monkey12345"]) {
      const error = await expectError(await call("/auth/register/", { body: { email: `weak-${crypto.randomUUID()}@example.com`, password } }), 400, "validation_failed");
      expect(error.details[0].field, password).toBe("password");
    }
    await callJson("/auth/register/", { body: { email: `strong-${crypto.randomUUID()}@example.com`, password: "violet kettle on mars" }, status: 201 });
  });

  it("applies the content rules (valid Unicode, no NUL) to every string field, passwords included", async () => {
    const email = () => `text-${crypto.randomUUID()}@example.com`;
    for (const password of ["\ud800".repeat(8), "\udc00".repeat(8), "good password\0"]) {
      await expectError(await call("/auth/register/", { body: { email: email(), password } }), 400, "validation_failed");
    }
    await expectError(await call("/auth/register/", { body: { email: email(), password: "violet kettle on mars", name: "Ada\0" } }), 400, "validation_failed");
    await expectError(await call("/auth/token/", { body: { email: email(), password: "\ud800".repeat(8) } }), 400, "validation_failed");
    const user = await createUser();
    await expectError(await call("/conversations/", { token: user.access, body: { title: "\ud800".repeat(200) } }), 400, "validation_failed");
    await expectError(await call("/conversations/", { token: user.access, body: { system_prompt: "be\0nice" } }), 400, "validation_failed");
    const { id } = await callJson("/conversations/", { token: user.access, body: { title: "fine" }, status: 201 });
    await expectError(await call(`/conversations/${id}/`, { token: user.access, method: "PATCH", body: { title: "bad\udfff" } }), 400, "validation_failed");
    expect((await callJson(`/conversations/${id}/`, { token: user.access, status: 200 })).title).toBe("fine");
  });
});

describe("rate-limit keys and links", () => {
  it("keys IPv6 clients by their /64, however the address is written", async () => {
    const block = `2001:db8:${Math.floor(Math.random() * 0xffff).toString(16)}:${Math.floor(Math.random() * 0xffff).toString(16)}`;
    const statuses: number[] = [];
    for (let i = 0; i < 21; i++) {
      // Every sign-up from another address of the same /64, in long, short and mixed-case forms.
      const ip = [`${block}::${i + 1}`, `${block}:0:0:0:${(i + 1).toString(16)}`, `${block.toUpperCase()}:ffff::${i + 1}`][i % 3]!;
      const response = await call("/auth/register/", { body: { email: `v6-${crypto.randomUUID()}@example.com`, password: "violet kettle on mars" }, headers: { "CF-Connecting-IP": ip } });
      statuses.push(response.status);
    }
    expect(statuses.slice(0, 20).every((s) => s === 201)).toBe(true);
    expect(statuses[20]).toBe(429);
    // Another /64 is another client.
    const other = await call("/auth/register/", { body: { email: `v6-${crypto.randomUUID()}@example.com`, password: "violet kettle on mars" }, headers: { "CF-Connecting-IP": "2001:db8:ffff:1::1" } });
    expect(other.status).toBe(201);
  });

  it("builds page links on PUBLIC_URL, never on a Host header the client made up", async () => {
    const user = await createUser();
    for (let i = 0; i < 11; i++) await callJson("/conversations/", { token: user.access, body: {}, status: 201 });
    const app = createApp();
    const response = await app.request(
      "http://evil.example/conversations/?page_size=5",
      { headers: { Authorization: `Bearer ${user.access}`, Host: "evil.example" } },
      { ...env, PUBLIC_URL: "https://chat-api.example.com" },
    );
    const page = await response.json<any>();
    expect(page.next).toBe("https://chat-api.example.com/conversations/?page_size=5&page=2");
  });
});

describe("cost and concurrency caps", () => {
  it("counts each user's tokens per day and refuses turns once the daily budget is spent", async () => {
    const user = await createUser();
    const first = await callJson("/start_conversation/", { token: user.access, body: { content: "[stub: tokens=5] spend" }, status: 201 });
    const second = await callJson(`/conversations/${first.conversation.id}/add_message/`, { token: user.access, body: { content: "[stub: tokens=5] more" }, status: 201 });
    const spent = first.ai_response.usage.total_tokens + second.ai_response.usage.total_tokens;
    const usage = await callJson("/users/me/usage/", { token: user.access, status: 200 });
    expect(usage).toMatchObject({ day: new Date().toISOString().slice(0, 10), tokens_used: spent, daily_limit: 2_000_000 });
    expect(Date.parse(usage.resets_at) - Date.now()).toBeLessThanOrEqual(24 * 3600 * 1000);

    // The same Worker with a budget the user has already spent.
    const app = createApp();
    const tight = { ...env, USER_DAILY_TOKENS: String(spent) };
    const refused = await app.request(
      `/conversations/${first.conversation.id}/add_message/`,
      { method: "POST", headers: { Authorization: `Bearer ${user.access}`, "Content-Type": "application/json" }, body: JSON.stringify({ content: "one more" }) },
      tight,
    );
    const error = await expectError(refused, 429, "budget_exceeded");
    expect(error.details).toEqual({ daily_limit: spent, tokens_used: spent, daily_cost_limit_usd: null, cost_usd: 0, resets_at: usage.resets_at });
    expect(Number(refused.headers.get("Retry-After"))).toBeGreaterThan(0);
    const stored = await countInShards("SELECT count(*) AS n FROM messages WHERE conversation_id = ?", first.conversation.id);
    expect(stored).toBe(4);
  });

  it("caps a user's replies in flight exactly: 200 concurrent sends, exactly MAX_CONCURRENT_GENERATIONS accepted", { timeout: 60_000 }, async () => {
    // The per-minute turn limit is another rule; here only the concurrency cap may refuse.
    vi.spyOn(env.TURN_RATE_LIMITER, "limit").mockResolvedValue({ success: true });
    const user = await createUser();
    const responses = await Promise.all(
      Array.from({ length: 200 }, (_, i) => call("/start_conversation/", { token: user.access, body: { content: `[stub: tokens=30 delay=100] slow ${i}` } })),
    );
    const statuses = responses.map((r) => r.status);
    await Promise.all(responses.map((r) => r.body?.cancel()));
    expect(statuses.filter((s) => s === 201)).toHaveLength(50);
    expect(statuses.filter((s) => s === 429)).toHaveLength(150);
    const created = await countInShards("SELECT count(*) AS n FROM conversations WHERE user_id = ?", user.id);
    expect(created).toBe(50);
    // Every slot came back when its reply ended.
    await callJson("/start_conversation/", { token: user.access, body: { content: "[stub: tokens=1] after" }, status: 201 });
  });

  it("caps SSE listeners per reply and per user with 429", { timeout: 30_000 }, async () => {
    const user = await createUser();
    const open: Response[] = [];
    const startSlowReply = async () => {
      const response = await call("/start_conversation/", { token: user.access, headers: { Accept: "text/event-stream" }, body: { content: "[stub: tokens=40 delay=100] slow" } });
      open.push(response);
      const { value } = await readFrames(response.body!).next();
      return value!.data.conversation.id as string;
    };
    const attach = async (id: string) => {
      const response = await call(`/conversations/${id}/stream/`, { token: user.access });
      open.push(response);
      return response.status;
    };
    // One reply: the sender's own stream and 9 more make 10.
    const first = await startSlowReply();
    const perTurn = [];
    for (let i = 0; i < 10; i++) perTurn.push(await attach(first));
    expect(perTurn).toEqual([...Array(9).fill(200), 429]);

    // Across replies: 50 attached listeners per user (the 9 above count).
    const statuses = [];
    for (let r = 0; r < 5; r++) {
      const id = await startSlowReply();
      for (let i = 0; i < 9; i++) statuses.push(await attach(id));
    }
    expect(statuses.filter((s) => s === 200)).toHaveLength(41);
    expect(statuses.filter((s) => s === 429)).toHaveLength(4);
    await Promise.all(open.map((r) => r.body?.cancel().catch(() => undefined)));
  });
});
