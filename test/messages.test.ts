import { describe, expect, it } from "vitest";
import { call, callJson, createUser, expectError, rowsInShards } from "./helpers";

async function conversationWithTurns(token: string, n: number) {
  const start = await callJson("/start_conversation/", { token, body: { content: "[stub: tokens=2] m0" }, status: 201 });
  for (let i = 1; i < n; i++) {
    await callJson(`/conversations/${start.conversation.id}/add_message/`, { token, body: { content: `[stub: tokens=2] m${i}` }, status: 201 });
  }
  return start;
}

describe("messages", () => {
  it("lists a conversation's messages in order, paginated, hiding deleted ones unless asked", async () => {
    const user = await createUser();
    const start = await conversationWithTurns(user.access, 6);
    const id = start.conversation.id;
    const page1 = await callJson(`/conversations/${id}/messages/`, { token: user.access, status: 200 });
    expect(page1.count).toBe(12);
    expect(page1.results.map((m: { order: number }) => m.order)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(page1.results[0]).toEqual({
      id: start.user_message.id,
      conversation: id,
      sender: "user",
      content: "[stub: tokens=2] m0",
      timestamp: expect.any(String),
      order: 1,
      is_edited: false,
      is_deleted: false,
      reply_to: null,
      parent: null,
      siblings: { index: 1, count: 1, previous: null, next: null },
      ai_response_status: "Completed",
    });
    expect(page1.results[1]).toMatchObject({ parent: start.user_message.id, siblings: { index: 1, count: 1 } });
    expect(page1.results[1]).not.toHaveProperty("ai_response_status");
    const page2 = await callJson(`/conversations/${id}/messages/?page=2`, { token: user.access, status: 200 });
    expect(page2.results.map((m: { order: number }) => m.order)).toEqual([11, 12]);

    const deleted = await callJson(`/messages/${start.user_message.id}/mark_deleted/`, { token: user.access, method: "PATCH", status: 200 });
    expect(deleted.is_deleted).toBe(true);
    const again = await callJson(`/messages/${start.user_message.id}/mark_deleted/`, { token: user.access, method: "PATCH", status: 200 });
    expect(again).toEqual(deleted);

    expect((await callJson(`/conversations/${id}/messages/`, { token: user.access, status: 200 })).count).toBe(11);
    const all = await callJson(`/conversations/${id}/messages/?include_deleted=true`, { token: user.access, status: 200 });
    expect(all.count).toBe(12);
    expect(all.results[0].is_deleted).toBe(true);
  });

  it("lists all the caller's messages newest first, or one conversation's in order", async () => {
    const user = await createUser();
    const a = await conversationWithTurns(user.access, 2);
    const b = await conversationWithTurns(user.access, 1);
    const all = await callJson("/messages/", { token: user.access, status: 200 });
    expect(all.count).toBe(6);
    expect(all.results[0].conversation).toBe(b.conversation.id);
    expect(all.results.at(-1).id).toBe(a.user_message.id);
    const onlyA = await callJson(`/messages/?conversation=${a.conversation.id}`, { token: user.access, status: 200 });
    expect(onlyA.results.map((m: { order: number }) => m.order)).toEqual([1, 2, 3, 4]);

    // Soft-deleted messages are hidden here too unless asked for.
    await callJson(`/messages/${a.user_message.id}/mark_deleted/`, { token: user.access, method: "PATCH", status: 200 });
    expect((await callJson("/messages/", { token: user.access, status: 200 })).count).toBe(5);
    const withoutDeleted = await callJson(`/messages/?conversation=${a.conversation.id}`, { token: user.access, status: 200 });
    expect(withoutDeleted.results.map((m: { order: number }) => m.order)).toEqual([2, 3, 4]);
    const withDeleted = await callJson(`/messages/?conversation=${a.conversation.id}&include_deleted=true`, { token: user.access, status: 200 });
    expect(withDeleted.results.map((m: { order: number }) => m.order)).toEqual([1, 2, 3, 4]);
  });

  it("edits only your own, non-deleted user messages", async () => {
    const user = await createUser();
    const start = await conversationWithTurns(user.access, 1);
    const edited = await callJson(`/messages/${start.user_message.id}/edit_message/`, { token: user.access, method: "PATCH", body: { content: "better words" }, status: 200 });
    expect(edited).toMatchObject({ content: "better words", is_edited: true, ai_response_status: "Completed" });

    await expectError(await call(`/messages/${start.ai_message.id}/edit_message/`, { token: user.access, method: "PATCH", body: { content: "x" } }), 403, "forbidden");
    await expectError(await call(`/messages/${start.user_message.id}/edit_message/`, { token: user.access, method: "PATCH", body: { content: "  " } }), 400, "validation_failed");
    await callJson(`/messages/${start.user_message.id}/mark_deleted/`, { token: user.access, method: "PATCH", status: 200 });
    await expectError(await call(`/messages/${start.user_message.id}/edit_message/`, { token: user.access, method: "PATCH", body: { content: "late" } }), 409, "conflict");
    const stored = (await rowsInShards("SELECT content FROM messages WHERE id = ?", start.user_message.id))[0];
    expect(stored).toEqual({ content: "better words" });
  });

  it("hides another user's messages on every message route", async () => {
    const owner = await createUser("owner");
    const other = await createUser("other");
    const start = await conversationWithTurns(owner.access, 1);
    const messageId = start.user_message.id;
    await expectError(await call(`/messages/${messageId}/mark_deleted/`, { token: other.access, method: "PATCH" }), 404, "not_found");
    await expectError(await call(`/messages/${messageId}/edit_message/`, { token: other.access, method: "PATCH", body: { content: "mine now" } }), 404, "not_found");
    expect((await callJson("/messages/", { token: other.access, status: 200 })).count).toBe(0);
    expect((await callJson(`/messages/?conversation=${start.conversation.id}`, { token: other.access, status: 200 })).count).toBe(0);
    const stored = (await rowsInShards("SELECT content, is_deleted FROM messages WHERE id = ?", messageId))[0];
    expect(stored).toEqual({ content: "[stub: tokens=2] m0", is_deleted: 0 });
  });
});
