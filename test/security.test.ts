import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { createApp } from "../src/app";
import { call, callJson, countInShards, createUser, expectError, randomIp, rowsInShards, withinOneRateWindow, RATE_WINDOW_TEST_TIMEOUT_MS } from "./helpers";
import { readFrames } from "./sse";

describe("rate limits", () => {
  // Up to a window edge of waiting (withinOneRateWindow) plus the test itself.
  it("limits sign-ups per client IP with 429 and Retry-After", { timeout: RATE_WINDOW_TEST_TIMEOUT_MS }, async () => {
    await withinOneRateWindow();
    const ip = "198.51.100.7";
    const statuses = [];
    for (let i = 0; i < 21; i++) {
      const response = await call("/auth/register/", { headers: { "CF-Connecting-IP": ip }, body: { email: `flood-${i}@example.com`, password: "a good password" } });
      statuses.push(response.status);
      if (response.status === 429) {
        expect(response.headers.get("Retry-After")).toBe("60");
        await expectError(response, 429, "rate_limited");
      }
    }
    expect(statuses.slice(0, 20)).toEqual(Array(20).fill(201));
    expect(statuses[20]).toBe(429);
    const stored = await env.DIRECTORY.prepare("SELECT count(*) AS n FROM users WHERE email LIKE 'flood-%'").first<{ n: number }>();
    expect(stored?.n).toBe(20);
  });

  // Up to a window edge of waiting (withinOneRateWindow) plus the test itself.
  it("counts failed logins per email whatever the IP, and still lets the owner's correct password in", { timeout: RATE_WINDOW_TEST_TIMEOUT_MS }, async () => {
    const user = await createUser();
    await withinOneRateWindow();
    const attacker = randomIp();
    for (let i = 0; i < 20; i++) {
      await expectError(await call("/auth/token/", { body: { email: user.email, password: `guess ${i}` }, headers: { "CF-Connecting-IP": randomIp() } }), 401);
    }
    await expectError(await call("/auth/token/", { body: { email: user.email, password: "guess 21" }, headers: { "CF-Connecting-IP": attacker } }), 429, "rate_limited");
    // The owner, from anywhere, is not locked out.
    await callJson("/auth/token/", { body: { email: user.email, password: user.password }, status: 200 });
  });

  // Up to a window edge of waiting (withinOneRateWindow) plus the test itself.
  it("limits AI turns per user to 100 a minute", { timeout: RATE_WINDOW_TEST_TIMEOUT_MS }, async () => {
    const user = await createUser();
    await withinOneRateWindow(25);
    const { id } = await callJson("/conversations/", { token: user.access, body: {}, status: 201 });
    const statuses: number[] = [];
    for (let batch = 0; batch < 5; batch++) {
      const responses = await Promise.all(
        Array.from({ length: 20 }, () => call(`/conversations/${id}/add_message/`, { token: user.access, body: { content: "[stub: tokens=1 delay=0] hi" } })),
      );
      statuses.push(...responses.map((r) => r.status));
    }
    expect(statuses.filter((s) => s === 201)).toHaveLength(100);
    const over = await call(`/conversations/${id}/add_message/`, { token: user.access, body: { content: "one too many" } });
    expect(over.headers.get("Retry-After")).toBe("60");
    await expectError(over, 429, "rate_limited");
    const stored = await countInShards("SELECT count(*) AS n FROM messages WHERE conversation_id = ?", id);
    expect(stored).toBe(200);
  });
});

describe("turn caps", () => {
  it("refuses turns beyond the queue cap of a conversation with 429 and nothing half-written", async () => {
    const user = await createUser();
    const { id } = await callJson("/conversations/", { token: user.access, body: {}, status: 201 });
    const responses = await Promise.all(
      Array.from({ length: 60 }, () => call(`/conversations/${id}/add_message/`, { token: user.access, body: { content: "[stub: tokens=3 delay=20] q" } })),
    );
    const statuses = responses.map((r) => r.status);
    expect(statuses.filter((s) => s === 201)).toHaveLength(50); // MAX_QUEUED_TURNS in vitest.config.ts
    expect(statuses.filter((s) => s === 429)).toHaveLength(10);
    for (const response of responses.filter((r) => r.status === 429)) await expectError(response, 429, "rate_limited");
    const results = await rowsInShards<{ order: number }>('SELECT "order" FROM messages WHERE conversation_id = ? ORDER BY "order"', id);
    expect(results.map((r) => r.order)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
  });

  it("refuses a user's turns beyond MAX_CONCURRENT_GENERATIONS across conversations", async () => {
    const user = await createUser();
    const app = createApp();
    const limitedEnv = { ...env, MAX_CONCURRENT_GENERATIONS: "2" };
    const start = (content: string) =>
      app.request(
        "/start_conversation/",
        {
          method: "POST",
          headers: { "Content-Type": "application/json", Accept: "text/event-stream", Authorization: `Bearer ${user.access}` },
          body: JSON.stringify({ content }),
        },
        limitedEnv,
      );
    const streams = [];
    for (let i = 0; i < 2; i++) {
      const response = await start("[stub: tokens=10 delay=40] slow");
      expect(response.status).toBe(200);
      const frames = readFrames(response.body!);
      expect((await frames.next()).value.event).toBe("message");
      streams.push(frames);
    }
    await expectError(await start("third"), 429, "rate_limited");
    expect((await callJson("/conversations/", { token: user.access, status: 200 })).count).toBe(2);
    for (const frames of streams) for await (const _ of frames);
    expect((await start("[stub: tokens=1] now there is room")).status).toBe(200);
  });
});

describe("HTTP hygiene", () => {
  it("sets security headers and a request id on SSE responses too", async () => {
    const user = await createUser();
    const response = await call("/start_conversation/", { token: user.access, headers: { Accept: "text/event-stream" }, body: { content: "[stub: tokens=2] hi" } });
    expect(response.headers.get("X-Content-Type-Options")).toBe("nosniff");
    expect(response.headers.get("X-Request-Id")).toMatch(/^[0-9a-f-]{36}$/);
    await response.text();
  });

  it("answers CORS preflights only for allowlisted origins", async () => {
    const app = createApp();
    const preflight = (origin: string, allowed: string) =>
      app.request(
        "/conversations/",
        { method: "OPTIONS", headers: { Origin: origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type" } },
        { ...env, ALLOWED_ORIGINS: allowed },
      );
    const ok = await preflight("https://chat.example.com", "https://chat.example.com,https://admin.example.com");
    expect(ok.status).toBe(204);
    expect(ok.headers.get("Access-Control-Allow-Origin")).toBe("https://chat.example.com");
    expect(ok.headers.get("Access-Control-Allow-Headers")?.toLowerCase()).toContain("authorization");
    const simple = await app.request("/health", { headers: { Origin: "https://chat.example.com" } }, { ...env, ALLOWED_ORIGINS: "https://chat.example.com" });
    expect(simple.headers.get("Access-Control-Allow-Origin")).toBe("https://chat.example.com");
    expect(simple.headers.get("Access-Control-Expose-Headers")).toContain("X-Request-Id");
    const denied = await preflight("https://evil.example", "https://chat.example.com");
    expect(denied.headers.get("Access-Control-Allow-Origin")).toBeNull();
    const byDefault = await call("/health", { headers: { Origin: "https://chat.example.com" } });
    expect(byDefault.headers.get("Access-Control-Allow-Origin")).toBeNull();
  });

  it("bounds titles, search terms and pages", async () => {
    const user = await createUser();
    await expectError(await call("/conversations/", { token: user.access, body: { title: "t".repeat(201) } }), 400, "validation_failed");
    await expectError(await call(`/conversations/?search=${"s".repeat(101)}`, { token: user.access }), 400, "validation_failed");
    await expectError(await call("/conversations/?page=1000001", { token: user.access }), 400, "validation_failed");
  });

  it("logs one structured line per request and per model call, without message content", async () => {
    const user = await createUser();
    const lines: string[] = [];
    const spy = vi.spyOn(console, "log").mockImplementation((line: string) => void lines.push(line));
    await callJson("/start_conversation/", { token: user.access, body: { content: "[stub: tokens=3] very private words" }, status: 201 });
    spy.mockRestore();
    const records = lines.map((line) => JSON.parse(line));
    expect(records).toContainEqual(
      expect.objectContaining({ level: "info", msg: "request", method: "POST", route: "/start_conversation", status: 201, user_id: user.id, request_id: expect.any(String), duration_ms: expect.any(Number) }),
    );
    expect(records).toContainEqual(
      expect.objectContaining({ level: "info", msg: "model call", model: "offline-gpt-4", outcome: "completed", completion_tokens: 3, ttft_ms: expect.any(Number) }),
    );
    expect(lines.join("\n")).not.toContain("very private words");
    expect(lines.join("\n")).not.toContain(user.access);
  });
});
