import { runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { d1AnswersLost, d1Down, faultyEnv } from "./d1-faults";
import { virtualShardOf } from "../src/db/shard-map";
import { type D1Call, recordingEnv } from "./d1-recorder";
import { call, callJson, conversationStub, countInShards, createUser, expectError, heldSlots, rowsInShards, setObjectEnv } from "./helpers";
import { collectFrames, deltaText, firstFrames } from "./sse";

const storedRows = async (conversationId: string) => ({
  conversations: await countInShards("SELECT count(*) AS n FROM conversations WHERE id = ?", conversationId),
  messages: await countInShards("SELECT count(*) AS n FROM messages WHERE conversation_id = ?", conversationId),
  responses: await countInShards("SELECT count(*) AS n FROM ai_responses r JOIN messages m ON m.id = r.ai_message_id WHERE m.conversation_id = ?", conversationId),
});

const usageInD1 = async (userId: string) => (await rowsInShards<{ tokens: number }>("SELECT tokens FROM usage_daily WHERE user_id = ?", userId))[0]?.tokens ?? 0;

describe("write-behind", () => {
  it("lists a turn D1 does not have yet, and D1 gets every row exactly once when it is back", { timeout: 30_000 }, async () => {
    const user = await createUser();
    const { id } = await callJson("/conversations/", { token: user.access, body: { title: "behind" }, status: 201 });
    await setObjectEnv(id, faultyEnv(d1Down));

    const frames = await collectFrames(await call(`/conversations/${id}/add_message/`, { token: user.access, headers: { Accept: "text/event-stream" }, body: { content: "[stub: tokens=6] while D1 is away" } }));
    const done = frames.at(-1)!;
    expect(done.event).toBe("done");
    // D1 never confirmed: the last frame says so by carrying no bookmark.
    expect(done.data.bookmark).toBeUndefined();
    expect(await storedRows(id)).toEqual({ conversations: 1, messages: 0, responses: 0 });

    const listed = await callJson(`/conversations/${id}/messages/`, { token: user.access, status: 200 });
    expect(listed.results.map((m: { sender: string }) => m.sender)).toEqual(["user", "ai"]);
    expect(listed.results[1]).toMatchObject({ id: done.data.ai_message.id, content: deltaText(frames), sender: "ai" });
    expect(listed.results[0]).toMatchObject({ content: "[stub: tokens=6] while D1 is away", ai_response_status: "Completed" });
    expect((await callJson(`/conversations/${id}/`, { token: user.access, status: 200 })).current_leaf).toBe(done.data.ai_message.id);
    const paged = await callJson(`/messages/?conversation=${id}`, { token: user.access, status: 200 });
    expect(paged.count).toBe(2);
    expect(paged.results.map((m: { order: number }) => m.order)).toEqual([1, 2]);

    const calls: D1Call[] = [];
    await setObjectEnv(id, recordingEnv(env, calls));
    await runDurableObjectAlarm(conversationStub(id));
    expect(await storedRows(id)).toEqual({ conversations: 1, messages: 2, responses: 1 });
    expect(await usageInD1(user.id)).toBe(done.data.ai_response.usage.total_tokens);
    // The reply ended before its accept rows were written: one batch carries the whole turn.
    expect(calls).toHaveLength(1);
    expect(calls[0]!.statements.filter((s) => /^insert into "messages"/i.test(s.sql))).toHaveLength(2);
    expect(calls[0]!.statements.find((s) => /^insert into "ai_responses"/i.test(s.sql))!.params).toContain("Completed");
  });

  it("writes a batch D1 applied but never acknowledged again without a second copy or a second charge", { timeout: 30_000 }, async () => {
    const user = await createUser();
    const { id } = await callJson("/conversations/", { token: user.access, body: {}, status: 201 });
    await setObjectEnv(id, faultyEnv(d1AnswersLost(3)));
    const turn = await callJson(`/conversations/${id}/add_message/`, { token: user.access, body: { content: "[stub: tokens=4] once" }, status: 201 });
    await setObjectEnv(id, env);
    await runDurableObjectAlarm(conversationStub(id));
    expect(await storedRows(id)).toEqual({ conversations: 1, messages: 2, responses: 1 });
    const [stored] = await rowsInShards<{ status: string; content: string }>(
      "SELECT r.status, m.content FROM ai_responses r JOIN messages m ON m.id = r.ai_message_id WHERE m.id = ?",
      turn.ai_message.id,
    );
    expect(stored).toEqual({ status: "Completed", content: turn.ai_message.content });
    expect(await usageInD1(user.id)).toBe(turn.ai_response.usage.total_tokens);
    expect((await callJson("/users/me/usage/", { token: user.access, status: 200 })).tokens_used).toBe(turn.ai_response.usage.total_tokens);
    expect(await heldSlots(user.id)).toBe(0);
  });

  it("holds its writes while the owner's virtual shard is frozen (being moved), and writes them once it is not", { timeout: 30_000 }, async () => {
    const user = await createUser();
    const { id } = await callJson("/conversations/", { token: user.access, body: {}, status: 201 });
    // The object's configuration says the shard is being moved; the Worker's does not yet (it is
    // about to be, or a deploy is rolling out): the turn is accepted, and D1 must not get it.
    await setObjectEnv(id, { ...env, FROZEN_VIRTUAL_SHARDS: String(virtualShardOf(user.id)) } as Env);
    const turn = await callJson(`/conversations/${id}/add_message/`, { token: user.access, body: { content: "[stub: tokens=3] during the move" }, status: 201 });
    expect(await storedRows(id)).toEqual({ conversations: 1, messages: 0, responses: 0 });
    expect((await callJson(`/conversations/${id}/messages/`, { token: user.access, status: 200 })).count).toBe(2);

    await setObjectEnv(id, env);
    await runDurableObjectAlarm(conversationStub(id));
    expect(await storedRows(id)).toEqual({ conversations: 1, messages: 2, responses: 1 });
    expect(await usageInD1(user.id)).toBe(turn.ai_response.usage.total_tokens);
  });
});

describe("if_busy", () => {
  const slowTurn = async (token: string, id: string) => {
    const response = await call(`/conversations/${id}/add_message/`, { token, headers: { Accept: "text/event-stream" }, body: { content: "[stub: tokens=200 delay=10] slow" } });
    return { response, frames: await firstFrames(response, 4) };
  };

  it("reject: answers 409 busy and stores nothing while a reply is in flight", async () => {
    const user = await createUser();
    const { id } = await callJson("/conversations/", { token: user.access, body: {}, status: 201 });
    await slowTurn(user.access, id);
    const refused = await call(`/conversations/${id}/add_message/`, { token: user.access, body: { content: "not now", if_busy: "reject" } });
    await expectError(refused, 409, "busy");
    const listed = await callJson(`/conversations/${id}/messages/?branch=all`, { token: user.access, status: 200 });
    expect(listed.count).toBe(2);
    expect(listed.results.some((m: { content: string }) => m.content === "not now")).toBe(false);
    // With nothing in flight, reject sends as usual.
    await callJson(`/conversations/${id}/cancel/`, { token: user.access, method: "POST", status: 200 });
    await callJson(`/conversations/${id}/add_message/`, { token: user.access, body: { content: "[stub: tokens=2] now", if_busy: "reject" }, status: 201 });
  });

  it("interrupt: stops the reply in flight as cancelled with its text kept, then runs the new turn after it", async () => {
    const user = await createUser();
    const { id } = await callJson("/conversations/", { token: user.access, body: {}, status: 201 });
    const { frames } = await slowTurn(user.access, id);
    const first = frames[0]!.data.ai_message.id;
    const next = await callJson(`/conversations/${id}/add_message/`, { token: user.access, body: { content: "[stub: echo=history] instead", if_busy: "interrupt" }, status: 201 });
    expect(next.ai_response.status).toBe("Completed");
    expect(next.user_message.parent).toBe(first);
    const listed = await callJson(`/conversations/${id}/messages/`, { token: user.access, status: 200 });
    const cancelled = listed.results.find((m: { id: string }) => m.id === first);
    expect(cancelled.content.length).toBeGreaterThan(0);
    const [response] = await rowsInShards<{ status: string; error_code: string }>("SELECT status, error_code FROM ai_responses WHERE ai_message_id = ?", first);
    expect(response).toEqual({ status: "Error", error_code: "cancelled" });
    // The model saw the cancelled reply's text before the new message.
    expect(next.ai_message.content).toContain(`assistant: (${cancelled.content.length} chars)`);
  });

  it("works on /chat too", async () => {
    const user = await createUser();
    const chat = (text: string, id: string, ifBusy?: string) =>
      call("/chat", { token: user.access, body: { id: "busy-chat", trigger: "submit-message", messages: [{ id, role: "user", parts: [{ type: "text", text }] }], ...(ifBusy ? { if_busy: ifBusy } : {}) } });
    const running = await chat("[stub: tokens=200 delay=10] slow", "m1");
    expect(running.status).toBe(200);
    const reader = running.body!.getReader();
    await reader.read();
    await expectError(await chat("later", "m2", "reject"), 409, "busy");
    await reader.cancel();
  });
});
