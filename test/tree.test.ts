import { describe, expect, it } from "vitest";
import { call, callJson, countInShards, createUser, expectError, rowsInShards, type TestUser } from "./helpers";
import { collectFrames, deltaText } from "./sse";

const SSE = { Accept: "text/event-stream" };

interface Listed {
  id: string;
  sender: "user" | "ai";
  content: string;
  order: number;
  parent: string | null;
  siblings: { index: number; count: number; previous: string | null; next: string | null };
}

async function listBranch(user: TestUser, conversationId: string, query = ""): Promise<Listed[]> {
  const page = await callJson(`/conversations/${conversationId}/messages/?${query}`, { token: user.access, status: 200 });
  return page.results;
}

/** A conversation of `turns` exchanges; the stand-in echoes the history it was sent on the last. */
async function conversationWithTurns(user: TestUser, contents: string[]) {
  const first = await callJson("/start_conversation/", { token: user.access, body: { content: contents[0], system_prompt: "Be brief." }, status: 201 });
  const turns = [first];
  for (const content of contents.slice(1)) {
    turns.push(await callJson(`/conversations/${first.conversation.id}/add_message/`, { token: user.access, body: { content }, status: 201 }));
  }
  return { id: first.conversation.id as string, turns };
}

describe("regenerate", () => {
  it("adds a sibling reply generated from the branch up to its user message, and makes it the current leaf", async () => {
    const user = await createUser();
    const { id, turns } = await conversationWithTurns(user, ["one", "two [stub: echo=history]", "three"]);
    const target = turns[1].ai_message;

    const regenerated = await callJson(`/messages/${target.id}/regenerate/`, { token: user.access, method: "POST", status: 201 });
    expect(regenerated.user_message.id).toBe(turns[1].user_message.id);
    expect(regenerated.ai_message).toMatchObject({ sender: "ai", order: 7, parent: turns[1].user_message.id, reply_to: turns[1].user_message.id });
    expect(regenerated.ai_response).toMatchObject({ status: "Completed", message: turns[1].user_message.id, ai_message: regenerated.ai_message.id });
    expect(regenerated.conversation.current_leaf).toBe(regenerated.ai_message.id);
    // The upstream got exactly the branch root → that user message: not "three", not the old reply to "two".
    expect(regenerated.ai_message.content.split("\n")).toEqual([
      "system: Be brief.",
      "user: one",
      `assistant: (${turns[0].ai_message.content.length} chars)`,
      "user: two [stub: echo=history]",
    ]);

    const branch = await listBranch(user, id);
    expect(branch.map((m) => m.id)).toEqual([turns[0].user_message.id, turns[0].ai_message.id, turns[1].user_message.id, regenerated.ai_message.id]);
    expect(branch[3]!.siblings).toEqual({ index: 2, count: 2, previous: turns[2].ai_message.id, next: null });
    expect(branch[2]!.siblings).toEqual({ index: 1, count: 1, previous: null, next: null });

    const all = await listBranch(user, id, "branch=all");
    expect(all.map((m) => m.order)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(all.find((m) => m.id === target.id)!.siblings).toEqual({ index: 1, count: 2, previous: null, next: regenerated.ai_message.id });

    // The old branch is one call away: siblings.previous names its newest message.
    const switched = await callJson(`/conversations/${id}/`, { token: user.access, method: "PATCH", body: { current_leaf: branch[3]!.siblings.previous }, status: 200 });
    expect(switched.current_leaf).toBe(turns[2].ai_message.id);
    expect((await listBranch(user, id)).map((m) => m.order)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it("streams like add_message, takes a model_version, and replays on a repeated Idempotency-Key", async () => {
    const user = await createUser();
    const { turns } = await conversationWithTurns(user, ["[stub: tokens=6] hi"]);
    const target = turns[0].ai_message.id;
    const headers = { ...SSE, "Idempotency-Key": "regen-1" };
    const body = { model_version: "gpt-4o" };
    const frames = await collectFrames(await call(`/messages/${target}/regenerate/`, { token: user.access, headers, body }));
    expect(frames.map((f) => f.event)).toEqual(["message", ...Array(6).fill("delta"), "done"]);
    const done = frames.at(-1)!.data;
    expect(deltaText(frames)).toBe(done.ai_message.content);
    expect(done.ai_response.model).toBe("offline-gpt-4o");

    const replay = await collectFrames(await call(`/messages/${target}/regenerate/`, { token: user.access, headers, body }));
    expect(replay.at(-1)!.data.ai_message.id).toBe(done.ai_message.id);
    await expectError(await call(`/messages/${target}/regenerate/`, { token: user.access, headers, body: { model_version: "gpt-4" } }), 422, "idempotency_key_reused");
    const count = await countInShards("SELECT count(*) AS n FROM ai_responses WHERE message_id = ?", turns[0].user_message.id);
    expect(count).toBe(2);
  });

  it("10 concurrent regenerates give 10 siblings with contiguous orders, run in order, each from the same history", async () => {
    const user = await createUser();
    const { id, turns } = await conversationWithTurns(user, ["first", "[stub: echo=history delay=1] second"]);
    const target = turns[1].ai_message;
    const results = await Promise.all(
      Array.from({ length: 10 }, () => callJson(`/messages/${target.id}/regenerate/`, { token: user.access, method: "POST", status: 201 })),
    );
    const orders = results.map((r) => r.ai_message.order).sort((a, b) => a - b);
    expect(orders).toEqual([5, 6, 7, 8, 9, 10, 11, 12, 13, 14]);
    expect(new Set(results.map((r) => r.ai_message.content))).toEqual(new Set([target.content]));
    const byOrder = [...results].sort((a, b) => a.ai_message.order - b.ai_message.order);
    for (let i = 1; i < byOrder.length; i++) {
      // FIFO: each reply starts after the one reserved before it has finished.
      expect(byOrder[i].ai_response.first_token_at >= byOrder[i - 1].ai_response.completed_at).toBe(true);
    }
    const all = await listBranch(user, id, "branch=all&page=2");
    expect(all.at(-1)!.siblings).toMatchObject({ index: 11, count: 11 });
    const conversation = await callJson(`/conversations/${id}/`, { token: user.access, status: 200 });
    expect(conversation.current_leaf).toBe(byOrder.at(-1).ai_message.id);
  });

  it("racing an add_message never mixes histories", async () => {
    const user = await createUser();
    const { turns } = await conversationWithTurns(user, ["alpha [stub: echo=history delay=1]"]);
    const id = turns[0].conversation.id;
    const [regenerated, added] = await Promise.all([
      callJson(`/messages/${turns[0].ai_message.id}/regenerate/`, { token: user.access, method: "POST", status: 201 }),
      callJson(`/conversations/${id}/add_message/`, { token: user.access, body: { content: "beta [stub: echo=history]" }, status: 201 }),
    ]);
    expect(regenerated.ai_message.content).toBe(turns[0].ai_message.content);
    const addedLines = added.ai_message.content.split("\n");
    expect(addedLines.at(-1)).toBe("user: beta [stub: echo=history]");
    expect(addedLines.filter((l: string) => l.startsWith("user:"))).toEqual(["user: alpha [stub: echo=history delay=1]", "user: beta [stub: echo=history]"]);
    // The add_message continued whichever branch was current when it was accepted.
    expect([turns[0].ai_message.id, regenerated.ai_message.id]).toContain(added.user_message.parent);
  });
});

describe("resend", () => {
  it("adds a sibling user message with its reply; the old branch stays intact and add_message continues the new one", async () => {
    const user = await createUser();
    const { id, turns } = await conversationWithTurns(user, ["one", "two", "three"]);
    const resent = await callJson(`/messages/${turns[1].user_message.id}/resend/`, {
      token: user.access,
      body: { content: "two, rephrased [stub: echo=history]" },
      status: 201,
    });
    expect(resent.user_message).toMatchObject({ order: 7, parent: turns[0].ai_message.id, content: "two, rephrased [stub: echo=history]" });
    expect(resent.ai_message).toMatchObject({ order: 8, parent: resent.user_message.id });
    expect(resent.ai_message.content.split("\n")).toEqual([
      "system: Be brief.",
      "user: one",
      `assistant: (${turns[0].ai_message.content.length} chars)`,
      "user: two, rephrased [stub: echo=history]",
    ]);
    const branch = await listBranch(user, id);
    expect(branch.map((m) => m.order)).toEqual([1, 2, 7, 8]);
    expect(branch[2]!.siblings).toEqual({ index: 2, count: 2, previous: turns[2].ai_message.id, next: null });

    const next = await callJson(`/conversations/${id}/add_message/`, { token: user.access, body: { content: "four [stub: echo=history]" }, status: 201 });
    expect(next.user_message.parent).toBe(resent.ai_message.id);
    expect(next.ai_message.content.split("\n").filter((l: string) => l.startsWith("user:"))).toEqual([
      "user: one",
      "user: two, rephrased [stub: echo=history]",
      "user: four [stub: echo=history]",
    ]);

    const old = await listBranch(user, id, "branch=all");
    expect(old.filter((m) => m.order <= 6).map((m) => m.content)).toEqual([
      "one",
      turns[0].ai_message.content,
      "two",
      turns[1].ai_message.content,
      "three",
      turns[2].ai_message.content,
    ]);

    // edit_message keeps its seed behaviour: in place, nothing re-runs.
    const edited = await callJson(`/messages/${turns[1].user_message.id}/edit_message/`, { token: user.access, method: "PATCH", body: { content: "two!" }, status: 200 });
    expect(edited).toMatchObject({ id: turns[1].user_message.id, content: "two!", is_edited: true });
    expect((await listBranch(user, id, "branch=all")).length).toBe(10);
  });

  it("add_message continues from a current_leaf switched to the middle of a branch", async () => {
    const user = await createUser();
    const { id, turns } = await conversationWithTurns(user, ["one", "two"]);
    await callJson(`/conversations/${id}/`, { token: user.access, method: "PATCH", body: { current_leaf: turns[0].ai_message.id }, status: 200 });
    const next = await callJson(`/conversations/${id}/add_message/`, { token: user.access, body: { content: "[stub: echo=history] instead" }, status: 201 });
    expect(next.user_message).toMatchObject({ order: 5, parent: turns[0].ai_message.id });
    expect(next.ai_message.content).not.toContain("two");
    expect((await listBranch(user, id)).map((m) => m.order)).toEqual([1, 2, 5, 6]);
  });
});

describe("fork", () => {
  it("copies the branch root → message into a new, ordinary conversation", async () => {
    const user = await createUser();
    const { id, turns } = await conversationWithTurns(user, ["one", "two", "three"]);
    await callJson(`/messages/${turns[1].ai_message.id}/regenerate/`, { token: user.access, method: "POST", status: 201 });
    // Fork at the older reply to "two": the branch through it, not the current one.
    const fork = await callJson(`/conversations/${id}/fork/`, { token: user.access, body: { message: turns[1].ai_message.id }, status: 201 });
    expect(fork).toMatchObject({ title: turns[0].conversation.title, system_prompt: "Be brief.", forked_from: { conversation: id, message: turns[1].ai_message.id } });
    expect(fork.id).not.toBe(id);

    const copied = await listBranch(user, fork.id);
    expect(copied.map((m) => [m.order, m.sender, m.content])).toEqual([
      [1, "user", "one"],
      [2, "ai", turns[0].ai_message.content],
      [3, "user", "two"],
      [4, "ai", turns[1].ai_message.content],
    ]);
    expect(copied.map((m) => m.parent)).toEqual([null, copied[0]!.id, copied[1]!.id, copied[2]!.id]);
    // The copies spent nothing: usage summed over the user's replies counts each reply once.
    const usage = await rowsInShards<{ conversation_id: string; total: number | null }>(
      "SELECT m.conversation_id, sum(r.total_tokens) AS total FROM ai_responses r JOIN messages m ON m.id = r.ai_message_id WHERE r.user_id = ? GROUP BY m.conversation_id",
      user.id,
    );
    expect(usage.find((row) => row.conversation_id === fork.id)?.total).toBeNull();
    expect(usage.find((row) => row.conversation_id === id)?.total).toBeGreaterThan(0);
    expect(fork.current_leaf).toBe(copied[3]!.id);
    const [response] = await rowsInShards("SELECT r.status, m.content, r.message_id FROM ai_responses r JOIN messages m ON m.id = r.ai_message_id WHERE r.ai_message_id = ?", copied[3]!.id);
    expect(response).toEqual({ status: "Completed", content: turns[1].ai_message.content, message_id: copied[2]!.id });

    const next = await callJson(`/conversations/${fork.id}/add_message/`, { token: user.access, body: { content: "[stub: echo=history] go on" }, status: 201 });
    expect(next.user_message).toMatchObject({ order: 5, parent: copied[3]!.id });
    expect(next.ai_message.content.split("\n").filter((l: string) => l.startsWith("user:"))).toEqual(["user: one", "user: two", "user: [stub: echo=history] go on"]);
    // The source is untouched.
    expect((await listBranch(user, id, "branch=all")).length).toBe(7);
  });

  it("refuses to fork a branch whose reply is still generating", async () => {
    const user = await createUser();
    const response = await call("/start_conversation/", { token: user.access, headers: SSE, body: { content: "[stub: tokens=40 delay=20] slow" } });
    const reader = response.body!.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    const aiMessageId = /"ai_message":\{"id":"([^"]+)"/.exec(first)![1]!;
    const conversationId = /"conversation":\{"id":"([^"]+)"/.exec(first)![1]!;
    await expectError(await call(`/conversations/${conversationId}/fork/`, { token: user.access, body: { message: aiMessageId } }), 409, "conflict");
    await reader.cancel();
  });
});

describe("tree errors", () => {
  it("answers 404 for another user's messages, 400 for the wrong sender or a foreign leaf, 409 in a deleted conversation", async () => {
    const owner = await createUser();
    const other = await createUser();
    const { id, turns } = await conversationWithTurns(owner, ["one"]);
    const elsewhere = await conversationWithTurns(owner, ["elsewhere"]);
    const { user_message: userMessage, ai_message: aiMessage } = turns[0];

    await expectError(await call(`/messages/${aiMessage.id}/regenerate/`, { token: other.access, method: "POST" }), 404, "not_found");
    await expectError(await call(`/messages/${userMessage.id}/resend/`, { token: other.access, body: { content: "x" } }), 404, "not_found");
    await expectError(await call(`/conversations/${id}/fork/`, { token: other.access, body: { message: aiMessage.id } }), 404, "not_found");
    await expectError(await call(`/conversations/${id}/`, { token: other.access, method: "PATCH", body: { current_leaf: aiMessage.id } }), 404, "not_found");

    await expectError(await call(`/messages/${userMessage.id}/regenerate/`, { token: owner.access, method: "POST" }), 400, "bad_request");
    await expectError(await call(`/messages/${aiMessage.id}/resend/`, { token: owner.access, body: { content: "x" } }), 400, "bad_request");
    await expectError(await call(`/messages/${aiMessage.id}/regenerate/`, { token: owner.access, body: { model_version: "gpt-99" } }), 400, "validation_failed");
    await expectError(await call(`/messages/${aiMessage.id}/regenerate/`, { token: owner.access, body: { extra: 1 } }), 400, "validation_failed");
    const foreign = await expectError(
      await call(`/conversations/${id}/`, { token: owner.access, method: "PATCH", body: { current_leaf: elsewhere.turns[0].ai_message.id } }),
      400,
      "validation_failed",
    );
    expect(foreign.details).toEqual([{ field: "current_leaf", message: expect.any(String) }]);
    await expectError(await call(`/conversations/${id}/fork/`, { token: owner.access, body: { message: elsewhere.turns[0].ai_message.id } }), 400, "validation_failed");

    await call(`/conversations/${id}/`, { token: owner.access, method: "DELETE" });
    await expectError(await call(`/messages/${aiMessage.id}/regenerate/`, { token: owner.access, method: "POST" }), 409, "conflict");
    await expectError(await call(`/messages/${userMessage.id}/resend/`, { token: owner.access, body: { content: "x" } }), 409, "conflict");

    const stored = await countInShards("SELECT count(*) AS n FROM messages WHERE conversation_id = ?", id);
    expect(stored).toBe(2);
    const conversation = (await rowsInShards("SELECT current_leaf_id FROM conversations WHERE id = ?", id))[0];
    expect(conversation).toEqual({ current_leaf_id: aiMessage.id });
  });

  it("refuses to regenerate a reply whose user message is deleted", async () => {
    const user = await createUser();
    const { turns } = await conversationWithTurns(user, ["one"]);
    await callJson(`/messages/${turns[0].user_message.id}/mark_deleted/`, { token: user.access, method: "PATCH", status: 200 });
    await expectError(await call(`/messages/${turns[0].ai_message.id}/regenerate/`, { token: user.access, method: "POST" }), 409, "conflict");
  });
});
