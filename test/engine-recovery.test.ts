import { abortAllDurableObjects } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { expect, it } from "vitest";
import { call, callJson, createUser } from "./helpers";
import { deltaText, readFrames } from "./sse";

// Its own file: aborting every Durable Object would disturb other tests' conversations.
it("marks a reply cut off by a restart as Error interrupted, keeps what was streamed, and the conversation stays usable", async () => {
  const user = await createUser();
  const response = await call("/start_conversation/", {
    token: user.access,
    headers: { Accept: "text/event-stream" },
    body: { content: "[stub: tokens=500 delay=20] long story" },
  });
  const frames = [];
  for await (const frame of readFrames(response.body!)) {
    frames.push(frame);
    if (frames.length === 21) break; // ~400 ms of deltas: more than one journal flush
  }
  const conversationId: string = frames[0]!.data.conversation.id;
  const aiMessageId: string = frames[0]!.data.ai_message.id;

  // Like a runtime restart: the object's memory and its in-flight model call are gone.
  await abortAllDurableObjects();

  // The next request starts the object again; it finds the unfinished turn in its storage.
  const next = await callJson(`/conversations/${conversationId}/add_message/`, { token: user.access, body: { content: "[stub: tokens=2] still there?" }, status: 201 });
  expect(next.user_message.order).toBe(3);
  expect(next.ai_response).toMatchObject({ status: "Completed", response_content: "w1 w2" });

  const interrupted = await env.DB.prepare(
    "SELECT m.content, r.status, r.error_code, r.error_message, r.response_content FROM messages m JOIN ai_responses r ON r.ai_message_id = m.id WHERE m.id = ?",
  )
    .bind(aiMessageId)
    .first<{ content: string; status: string; error_code: string; error_message: string; response_content: string }>();
  expect(interrupted).toMatchObject({ status: "Error", error_code: "interrupted", error_message: "interrupted" });
  // What was streamed is kept (the journal flushes every 200 ms, so the last moments may be lost).
  const full = Array.from({ length: 500 }, (_, i) => `w${i + 1}`).join(" ");
  const seen = deltaText(frames);
  expect(interrupted!.content.length).toBeGreaterThan(0);
  expect(full.startsWith(interrupted!.content)).toBe(true);
  expect(interrupted!.content.length).toBeLessThan(full.length);
  expect(interrupted!.response_content).toBe(interrupted!.content);

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
  const frames = [];
  for await (const frame of readFrames(response.body!)) {
    frames.push(frame);
    if (frames.length === 21) break;
  }
  const regeneratedId: string = frames[0]!.data.ai_message.id;

  await abortAllDurableObjects();

  const next = await callJson(`/conversations/${conversationId}/add_message/`, { token: user.access, body: { content: "[stub: echo=history] and then?" }, status: 201 });
  expect(next.user_message).toMatchObject({ order: 4, parent: regeneratedId });

  const rows = await env.DB.prepare(`SELECT m.id, m.content, r.status, r.error_code FROM messages m JOIN ai_responses r ON r.ai_message_id = m.id WHERE m.conversation_id = ? ORDER BY m."order"`)
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
