import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { call, callJson, countInShards, createUser, expectError } from "./helpers";
import { collectFrames, deltaText } from "./sse";

const SSE = { Accept: "text/event-stream" };

async function countRows(conversationId: string) {
  return {
    messages: await countInShards("SELECT count(*) AS n FROM messages WHERE conversation_id = ?", conversationId),
    responses: await countInShards("SELECT count(*) AS n FROM ai_responses r JOIN messages m ON m.id = r.message_id WHERE m.conversation_id = ?", conversationId),
  };
}

describe("Idempotency-Key", () => {
  it("10 concurrent add_message calls with one key make one message and one model call, and all get the same result", async () => {
    const user = await createUser();
    const { id } = await callJson("/conversations/", { token: user.access, body: {}, status: 201 });
    const headers = { "Idempotency-Key": "send-1" };
    const responses = await Promise.all(
      Array.from({ length: 10 }, () => call(`/conversations/${id}/add_message/`, { token: user.access, headers, body: { content: "[stub: tokens=20 delay=5] once" } })),
    );
    const bodies = await Promise.all(responses.map((r) => r.json<any>()));
    expect(responses.map((r) => r.status)).toEqual(Array(10).fill(201));
    expect(new Set(bodies.map((b) => b.user_message.id)).size).toBe(1);
    expect(new Set(bodies.map((b) => b.ai_response.id)).size).toBe(1);
    expect(bodies.every((b) => b.ai_response.status === "Completed")).toBe(true);
    expect(await countRows(id)).toEqual({ messages: 2, responses: 1 });

    // Later retries, JSON or SSE, get the stored original.
    const again = await callJson(`/conversations/${id}/add_message/`, { token: user.access, headers, body: { content: "[stub: tokens=20 delay=5] once" }, status: 201 });
    expect(again).toEqual(bodies[0]);
    const frames = await collectFrames(await call(`/conversations/${id}/add_message/`, { token: user.access, headers: { ...headers, ...SSE }, body: { content: "[stub: tokens=20 delay=5] once" } }));
    expect(frames.map((f) => f.event)).toEqual(["message", "delta", "done"]);
    expect(frames[0]!.data.user_message.id).toBe(bodies[0].user_message.id);
    expect(deltaText(frames)).toBe(bodies[0].ai_message.content);
    expect(await countRows(id)).toEqual({ messages: 2, responses: 1 });
  });

  it("attaches a retry to the reply still in flight", async () => {
    const user = await createUser();
    const { id } = await callJson("/conversations/", { token: user.access, body: {}, status: 201 });
    const init = { token: user.access, headers: { "Idempotency-Key": "k", ...SSE }, body: { content: "[stub: tokens=15 delay=20] slow" } };
    const first = await call(`/conversations/${id}/add_message/`, init);
    const retry = await call(`/conversations/${id}/add_message/`, init);
    const [a, b] = await Promise.all([collectFrames(first), collectFrames(retry)]);
    expect(b.map((f) => f.id)).toEqual(a.map((f) => f.id));
    expect(deltaText(b)).toBe(deltaText(a));
    expect(await countRows(id)).toEqual({ messages: 2, responses: 1 });
  });

  it("replays start_conversation into the same conversation", async () => {
    const user = await createUser();
    const init = { token: user.access, headers: { "Idempotency-Key": "start-1" }, body: { content: "[stub: tokens=5 delay=10] hello", title: "Once" } };
    const results = await Promise.all(Array.from({ length: 5 }, () => callJson("/start_conversation/", { ...init, status: 201 })));
    expect(new Set(results.map((r) => r.conversation.id)).size).toBe(1);
    expect(new Set(results.map((r) => r.ai_message.id)).size).toBe(1);
    const list = await callJson("/conversations/", { token: user.access, status: 200 });
    expect(list.count).toBe(1);
    expect(await countRows(results[0].conversation.id)).toEqual({ messages: 2, responses: 1 });
  });

  it("replays a failed turn with its original 502", async () => {
    const user = await createUser();
    const { id } = await callJson("/conversations/", { token: user.access, body: {}, status: 201 });
    const init = { token: user.access, headers: { "Idempotency-Key": "fails" }, body: { content: "[stub: status=500] boom" } };
    const first = await call(`/conversations/${id}/add_message/`, init);
    const second = await call(`/conversations/${id}/add_message/`, init);
    expect([first.status, second.status]).toEqual([502, 502]);
    const [a, b] = [await first.json<any>(), await second.json<any>()];
    expect(b.ai_response).toEqual(a.ai_response);
    expect(b.error).toMatchObject({ code: "upstream_error", details: { code: "upstream_error" } });
  });

  it("forgets a key after 24 hours: reusing it then is refused instead of replayed", async () => {
    const user = await createUser();
    const init = { token: user.access, headers: { "Idempotency-Key": "old-key" }, body: { content: "[stub: tokens=2] hi" } };
    const first = await callJson("/start_conversation/", { ...init, status: 201 });
    const stub = env.CONVERSATION.get(env.CONVERSATION.idFromName(first.conversation.id));
    await runInDurableObject(stub, (_, state) => {
      state.storage.sql.exec("UPDATE idempotency_keys SET created_at = created_at - ?", 25 * 60 * 60 * 1000);
    });
    await expectError(await call("/start_conversation/", init), 422, "idempotency_key_reused");
    expect(await countRows(first.conversation.id)).toEqual({ messages: 2, responses: 1 });
  });

  it("refuses the same key with a different body (422), keeps keys per user, and validates the key", async () => {
    const user = await createUser();
    const other = await createUser();
    const { id } = await callJson("/conversations/", { token: user.access, body: {}, status: 201 });
    const headers = { "Idempotency-Key": "shared-key" };
    await callJson(`/conversations/${id}/add_message/`, { token: user.access, headers, body: { content: "[stub: tokens=2] a" }, status: 201 });
    await expectError(await call(`/conversations/${id}/add_message/`, { token: user.access, headers, body: { content: "[stub: tokens=2] b" } }), 422, "idempotency_key_reused");
    expect(await countRows(id)).toEqual({ messages: 2, responses: 1 });

    const theirs = await callJson("/start_conversation/", { token: other.access, headers, body: { content: "[stub: tokens=2] a" }, status: 201 });
    const mine = await callJson("/start_conversation/", { token: user.access, headers, body: { content: "[stub: tokens=2] a" }, status: 201 });
    expect(theirs.conversation.id).not.toBe(mine.conversation.id);

    for (const key of ["", "x".repeat(256), "tab\there", "é"]) {
      const error = await expectError(
        await call(`/conversations/${id}/add_message/`, { token: user.access, headers: { "Idempotency-Key": key }, body: { content: "c" } }),
        400,
        "validation_failed",
      );
      expect(error.details[0].field).toBe("idempotency-key");
    }
    expect(await countRows(id)).toEqual({ messages: 2, responses: 1 });
  });
});
