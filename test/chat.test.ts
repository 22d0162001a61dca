import { DefaultChatTransport, readUIMessageStream, type UIMessage, type UIMessageChunk } from "ai";
import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { BASE, call, callJson, countInShards, createUser, expectError, type TestUser, withinOneRateWindow, RATE_WINDOW_TEST_TIMEOUT_MS } from "./helpers";

// The real AI SDK client (`ai`'s DefaultChatTransport, what useChat uses) against the Worker,
// with nothing but the base URL and a bearer token.
const transportFor = (user: TestUser) =>
  new DefaultChatTransport<UIMessage>({
    api: `${BASE}/chat`,
    headers: { Authorization: `Bearer ${user.access}` },
    fetch: (input, init) => exports.default.fetch(new Request(input, init)),
  });

const userMessage = (text: string, id = crypto.randomUUID()): UIMessage => ({ id, role: "user", parts: [{ type: "text", text }] });

async function readChunks(stream: ReadableStream<UIMessageChunk>): Promise<UIMessageChunk[]> {
  const chunks: UIMessageChunk[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  return chunks;
}

/** The assistant message as the SDK's own reader assembles it from the stream. */
async function finalMessage(stream: ReadableStream<UIMessageChunk>): Promise<UIMessage> {
  let last: UIMessage | undefined;
  for await (const message of readUIMessageStream({ stream })) last = message;
  return last!;
}

const textOf = (message: UIMessage) => message.parts.map((part) => (part.type === "text" ? part.text : "")).join("");

async function send(user: TestUser, chatId: string, messages: UIMessage[], extra: Partial<Parameters<DefaultChatTransport<UIMessage>["sendMessages"]>[0]> = {}) {
  return transportFor(user).sendMessages({ chatId, messages, trigger: "submit-message", messageId: undefined, abortSignal: undefined, ...extra });
}

const storedConversation = async (user: TestUser, title: string) =>
  (await callJson(`/conversations/?search=${encodeURIComponent(title)}`, { token: user.access, status: 200 })).results[0];

describe("AI SDK chat protocol", () => {
  it("answers a send with the UI message stream, persists it, and continues the same chat", async () => {
    const user = await createUser();
    const chatId = crypto.randomUUID();
    const first = userMessage("[stub: tokens=5] hello chat");
    const chunks = await readChunks(await send(user, chatId, [first]));
    expect(chunks.map((c) => c.type)).toEqual(["start", "start-step", "text-start", "text-delta", "text-delta", "text-delta", "text-delta", "text-delta", "text-end", "finish-step", "finish"]);
    const start = chunks[0] as Extract<UIMessageChunk, { type: "start" }>;
    expect(chunks.at(-1)).toMatchObject({ type: "finish", finishReason: "stop" });

    const conversation = await storedConversation(user, "hello chat");
    expect(start.messageMetadata).toMatchObject({ conversation: conversation.id });
    const listed = await callJson(`/conversations/${conversation.id}/messages/`, { token: user.access, status: 200 });
    expect(listed.results.map((m: any) => [m.sender, m.content])).toEqual([
      ["user", "[stub: tokens=5] hello chat"],
      ["ai", "w1 w2 w3 w4 w5"],
    ]);
    expect(listed.results[1].id).toBe(start.messageId);

    // The client sends its whole copy; only the last message is read, the server holds the history.
    const assistant: UIMessage = { id: start.messageId!, role: "assistant", parts: [{ type: "text", text: "client's copy, ignored" }] };
    const next = userMessage("[stub: echo=history] and then?");
    const reply = await finalMessage(await send(user, chatId, [first, assistant, next]));
    expect(textOf(reply).split("\n")).toEqual(["user: [stub: tokens=5] hello chat", "assistant: (14 chars)", "user: [stub: echo=history] and then?"]);

    // A retried send (same client message id) lands on the turn it already made.
    const retried = await finalMessage(await send(user, chatId, [first, assistant, next]));
    expect(retried.id).toBe(reply.id);
    expect((await callJson(`/conversations/${conversation.id}/messages/`, { token: user.access, status: 200 })).count).toBe(4);
  });

  it("regenerates the last reply, or the one named by messageId, as a new branch", async () => {
    const user = await createUser();
    const chatId = crypto.randomUUID();
    const first = userMessage("[stub: tokens=3] regenerate me");
    const original = await finalMessage(await send(user, chatId, [first]));
    const transport = transportFor(user);
    const again = await finalMessage(
      await transport.sendMessages({ chatId, messages: [first], trigger: "regenerate-message", messageId: undefined, abortSignal: undefined }),
    );
    expect(again.id).not.toBe(original.id);
    expect(textOf(again)).toBe("w1 w2 w3");
    const third = await finalMessage(
      await transport.sendMessages({ chatId, messages: [first], trigger: "regenerate-message", messageId: original.id, abortSignal: undefined }),
    );
    const conversation = await storedConversation(user, "regenerate me");
    const all = await callJson(`/conversations/${conversation.id}/messages/?branch=all`, { token: user.access, status: 200 });
    expect(all.results.filter((m: any) => m.sender === "ai").map((m: any) => m.id)).toEqual([original.id, again.id, third.id]);
    expect(all.results.at(-1).siblings).toMatchObject({ index: 3, count: 3 });
  });

  it("resumes after the client's stream is cut: reconnectToStream replays the reply in flight, which finishes and is stored", async () => {
    const user = await createUser();
    const chatId = crypto.randomUUID();
    const transport = transportFor(user);
    expect(await transport.reconnectToStream({ chatId })).toBeNull();

    const abort = new AbortController();
    const stream = await send(user, chatId, [userMessage("[stub: tokens=40 delay=15] a long one")], { abortSignal: abort.signal });
    const seen: UIMessageChunk[] = [];
    for await (const chunk of stream) {
      seen.push(chunk);
      if (seen.filter((c) => c.type === "text-delta").length === 5) break; // like a reload: the client goes away
    }
    abort.abort();

    const resumed = await transport.reconnectToStream({ chatId });
    expect(resumed).not.toBeNull();
    const message = await finalMessage(resumed!);
    expect(message.id).toBe((seen[0] as Extract<UIMessageChunk, { type: "start" }>).messageId);
    expect(textOf(message)).toBe(Array.from({ length: 40 }, (_, i) => `w${i + 1}`).join(" "));

    const conversation = await storedConversation(user, "a long one");
    const listed = await callJson(`/conversations/${conversation.id}/messages/`, { token: user.access, status: 200 });
    expect(listed.results[1]).toMatchObject({ id: message.id, content: textOf(message) });
    expect(await transport.reconnectToStream({ chatId })).toBeNull();
  });

  it("streams a model failure as an error chunk and keeps the user message", async () => {
    const user = await createUser();
    const chatId = crypto.randomUUID();
    const chunks = await readChunks(await send(user, chatId, [userMessage("[stub: status=500] will fail")]));
    expect(chunks.map((c) => c.type)).toEqual(["start", "error"]);
    expect(chunks.at(-1)).toMatchObject({ type: "error", errorText: "The model provider answered with HTTP 500." });
    const conversation = await storedConversation(user, "will fail");
    const listed = await callJson(`/conversations/${conversation.id}/messages/`, { token: user.access, status: 200 });
    expect(listed.results[0]).toMatchObject({ content: "[stub: status=500] will fail", ai_response_status: "Error" });
  });

  it("sets the protocol header, needs a token, and keeps one user's chat ids apart from another's", async () => {
    const owner = await createUser();
    const chatId = crypto.randomUUID();
    const response = await call("/chat", { token: owner.access, body: { id: chatId, messages: [userMessage("[stub: tokens=1] mine")], trigger: "submit-message" } });
    expect(response.headers.get("x-vercel-ai-ui-message-stream")).toBe("v1");
    expect(response.headers.get("Content-Type")).toMatch(/^text\/event-stream/);
    const text = await response.text();
    expect(text.trim().endsWith("data: [DONE]")).toBe(true);

    await expectError(await call("/chat", { body: { id: chatId, messages: [userMessage("x")], trigger: "submit-message" } }), 401, "unauthorized");
    await expectError(
      await call("/chat", { token: owner.access, body: { id: chatId, messages: [{ id: "a", role: "assistant", parts: [] }], trigger: "submit-message" } }),
      400,
      "validation_failed",
    );
    // The same chat id from another user is another conversation.
    const stranger = await createUser();
    const theirs = await finalMessage(await send(stranger, chatId, [userMessage("[stub: echo=history] theirs")]));
    expect(textOf(theirs)).toBe("user: [stub: echo=history] theirs");
    const count = await countInShards("SELECT count(*) AS n FROM conversations WHERE user_id = ?", stranger.id);
    expect(count).toBe(1);
  });
});

describe("hostile /chat bodies", () => {
  it("refuses unknown top-level fields and oversized arrays with a short answer, charging the turn rate limit first", { timeout: RATE_WINDOW_TEST_TIMEOUT_MS }, async () => {
    await withinOneRateWindow(20);
    const user = await createUser();
    const message = { id: "m1", role: "user", parts: [{ type: "text", text: "hi" }] };
    const flood: Record<string, unknown> = { id: "chat-flood", trigger: "submit-message", messages: [message] };
    for (let i = 0; i < 100_000; i++) flood[`k${i}`] = i;
    const refused = await call("/chat", { token: user.access, body: flood });
    const text = await refused.clone().text();
    const error = await expectError(refused, 400, "validation_failed");
    expect(text.length).toBeLessThan(4_000);
    expect(JSON.stringify(error.details)).toMatch(/nrecognized/);

    const tooMany = { id: "chat-flood", trigger: "submit-message", messages: Array.from({ length: 2_001 }, () => message) };
    await expectError(await call("/chat", { token: user.access, body: tooMany }), 400, "validation_failed");

    // TURN_RATE_LIMITER allows 100 turns a minute: bodies that fail validation count too.
    for (let i = 2; i < 100; i++) await call("/chat", { token: user.access, body: { id: "x", trigger: "submit-message", messages: [message], extra: i } });
    await expectError(await call("/chat", { token: user.access, body: flood }), 429, "rate_limited");
  });
});

describe("files in a chat", () => {
  it("stores the AI SDK's file parts sent as data: URLs and gives them to the model; a remote URL is refused", async () => {
    const user = await createUser();
    const png = "iVBORw0KGgoAAAANSUhEUgAAAAMAAAACCAIAAAASFvFNAAAAE0lEQVR4nGP4z8DAwMDAxMDAAAAbJgIEVxYpMQAAAABJRU5ErkJggg==";
    const withFile: UIMessage = {
      id: crypto.randomUUID(),
      role: "user",
      parts: [
        { type: "text", text: "what is this?" },
        { type: "file", mediaType: "image/png", url: `data:image/png;base64,${png}`, filename: "dot.png" },
      ],
    };
    const chunks = await readChunks(await send(user, crypto.randomUUID(), [withFile]));
    const reply = chunks.filter((c) => c.type === "text-delta").map((c) => (c as { delta: string }).delta).join("");
    expect(reply).toContain("an image, 3×2 PNG, named dot.png");
    const stored = await callJson("/files/", { token: user.access, status: 200 });
    expect(stored.results).toMatchObject([{ filename: "dot.png", media_type: "image/png", width: 3, height: 2 }]);

    const remote: UIMessage = { id: crypto.randomUUID(), role: "user", parts: [{ type: "text", text: "and this?" }, { type: "file", mediaType: "image/png", url: "https://example.com/x.png" }] };
    const refused = await call("/chat", { token: user.access, body: { id: crypto.randomUUID(), trigger: "submit-message", messages: [remote] } });
    const error = await expectError(refused, 400, "validation_failed");
    expect(JSON.stringify(error.details)).toContain("remote URLs are not fetched");
  });
});
