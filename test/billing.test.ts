import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { createApp } from "../src/app";
import { call, callJson, createUser, expectError, heldSlots, type TestUser, eventually } from "./helpers";
import { deltaText, readFrames } from "./sse";

const SSE = { Accept: "text/event-stream" };

async function conversationOf(user: TestUser): Promise<string> {
  return (await callJson("/conversations/", { token: user.access, body: {}, status: 201 })).id;
}

const usageToday = (user: TestUser) => callJson("/users/me/usage/", { token: user.access, status: 200 });

describe("a reply without the provider's usage is charged an estimate", () => {
  it("charges a cancelled reply its prompt and the text streamed, marked as estimated", async () => {
    const user = await createUser();
    const id = await conversationOf(user);
    const streaming = await call(`/conversations/${id}/add_message/`, { token: user.access, headers: SSE, body: { content: `[stub: tokens=40 delay=20] ${"a long prompt ".repeat(130)}` } });
    const frames = [];
    for await (const frame of readFrames(streaming.body!)) {
      frames.push(frame);
      if (frames.length === 11) await callJson(`/conversations/${id}/cancel/`, { token: user.access, method: "POST", status: 200 });
    }
    const final = frames.at(-1)!;
    expect(final).toMatchObject({ event: "error", data: { code: "cancelled" } });
    const { usage } = final.data.ai_response;
    expect(usage.estimated).toBe(true);
    // The prompt is about 1,800 bytes: far more than the 72 tokens a free cancel used to leave.
    expect(usage.prompt_tokens).toBeGreaterThan(500);
    expect(usage.completion_tokens).toBeGreaterThanOrEqual(Math.ceil(deltaText(frames).length / 3));
    expect(usage.total_tokens).toBe(usage.prompt_tokens + usage.completion_tokens);
    expect((await eventually(() => usageToday(user), (today) => today.tokens_used > 0)).tokens_used).toBe(usage.total_tokens);
  });

  it("charges a reply that failed after its first token, and nothing for one that failed before", async () => {
    const user = await createUser();
    const id = await conversationOf(user);
    const broken = await callJson(`/conversations/${id}/add_message/`, { token: user.access, body: { content: "[stub: tokens=10 fail_after=4] break" }, status: 502 });
    expect(broken.ai_response).toMatchObject({ status: "Error", response_content: "w1 w2 w3 w4", usage: { estimated: true } });
    const refused = await callJson(`/conversations/${id}/add_message/`, { token: user.access, body: { content: "[stub: status=503] refuse" }, status: 502 });
    expect(refused.ai_response.usage).toBeNull();
    expect((await eventually(() => usageToday(user), (today) => today.tokens_used > 0)).tokens_used).toBe(broken.ai_response.usage.total_tokens);
  });
});

describe("the daily budget is a reservation, not a gate", () => {
  const app = createApp();
  const withBudget = (user: TestUser, tokens: number) => (path: string, body: object) =>
    app.request(path, { method: "POST", headers: { Authorization: `Bearer ${user.access}`, "Content-Type": "application/json" }, body: JSON.stringify(body) }, {
      ...env,
      USER_DAILY_TOKENS: String(tokens),
    } as Env);

  it("lets 50 concurrent turns at the edge of the budget overshoot it by at most one turn's allowance", { timeout: 60_000 }, async () => {
    const user = await createUser();
    const BUDGET = 5_000;
    const ALLOWANCE = 100;
    const post = withBudget(user, BUDGET);
    const ids = await Promise.all(Array.from({ length: 10 }, () => conversationOf(user)));
    const prompt = "a prompt of some length ".repeat(40);
    const responses = await Promise.all(
      Array.from({ length: 50 }, (_, i) => post(`/conversations/${ids[i % 10]}/add_message/`, { content: `[stub: tokens=50 delay=1] ${prompt}`, max_output_tokens: ALLOWANCE })),
    );
    const statuses = responses.map((response) => response.status);
    expect(statuses.filter((status) => status === 201).length).toBeGreaterThan(0);
    expect(statuses.every((status) => status === 201 || status === 429)).toBe(true);
    const refused = await responses.find((response) => response.status === 429)!.json<any>();
    expect(refused.error.code).toBe("budget_exceeded");
    await eventually(() => heldSlots(user.id), (held) => held === 0);
    const spent = (await eventually(() => usageToday(user), (today) => today.tokens_used > 0)).tokens_used;
    expect(spent).toBeLessThanOrEqual(BUDGET + ALLOWANCE);
  });

  it("refuses a turn whose long history would spend more than the budget leaves, storing nothing", async () => {
    const user = await createUser();
    const id = await conversationOf(user);
    const long = "x".repeat(1_900);
    for (let i = 0; i < 4; i++) await callJson(`/conversations/${id}/add_message/`, { token: user.access, body: { content: `[stub: tokens=2] ${long}` }, status: 201 });
    const spent = (await eventually(() => usageToday(user), (today) => today.tokens_used > 0)).tokens_used;
    // A short message the Worker would let through; its prompt is the whole history, about 2,000 tokens.
    const response = await withBudget(user, spent + 1_000)(`/conversations/${id}/add_message/`, { content: "[stub: tokens=2] short", max_output_tokens: 50 });
    const error = await expectError(response, 429, "budget_exceeded");
    expect(error.details.tokens_needed).toBeGreaterThan(1_900);
    expect(error.details.tokens_left).toBeLessThanOrEqual(1_000);
    const listed = await callJson(`/conversations/${id}/messages/`, { token: user.access, status: 200 });
    expect(listed.count).toBe(8);
    expect(await heldSlots(user.id)).toBe(0);
  });
});
