import { abortAllDurableObjects, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { expect, it } from "vitest";
import { call, callJson, conversationStub, countInShards, createUser, rowsInShards, shardOf } from "./helpers";
import { deltaText, firstFrames, readFrames } from "./sse";

// Its own file: aborting every Durable Object would disturb other tests' conversations.
it("marks a reply cut off by a restart as Error interrupted, keeps what was streamed, and the conversation stays usable", async () => {
  const user = await createUser();
  const response = await call("/start_conversation/", {
    token: user.access,
    headers: { Accept: "text/event-stream" },
    body: { content: "[stub: tokens=500 delay=20] long story" },
  });
  const frames = await firstFrames(response, 21); // ~400 ms of deltas: more than one journal flush
  const conversationId: string = frames[0]!.data.conversation.id;
  const aiMessageId: string = frames[0]!.data.ai_message.id;

  // Like a runtime restart: the object's memory and its in-flight model call are gone.
  await abortAllDurableObjects();

  // The next request starts the object again; it finds the unfinished turn in its storage.
  const next = await callJson(`/conversations/${conversationId}/add_message/`, { token: user.access, body: { content: "[stub: tokens=2] still there?" }, status: 201 });
  expect(next.user_message.order).toBe(3);
  expect(next.ai_response).toMatchObject({ status: "Completed", response_content: "w1 w2" });

  const [interrupted] = await rowsInShards<{ content: string; status: string; error_code: string; error_message: string }>(
    "SELECT m.content, r.status, r.error_code, r.error_message FROM messages m JOIN ai_responses r ON r.ai_message_id = m.id WHERE m.id = ?",
    aiMessageId,
  );
  expect(interrupted).toMatchObject({ status: "Error", error_code: "interrupted", error_message: "interrupted" });
  // What was streamed is kept (the journal flushes every 200 ms, so the last moments may be lost).
  const full = Array.from({ length: 500 }, (_, i) => `w${i + 1}`).join(" ");
  const seen = deltaText(frames);
  expect(interrupted!.content.length).toBeGreaterThan(0);
  expect(full.startsWith(interrupted!.content)).toBe(true);
  expect(interrupted!.content.length).toBeLessThan(full.length);
  expect(next.ai_response.response_content).toBe(next.ai_message.content);

  const resumed = [];
  for await (const frame of readFrames(
    (await call(`/conversations/${conversationId}/stream/`, { token: user.access, headers: { "Last-Event-ID": frames.at(-1)!.id! } })).body!,
  )) {
    resumed.push(frame);
  }
  expect(resumed.at(-1)).toMatchObject({ event: "error", data: { code: "interrupted" } });
  if (interrupted!.content.length > seen.length) expect(seen + deltaText(resumed)).toBe(interrupted!.content);
  else expect(deltaText(resumed)).toBe("");
});

it("recovers a regenerate cut off by a restart: the new sibling is interrupted, the old reply intact, and the branch continues after it", async () => {
  const user = await createUser();
  const start = await callJson("/start_conversation/", { token: user.access, body: { content: "[stub: tokens=60 delay=20] tell me" }, status: 201 });
  const conversationId: string = start.conversation.id;
  const response = await call(`/messages/${start.ai_message.id}/regenerate/`, { token: user.access, method: "POST", headers: { Accept: "text/event-stream" } });
  const frames = await firstFrames(response, 21);
  const regeneratedId: string = frames[0]!.data.ai_message.id;

  await abortAllDurableObjects();

  const next = await callJson(`/conversations/${conversationId}/add_message/`, { token: user.access, body: { content: "[stub: echo=history] and then?" }, status: 201 });
  expect(next.user_message).toMatchObject({ order: 4, parent: regeneratedId });

  const rows = await shardOf(user.id).prepare(`SELECT m.id, m.content, r.status, r.error_code FROM messages m JOIN ai_responses r ON r.ai_message_id = m.id WHERE m.conversation_id = ? ORDER BY m."order"`)
    .bind(conversationId)
    .all<{ id: string; content: string; status: string; error_code: string | null }>();
  expect(rows.results.map((r) => [r.id, r.status, r.error_code])).toEqual([
    [start.ai_message.id, "Completed", null],
    [regeneratedId, "Error", "interrupted"],
    [next.ai_message.id, "Completed", null],
  ]);
  expect(rows.results[0]!.content).toBe(start.ai_message.content);
  const interrupted = rows.results[1]!.content;
  expect(interrupted.length).toBeGreaterThan(0);
  expect(start.ai_message.content.startsWith(interrupted)).toBe(true);
  // The model saw the branch through the interrupted reply, not the old one.
  expect(next.ai_message.content.split("\n")).toEqual([
    "user: [stub: tokens=60 delay=20] tell me",
    `assistant: (${interrupted.length} chars)`,
    "user: [stub: echo=history] and then?",
  ]);
});

async function storedReply(aiMessageId: string) {
  const [row] = await rowsInShards<{ content: string; status: string; error_code: string | null }>(
    "SELECT m.content, r.status, r.error_code FROM messages m JOIN ai_responses r ON r.ai_message_id = m.id WHERE m.id = ?",
    aiMessageId,
  );
  return row;
}

it("recovers within one alarm of a restart with no request: a reply cut off before its first token is interrupted, and the alarm was close", async () => {
  const user = await createUser();
  const response = await call("/start_conversation/", { token: user.access, headers: { Accept: "text/event-stream" }, body: { content: "[stub: first=4000 tokens=3] slow start" } });
  const reader = readFrames(response.body!);
  const { value: message } = await reader.next();
  const conversationId: string = message!.data.conversation.id;
  const aiMessageId: string = message!.data.ai_message.id;
  const alarm = await runInDurableObject(conversationStub(conversationId), (_instance, state) => state.storage.getAlarm());
  expect(alarm).not.toBeNull();
  expect(alarm! - Date.now()).toBeLessThanOrEqual(30_000);

  await abortAllDurableObjects();
  // No request: the alarm alone starts the object again, and its recovery runs.
  expect(await runDurableObjectAlarm(conversationStub(conversationId))).toBe(true);
  expect(await storedReply(aiMessageId)).toMatchObject({ content: "", status: "Error", error_code: "interrupted" });
  const cap = await countInShards("SELECT count(*) AS n FROM ai_responses WHERE user_id = ? AND status = 'Generating'", user.id);
  expect(cap).toBe(0);
});

it("answers a keyed retry of an interrupted turn with the stored turn (201, Error interrupted), not a 502", async () => {
  const user = await createUser();
  const headers = { "Idempotency-Key": "interrupted-1" };
  const body = { content: "[stub: tokens=60 delay=20] will be cut" };
  const response = await call("/start_conversation/", { token: user.access, headers: { ...headers, Accept: "text/event-stream" }, body });
  const frames = await firstFrames(response, 15);
  await abortAllDurableObjects();
  const retried = await call("/start_conversation/", { token: user.access, headers, body });
  const turn = await retried.json<any>();
  expect(retried.status).toBe(201);
  expect(turn.ai_message.id).toBe(frames[0]!.data.ai_message.id);
  expect(turn.ai_response).toMatchObject({ status: "Error", error_code: "interrupted" });
});
