import { describe, expect, it } from "vitest";
import { call, callJson, createUser, expectError, rowsInShards, type TestUser } from "./helpers";
import { collectFrames, deltaText, readFrames } from "./sse";

const words = (n: number) => Array.from({ length: n }, (_, i) => `w${i + 1}`).join(" ");
const SSE = { Accept: "text/event-stream" };

async function newConversation(user: TestUser, body: Record<string, unknown> = {}) {
  return (await callJson("/conversations/", { token: user.access, body, status: 201 })).id as string;
}

async function storedMessages(conversationId: string) {
  return rowsInShards<{ id: string; sender: string; content: string; order: number; reply_to: string | null; status: string | null; error_code: string | null; error_message: string | null }>(
    `SELECT m.id, m.sender, m.content, m."order", m.reply_to, r.status, r.error_code, r.error_message
       FROM messages m LEFT JOIN ai_responses r ON r.ai_message_id = m.id
      WHERE m.conversation_id = ? ORDER BY m."order"`,
    conversationId,
  );
}

describe("start_conversation and add_message (JSON)", () => {
  it("stores the first turn at orders 1 and 2 with the reply from the stand-in model", async () => {
    const user = await createUser();
    const turn = await callJson("/start_conversation/", { token: user.access, body: { content: "  Plan a weekend in Porto with good food  " }, status: 201 });
    expect(turn.conversation).toMatchObject({ title: "Plan a weekend in Porto with good food", status: "Active", model_version: "gpt-4" });
    expect(turn.user_message).toMatchObject({ sender: "user", order: 1, reply_to: null, ai_response_status: "Completed" });
    expect(turn.ai_message).toMatchObject({ sender: "ai", order: 2, reply_to: turn.user_message.id });
    expect(turn.ai_response).toMatchObject({
      message: turn.user_message.id,
      ai_message: turn.ai_message.id,
      status: "Completed",
      error_message: null,
      model: "offline-gpt-4",
      usage: { prompt_tokens: expect.any(Number), completion_tokens: expect.any(Number), total_tokens: expect.any(Number) },
    });
    expect(turn.ai_message.content).toContain("offline stand-in");
    expect(turn.ai_response.response_content).toBe(turn.ai_message.content);

    const stored = await storedMessages(turn.conversation.id);
    expect(stored.map((m) => [m.order, m.sender, m.status])).toEqual([
      [1, "user", null],
      [2, "ai", "Completed"],
    ]);
    expect(stored[1]!.content).toBe(turn.ai_message.content);

    const listed = await callJson(`/conversations/${turn.conversation.id}/messages/`, { token: user.access, status: 200 });
    expect(listed.results.map((m: { id: string }) => m.id)).toEqual([turn.user_message.id, turn.ai_message.id]);
  });

  it("truncates a long first message into the title and keeps an explicit one", async () => {
    const user = await createUser();
    const long = "word ".repeat(40);
    const turn = await callJson("/start_conversation/", { token: user.access, body: { content: long }, status: 201 });
    expect(turn.conversation.title.length).toBeLessThanOrEqual(61);
    expect(turn.conversation.title.startsWith("word word")).toBe(true);
    const titled = await callJson("/start_conversation/", { token: user.access, body: { content: "hi", title: "Mine" }, status: 201 });
    expect(titled.conversation.title).toBe("Mine");

    const id = await newConversation(user);
    const first = await callJson(`/conversations/${id}/add_message/`, { token: user.access, body: { content: "First words here" }, status: 201 });
    expect(first.conversation.title).toBe("First words here");
    expect((await callJson(`/conversations/${id}/`, { token: user.access, status: 200 })).title).toBe("First words here");
  });

  it("sends the model the system prompt and the history: in order, edited content, deleted left out", async () => {
    const user = await createUser();
    const start = await callJson("/start_conversation/", {
      token: user.access,
      body: { content: "one", system_prompt: "You are terse." },
      status: 201,
    });
    const id = start.conversation.id;
    const second = await callJson(`/conversations/${id}/add_message/`, { token: user.access, body: { content: "two" }, status: 201 });
    await callJson(`/messages/${start.user_message.id}/edit_message/`, { token: user.access, method: "PATCH", body: { content: "one (edited)" }, status: 200 });
    await callJson(`/messages/${second.user_message.id}/mark_deleted/`, { token: user.access, method: "PATCH", status: 200 });

    const echo = await callJson(`/conversations/${id}/add_message/`, { token: user.access, body: { content: "[stub: echo=history] three" }, status: 201 });
    expect(echo.user_message.order).toBe(5);
    expect(echo.ai_message.content.split("\n")).toEqual([
      "system: You are terse.",
      "user: one (edited)",
      `assistant: (${start.ai_message.content.length} chars)`,
      `assistant: (${second.ai_message.content.length} chars)`,
      "user: [stub: echo=history] three",
    ]);
  });

  it("keeps reply_to when it names a message of the conversation, else 400", async () => {
    const user = await createUser();
    const a = await callJson("/start_conversation/", { token: user.access, body: { content: "a" }, status: 201 });
    const b = await callJson("/start_conversation/", { token: user.access, body: { content: "b" }, status: 201 });
    const reply = await callJson(`/conversations/${a.conversation.id}/add_message/`, {
      token: user.access,
      body: { content: "re", reply_to: a.ai_message.id },
      status: 201,
    });
    expect(reply.user_message.reply_to).toBe(a.ai_message.id);
    const error = await expectError(
      await call(`/conversations/${a.conversation.id}/add_message/`, { token: user.access, body: { content: "re", reply_to: b.ai_message.id } }),
      400,
      "validation_failed",
    );
    expect(error.details).toEqual([{ field: "reply_to", message: expect.any(String) }]);
    expect(await storedMessages(a.conversation.id)).toHaveLength(4);
  });

  it("refuses new messages in a Deleted conversation with 409 and stores nothing", async () => {
    const user = await createUser();
    const turn = await callJson("/start_conversation/", { token: user.access, body: { content: "hello" }, status: 201 });
    await call(`/conversations/${turn.conversation.id}/`, { token: user.access, method: "DELETE" });
    await expectError(await call(`/conversations/${turn.conversation.id}/add_message/`, { token: user.access, body: { content: "more" } }), 409, "conflict");
    expect(await storedMessages(turn.conversation.id)).toHaveLength(2);
  });

  it("rejects bad content and unknown models before anything is stored", async () => {
    const user = await createUser();
    const id = await newConversation(user);
    for (const content of ["", "   \n\t ", "nul\u0000byte", "lone \ud800 surrogate", 42]) {
      await expectError(await call(`/conversations/${id}/add_message/`, { token: user.access, body: { content } }), 400, "validation_failed");
    }
    await expectError(await call(`/conversations/${id}/add_message/`, { token: user.access, body: { content: "x".repeat(2001) } }), 413, "payload_too_large");
    await expectError(await call("/start_conversation/", { token: user.access, body: { content: "hi", model_version: "gpt-99" } }), 400, "validation_failed");
    await expectError(await call(`/conversations/${id}/add_message/`, { token: user.access, body: { content: "hi", order: 7 } }), 400, "validation_failed");
    expect(await storedMessages(id)).toEqual([]);
    expect((await callJson("/conversations/", { token: user.access, status: 200 })).count).toBe(1);
  });
});

describe("ordering under concurrency", () => {
  it("50 concurrent add_message calls get orders 1..100, each reply right after its message, history in order", async () => {
    const user = await createUser();
    // gpt-4o's 128k window holds the whole history: every echo repeats all that came before.
    const id = await newConversation(user, { model_version: "gpt-4o" });
    const turns = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        callJson(`/conversations/${id}/add_message/`, { token: user.access, body: { content: `[stub: echo=history delay=0] m${i}` }, status: 201 }),
      ),
    );
    const stored = await storedMessages(id);
    expect(stored.map((m) => m.order)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    expect(new Set(stored.map((m) => m.id)).size).toBe(100);
    for (let i = 0; i < 100; i += 2) {
      const [userMessage, aiMessage] = [stored[i]!, stored[i + 1]!];
      expect(userMessage.sender).toBe("user");
      expect(aiMessage).toMatchObject({ sender: "ai", reply_to: userMessage.id, status: "Completed" });
      // The model saw every earlier message, in order, and nothing later.
      const earlierUsers = stored.filter((m) => m.sender === "user" && m.order <= userMessage.order).map((m) => `user: ${m.content}`);
      const seen = aiMessage.content.split("\n");
      expect(seen.filter((line) => line.startsWith("user: "))).toEqual(earlierUsers);
      expect(seen.filter((line) => line.startsWith("assistant: "))).toHaveLength(i / 2);
    }
    expect(turns.map((t) => t.ai_message.order).sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => 2 * i + 2));
  });
});

describe("streaming over SSE", () => {
  it("sends message, deltas and done, each with an id, and the streamed text is the stored text", async () => {
    const user = await createUser();
    const response = await call("/start_conversation/", { token: user.access, headers: SSE, body: { content: "[stub: tokens=12] go" } });
    expect(response.status).toBe(200);
    expect(response.headers.get("Content-Type")).toBe("text/event-stream; charset=utf-8");
    expect(response.headers.get("Cache-Control")).toBe("no-cache");
    const frames = await collectFrames(response);

    expect(frames[0]!.event).toBe("message");
    const { user_message, ai_message, conversation } = frames[0]!.data;
    expect(user_message).toMatchObject({ order: 1, content: "[stub: tokens=12] go" });
    expect(frames[0]!.id).toBe(`${ai_message.id}:0`);
    const deltas = frames.slice(1, -1);
    expect(deltas.every((f) => f.event === "delta")).toBe(true);
    expect(deltas).toHaveLength(12);
    let length = 0;
    for (const frame of deltas) {
      length += frame.data.content.length;
      expect(frame.id).toBe(`${ai_message.id}:${length}`);
    }
    const done = frames.at(-1)!;
    expect(done).toMatchObject({ event: "done", id: `${ai_message.id}:end` });
    expect(done.data).toMatchObject({ ai_message: { content: words(12) }, ai_response: { status: "Completed" } });
    expect(deltaText(frames)).toBe(words(12));

    const stored = await storedMessages(conversation.id);
    expect(stored[1]).toMatchObject({ content: words(12), status: "Completed" });
  });

  it("also streams with ?stream=true", async () => {
    const user = await createUser();
    const response = await call("/start_conversation/?stream=true", { token: user.access, body: { content: "[stub: tokens=3] go" } });
    const frames = await collectFrames(response);
    expect(frames.map((f) => f.event)).toEqual(["message", "delta", "delta", "delta", "done"]);
  });

  it("resumes with Last-Event-ID mid-stream: exactly the missing frames, then live to done", async () => {
    const user = await createUser();
    const response = await call("/start_conversation/", { token: user.access, headers: SSE, body: { content: "[stub: tokens=30 delay=15] go" } });
    const received = [];
    for await (const frame of readFrames(response.body!)) {
      received.push(frame);
      if (received.length === 6) break; // message + 5 deltas, then the client drops
    }
    const conversationId = received[0]!.data.conversation.id;
    const resumed = await collectFrames(
      await call(`/conversations/${conversationId}/stream/`, { token: user.access, headers: { ...SSE, "Last-Event-ID": received.at(-1)!.id! } }),
    );
    expect(resumed[0]!.event).toBe("delta");
    expect(resumed.at(-1)!.event).toBe("done");
    const ids = [...received, ...resumed].map((f) => f.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(deltaText(received) + deltaText(resumed)).toBe(words(30));
  });

  it("resumes a finished reply from the store: the rest of the text, then done at once", async () => {
    const user = await createUser();
    const frames = await collectFrames(await call("/start_conversation/", { token: user.access, headers: SSE, body: { content: "[stub: tokens=8] go" } }));
    const conversationId = frames[0]!.data.conversation.id;
    const third = frames[3]!;
    const resumed = await collectFrames(
      await call(`/conversations/${conversationId}/stream/`, { token: user.access, headers: { "Last-Event-ID": third.id! } }),
    );
    expect(resumed.map((f) => f.event)).toEqual(["delta", "done"]);
    expect(deltaText(frames.slice(0, 4)) + deltaText(resumed)).toBe(words(8));
    // The final frame's id says the client has everything: 204, which also stops an EventSource reconnecting.
    const atEnd = await call(`/conversations/${conversationId}/stream/`, { token: user.access, headers: { "Last-Event-ID": frames.at(-1)!.id! } });
    expect(atEnd.status).toBe(204);
  });

  it("answers 204 with nothing in flight, and attaches from the start to a reply in flight", async () => {
    const user = await createUser();
    const id = await newConversation(user);
    expect((await call(`/conversations/${id}/stream/`, { token: user.access })).status).toBe(204);

    const sending = call(`/conversations/${id}/add_message/`, { token: user.access, headers: SSE, body: { content: "[stub: tokens=20 delay=10] go" } });
    const first = (await sending).body!;
    const attached = await collectFrames(await call(`/conversations/${id}/stream/`, { token: user.access }));
    expect(attached[0]!.event).toBe("message");
    expect(attached.at(-1)!.event).toBe("done");
    expect(deltaText(attached)).toBe(words(20));
    await first.cancel();
    await expectError(await call(`/conversations/${id}/stream/`, { token: user.access, headers: { "Last-Event-ID": `${crypto.randomUUID()}:3` } }), 404);
  });

  it("finishes and stores the reply when the client disconnects mid-stream", async () => {
    const user = await createUser();
    const response = await call("/start_conversation/", { token: user.access, headers: SSE, body: { content: "[stub: tokens=25 delay=10] go" } });
    let conversationId = "";
    let count = 0;
    for await (const frame of readFrames(response.body!)) {
      conversationId ||= frame.data.conversation.id;
      if (++count === 3) break; // readFrames cancels the body: the client is gone
    }
    const deadline = Date.now() + 5_000;
    let stored = await storedMessages(conversationId);
    while (stored[1]?.status !== "Completed" && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      stored = await storedMessages(conversationId);
    }
    expect(stored[1]).toMatchObject({ status: "Completed", content: words(25) });
  });
});

describe("model failures", () => {
  it.each([
    ["upstream HTTP 500", "[stub: status=500] hi", "upstream_error", /HTTP 500/, ""],
    ["mid-stream failure", "[stub: tokens=10 fail_after=3] hi", "upstream_error", /stream failed|reach/, "w1 w2 w3"],
    ["malformed chunk", "[stub: tokens=10 malformed_after=2] hi", "malformed_response", /malformed/, "w1 w2"],
    ["hung upstream (idle timeout)", "[stub: tokens=10 hang_after=2] hi", "upstream_timeout", /sent nothing/, "w1 w2"],
    ["empty reply", "[stub: empty=1] hi", "empty_reply", /empty/, ""],
  ])("%s: JSON 502 with the stored message and an Error response; the next turn works", async (_, content, code, message, partial) => {
    const user = await createUser();
    const id = await newConversation(user);
    const response = await call(`/conversations/${id}/add_message/`, { token: user.access, body: { content } });
    const body = await response.json<any>();
    expect(response.status).toBe(502);
    expect(body.error).toMatchObject({ code: "upstream_error", message: expect.stringMatching(message), details: { code }, request_id: expect.any(String) });
    expect(body.user_message).toMatchObject({ content, order: 1, ai_response_status: "Error" });
    expect(body.ai_response).toMatchObject({ status: "Error", error_code: code, error_message: expect.stringMatching(message), response_content: partial });
    expect(JSON.stringify(body)).not.toMatch(/stack|scripted|at .*\.ts/);

    const stored = await storedMessages(id);
    expect(stored.map((m) => [m.order, m.sender, m.status, m.content])).toEqual([
      [1, "user", null, content],
      [2, "ai", "Error", partial],
    ]);
    const next = await callJson(`/conversations/${id}/add_message/`, { token: user.access, body: { content: "[stub: tokens=2] again" }, status: 201 });
    expect(next.ai_response).toMatchObject({ status: "Completed", response_content: "w1 w2" });
    expect(next.user_message.order).toBe(3);
  });

  it("ends a reply that outlasts MODEL_TIMEOUT_MS (5 s in tests) as upstream_timeout, keeping its text", async () => {
    const user = await createUser();
    const id = await newConversation(user);
    const body = await callJson(`/conversations/${id}/add_message/`, { token: user.access, body: { content: "[stub: tokens=1000 delay=100] forever" }, status: 502 });
    expect(body.ai_response).toMatchObject({ status: "Error", error_code: "upstream_timeout", error_message: "The model did not finish within 5 s." });
    expect(body.ai_response.response_content).toMatch(/^w1 w2 w3/);
  });

  it("sends a sanitised error event over SSE", async () => {
    const user = await createUser();
    const frames = await collectFrames(await call("/start_conversation/", { token: user.access, headers: SSE, body: { content: "[stub: tokens=5 fail_after=2] hi" } }));
    expect(frames.map((f) => f.event)).toEqual(["message", "delta", "delta", "error"]);
    const error = frames.at(-1)!;
    expect(error.id).toBe(`${frames[0]!.data.ai_message.id}:end`);
    expect(error.data).toMatchObject({ code: "upstream_error", message: "The model stream failed.", ai_message: { content: "w1 w2" }, ai_response: { status: "Error" } });
    expect(JSON.stringify(error.data)).not.toContain("scripted");
  });
});

describe("cancel", () => {
  it("stops the reply in flight, keeps the partial text, and queued turns still run", async () => {
    const user = await createUser();
    const id = await newConversation(user);
    const streaming = await call(`/conversations/${id}/add_message/`, { token: user.access, headers: SSE, body: { content: "[stub: tokens=200 delay=20] long" } });
    const queued = callJson(`/conversations/${id}/add_message/`, { token: user.access, body: { content: "[stub: tokens=3] next" } });
    const frames = [];
    for await (const frame of readFrames(streaming.body!)) {
      frames.push(frame);
      if (frames.length === 4) {
        const cancelled = await callJson(`/conversations/${id}/cancel/`, { token: user.access, method: "POST", status: 200 });
        expect(cancelled.ai_response).toMatchObject({ status: "Error", error_code: "cancelled", error_message: "cancelled" });
        expect(cancelled.ai_response.response_content.length).toBeGreaterThan(0);
      }
    }
    expect(frames.at(-1)).toMatchObject({ event: "error", data: { code: "cancelled" } });
    const partial = deltaText(frames);
    expect(words(200).startsWith(partial)).toBe(true);
    expect(partial.length).toBeLessThan(words(200).length);

    const next = await queued;
    expect(next.ai_response).toMatchObject({ status: "Completed", response_content: "w1 w2 w3" });
    const stored = await storedMessages(id);
    expect(stored.map((m) => [m.order, m.status])).toEqual([
      [1, null],
      [2, "Error"],
      [3, null],
      [4, "Completed"],
    ]);
    expect(stored[1]!.content).toBe(partial);
    await expectError(await call(`/conversations/${id}/cancel/`, { token: user.access, method: "POST" }), 409, "conflict");
  });
});
