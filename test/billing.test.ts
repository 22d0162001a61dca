import { describe, expect, it } from "vitest";
import { call, callJson, createUser, type TestUser } from "./helpers";
import { deltaText, readFrames } from "./sse";

const SSE = { Accept: "text/event-stream" };

async function conversationOf(user: TestUser): Promise<string> {
  return (await callJson("/conversations/", { token: user.access, body: {}, status: 201 })).id;
}

const usageToday = (user: TestUser) => callJson("/users/me/usage/", { token: user.access, status: 200 });

async function eventually<T>(read: () => Promise<T>, done: (value: T) => boolean): Promise<T> {
  for (let i = 0; ; i++) {
    const value = await read();
    if (done(value) || i === 100) return value;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

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
