import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { call, callJson, countInShards, createUser, expectError, type TestUser } from "./helpers";

// A send whose history the conversation object already knows (a first message, or the branch it
// cached after the previous turn) starts its model call beside the accept batch. These check that
// this never shows stale history or a token of a turn that was not stored.

const history = async (user: TestUser, id: string, content: string) =>
  (await callJson(`/conversations/${id}/add_message/`, { token: user.access, body: { content: `[stub: echo=history] ${content}` }, status: 201 })).ai_message.content.split("\n");

describe("a model call started before the turn is stored", () => {
  it("sends the edited text and leaves out deleted messages after the cached branch was used", async () => {
    const user = await createUser();
    const first = await callJson("/start_conversation/", { token: user.access, body: { content: "[stub: tokens=2] alpha" }, status: 201 });
    const id = first.conversation.id;
    expect(await history(user, id, "one")).toEqual(["user: [stub: tokens=2] alpha", "assistant: (5 chars)", "user: [stub: echo=history] one"]);

    await callJson(`/messages/${first.user_message.id}/edit_message/`, { token: user.access, method: "PATCH", body: { content: "alpha, edited" }, status: 200 });
    const afterEdit = await history(user, id, "two");
    expect(afterEdit[0]).toBe("user: alpha, edited");
    expect(afterEdit).toHaveLength(5);

    await callJson(`/messages/${first.user_message.id}/mark_deleted/`, { token: user.access, method: "PATCH", status: 200 });
    const afterDelete = await history(user, id, "three");
    expect(afterDelete.some((line: string) => line.includes("alpha"))).toBe(false);
    expect(afterDelete.at(-1)).toBe("user: [stub: echo=history] three");
  });

  it("stores nothing and streams nothing when the accept batch fails, and the conversation still works", async () => {
    const user = await createUser();
    const { id } = await callJson("/conversations/", { token: user.access, body: {}, status: 201 });
    const stub = env.CONVERSATION.get(env.CONVERSATION.idFromName(id));
    // The object's second D1 batch fails: the first reads where the conversation stands, the second is the accept.
    await runInDurableObject(stub, (instance) => {
      let batches = 0;
      const failing = (db: D1Database): D1Database =>
        new Proxy(db, {
          get: (target, key) =>
            key === "withSession"
              ? (constraint: string) => {
                  const session = target.withSession(constraint);
                  return new Proxy(session, {
                    get: (s, k) => (k === "batch" ? (statements: D1PreparedStatement[]) => (++batches === 2 ? Promise.reject(new Error("D1 is down")) : s.batch(statements)) : (Reflect.get(s, k) as (...a: unknown[]) => unknown).bind(s)),
                  });
                }
              : (Reflect.get(target, key) as (...a: unknown[]) => unknown).bind(target),
        });
      (instance as unknown as { env: Env }).env = { ...env, SHARD_0: failing(env.SHARD_0), SHARD_1: failing(env.SHARD_1) };
    });
    const response = await call(`/conversations/${id}/add_message/`, { token: user.access, headers: { Accept: "text/event-stream" }, body: { content: "[stub: tokens=5] lost" } });
    await expectError(response, 500, "internal_error");
    expect(await countInShards("SELECT count(*) AS n FROM messages WHERE conversation_id = ?", id)).toBe(0);

    await runInDurableObject(stub, (instance) => {
      (instance as unknown as { env: Env }).env = env;
    });
    const turn = await callJson(`/conversations/${id}/add_message/`, { token: user.access, body: { content: "[stub: echo=history] kept" }, status: 201 });
    expect(turn.ai_message.content).toBe("user: [stub: echo=history] kept");
    expect(turn.user_message.parent).toBeNull();
  });
});
