import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { call, callJson, createUser, setObjectEnv, type TestUser } from "./helpers";
import { collectFrames, deltaText } from "./sse";

const SSE = { Accept: "text/event-stream" };

async function conversationOf(user: TestUser): Promise<string> {
  return (await callJson("/conversations/", { token: user.access, body: {}, status: 201 })).id;
}

describe("a stream that ends without a finish reason", () => {
  it("is an upstream error that keeps its text, whether the stream just stops or sends [DONE]", async () => {
    const user = await createUser();
    const id = await conversationOf(user);
    const cut = await collectFrames(await call(`/conversations/${id}/add_message/`, { token: user.access, headers: SSE, body: { content: "[stub: tokens=6 cut_after=3] cut" } }));
    expect(cut.at(-1)).toMatchObject({ event: "error", data: { code: "upstream_error", message: "The model's stream ended early." } });
    expect(cut.at(-1)!.data).toMatchObject({ ai_message: { content: "w1 w2 w3" }, ai_response: { status: "Error", finish_reason: null, usage: { estimated: true } } });

    const unfinished = await callJson(`/conversations/${id}/add_message/`, { token: user.access, body: { content: "[stub: tokens=4 no_finish=1] no finish" }, status: 502 });
    expect(unfinished.error).toMatchObject({ code: "upstream_error", details: { code: "upstream_error" } });
    // The provider's usage came: nothing is estimated.
    expect(unfinished.ai_response).toMatchObject({ status: "Error", response_content: "w1 w2 w3 w4", usage: { estimated: false } });
  });
});

describe("long replies", () => {
  it("streams a single huge delta as frames of at most 16 KiB to a listener that keeps up, with the text once in the last frame", async () => {
    const user = await createUser();
    const id = await conversationOf(user);
    const response = await call(`/conversations/${id}/add_message/`, { token: user.access, headers: SSE, body: { content: "[stub: tokens=3 burst=300000] burst" } });
    const raw = await response.text();
    const frames = await collectFrames(new Response(raw));
    const deltas = frames.filter((f) => f.event === "delta");
    expect(deltas.every((f) => f.data.content.length <= 16 * 1024)).toBe(true);
    const text = `${"b".repeat(300_000)}w1 w2 w3`;
    expect(deltaText(frames)).toBe(text);
    const done = frames.at(-1)!;
    expect(done).toMatchObject({ event: "done", data: { ai_message: { content: text }, ai_response: { status: "Completed" } } });
    expect(done.data.ai_response.response_content).toBeUndefined();
    // The whole stream: the text once in deltas and once in the last frame, not three times.
    expect(raw.length).toBeLessThan(2 * text.length + 20_000);

    const resumed = await collectFrames(await call(`/conversations/${id}/stream/`, { token: user.access, headers: { ...SSE, "Last-Event-ID": deltas[2]!.id } }));
    expect(deltaText(resumed)).toBe(text.slice(3 * 16 * 1024));
  });

  it("ends a reply at MAX_REPLY_BYTES with finish_reason length, stored as Completed", async () => {
    const user = await createUser();
    const id = await conversationOf(user);
    await setObjectEnv(id, { ...env, MAX_REPLY_BYTES: "1000" } as Env);
    const turn = await callJson(`/conversations/${id}/add_message/`, { token: user.access, body: { content: "[stub: tokens=500 delay=0] write a lot" }, status: 201 });
    const full = Array.from({ length: 500 }, (_, i) => `w${i + 1}`).join(" ");
    expect(turn.ai_response).toMatchObject({ status: "Completed", finish_reason: "length" });
    expect(turn.ai_message.content.length).toBe(1000);
    expect(full.startsWith(turn.ai_message.content)).toBe(true);
    const listed = await callJson(`/conversations/${id}/messages/`, { token: user.access, status: 200 });
    expect(listed.results[1].content).toBe(turn.ai_message.content);
  });
});
