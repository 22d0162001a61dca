import { abortAllDurableObjects, runDurableObjectAlarm } from "cloudflare:test";
import { expect, it } from "vitest";
import { d1Down, d1DownAfter, faultyEnv } from "./d1-faults";
import { call, callJson, conversationStub, createUser, heldSlots, rowsInShards, setObjectEnv } from "./helpers";
import { collectFrames, firstFrames } from "./sse";

// Its own file: aborting every Durable Object would disturb other tests' conversations.

type StoredMessage = { id: string; order: number; sender: string; content: string; status: string | null; error_code: string | null };

/** Every message of the conversation in D1 with its reply's outcome, by order. */
const storedMessages = (conversationId: string) =>
  rowsInShards<StoredMessage>(
    `SELECT m.id, m."order", m.sender, m.content, r.status, r.error_code FROM messages m LEFT JOIN ai_responses r ON r.ai_message_id = m.id
     WHERE m.conversation_id = ? ORDER BY m."order"`,
    conversationId,
  );

/** What a restart finds: the object starts again from its alarm alone, with no request. */
async function killAndWake(conversationId: string): Promise<void> {
  await abortAllDurableObjects();
  expect(await runDurableObjectAlarm(conversationStub(conversationId))).toBe(true);
}

it("kill after the local commit, before the outbox wrote: every accepted row reaches D1 once, the reply is interrupted, the slot is back", async () => {
  const user = await createUser();
  const { id } = await callJson("/conversations/", { token: user.access, body: {}, status: 201 });
  await setObjectEnv(id, faultyEnv(d1Down));
  const frames = await firstFrames(await call(`/conversations/${id}/add_message/`, { token: user.access, headers: { Accept: "text/event-stream" }, body: { content: "[stub: tokens=300 delay=10] cut me off" } }), 3);
  expect(await storedMessages(id)).toEqual([]);

  await killAndWake(id);
  const stored = await storedMessages(id);
  expect(stored.map((m) => [m.order, m.sender, m.status, m.error_code])).toEqual([
    [1, "user", null, null],
    [2, "ai", "Error", "interrupted"],
  ]);
  expect(stored[1]!.id).toBe(frames[0]!.data.ai_message.id);
  expect(await heldSlots(user.id)).toBe(0);
  const next = await callJson(`/conversations/${id}/add_message/`, { token: user.access, body: { content: "[stub: tokens=2] still here" }, status: 201 });
  expect(next.user_message.order).toBe(3);
});

it("kill between the outbox's batches: the final rows land after the restart, and usage is counted once", async () => {
  const user = await createUser();
  const { id } = await callJson("/conversations/", { token: user.access, body: {}, status: 201 });
  // The conversation's own write went before: from now on the accept batch passes (a reply longer
  // than a second sends its accept rows ahead), the final one fails.
  await setObjectEnv(id, faultyEnv(d1DownAfter(1)));
  const frames = await collectFrames(await call(`/conversations/${id}/add_message/`, { token: user.access, headers: { Accept: "text/event-stream" }, body: { content: "[stub: tokens=60 delay=25] finish me" } }));
  const done = frames.at(-1)!;
  expect(done.event).toBe("done");
  expect((await storedMessages(id)).map((m) => m.status)).toEqual([null, "Generating"]);

  await killAndWake(id);
  expect((await storedMessages(id)).map((m) => [m.order, m.status, m.content.length])).toEqual([
    [1, null, "[stub: tokens=60 delay=25] finish me".length],
    [2, "Completed", done.data.ai_message.content.length],
  ]);
  const [usage] = await rowsInShards<{ tokens: number }>("SELECT tokens FROM usage_daily WHERE user_id = ?", user.id);
  expect(usage!.tokens).toBe(done.data.ai_response.usage.total_tokens);
  expect(await heldSlots(user.id)).toBe(0);
});

it("kill during 12 concurrent sends: orders stay contiguous, every message is in D1 exactly once, every slot is back", { timeout: 30_000 }, async () => {
  const user = await createUser();
  const { id } = await callJson("/conversations/", { token: user.access, body: {}, status: 201 });
  await setObjectEnv(id, faultyEnv(d1Down));
  const responses = await Promise.all(
    Array.from({ length: 12 }, (_, i) =>
      call(`/conversations/${id}/add_message/`, { token: user.access, headers: { Accept: "text/event-stream" }, body: { content: `[stub: tokens=50 delay=10] send ${i}` } }),
    ),
  );
  const accepted = await Promise.all(responses.map(async (response) => (await firstFrames(response, 1))[0]!.data.ai_message.id as string));

  await killAndWake(id);
  const stored = await storedMessages(id);
  expect(stored.map((m) => m.order)).toEqual(Array.from({ length: 24 }, (_, i) => i + 1));
  expect(new Set(stored.map((m) => m.id)).size).toBe(24);
  expect(stored.filter((m) => m.sender === "ai").map((m) => m.id).sort()).toEqual([...accepted].sort());
  expect(stored.every((m) => m.sender === "user" || m.status === "Error" || m.status === "Completed")).toBe(true);
  expect(await heldSlots(user.id)).toBe(0);
  const next = await callJson(`/conversations/${id}/add_message/`, { token: user.access, body: { content: "[stub: tokens=2] after" }, status: 201 });
  expect(next.user_message.order).toBe(25);
});

it("gives a listener's slot back after a restart", async () => {
  const user = await createUser();
  const start = await call("/start_conversation/", { token: user.access, headers: { Accept: "text/event-stream" }, body: { content: "[stub: tokens=300 delay=10] listen" } });
  const [message] = await firstFrames(start, 1);
  const id: string = message!.data.conversation.id;
  const listener = await call(`/conversations/${id}/stream/`, { token: user.access });
  expect(listener.status).toBe(200);
  await firstFrames(listener, 1);
  expect(await heldSlots(user.id)).toBe(2);

  await killAndWake(id);
  expect(await heldSlots(user.id)).toBe(0);
});

it("writes rows whose confirmation a crash lost once more, and D1 still holds each once, charged once", async () => {
  const user = await createUser();
  const { id } = await callJson("/conversations/", { token: user.access, body: {}, status: 201 });
  const turn = await callJson(`/conversations/${id}/add_message/`, { token: user.access, body: { content: "[stub: tokens=4] confirmed" }, status: 201 });
  // D1 confirmed the final rows; the object notes that with its next commit, which never comes.
  await killAndWake(id);
  const stored = await storedMessages(id);
  expect(stored.map((m) => [m.order, m.status])).toEqual([
    [1, null],
    [2, "Completed"],
  ]);
  const [usage] = await rowsInShards<{ tokens: number }>("SELECT tokens FROM usage_daily WHERE user_id = ?", user.id);
  expect(usage!.tokens).toBe(turn.ai_response.usage.total_tokens);
});

it("kill while a summary is being written: the restarted object charges what that request may have cost", { timeout: 30_000 }, async () => {
  const user = await createUser();
  const { id } = await callJson("/conversations/", { token: user.access, body: { model_version: "small-window" }, status: 201 });
  const long = "y".repeat(800);
  // The summary request quotes the oldest message, directive and all: it waits 1 s for its answer.
  let spent = (await callJson(`/conversations/${id}/add_message/`, { token: user.access, body: { content: `[stub: tokens=2 first_byte=1000] ${long}` }, status: 201 })).ai_response.usage.total_tokens;
  let summarizing = false;
  for (let i = 0; i < 8 && !summarizing; i++) {
    const turn = await callJson(`/conversations/${id}/add_message/`, { token: user.access, body: { content: `[stub: tokens=2] ${long}` }, status: 201 });
    spent += turn.ai_response.usage.total_tokens;
    summarizing = turn.ai_response.context.first_order > 1;
  }
  expect(summarizing).toBe(true);
  await new Promise((resolve) => setTimeout(resolve, 200));
  await killAndWake(id);
  await expect.poll(async () => (await callJson("/users/me/usage/", { token: user.access, status: 200 })).tokens_used, { timeout: 5_000 }).toBeGreaterThan(spent + 300);
  expect(await rowsInShards("SELECT id FROM summaries WHERE conversation_id = ?", id)).toEqual([]);
});
