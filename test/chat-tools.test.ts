import { AbstractChat, type ChatState, type ChatStatus, DefaultChatTransport, lastAssistantMessageIsCompleteWithApprovalResponses, lastAssistantMessageIsCompleteWithToolCalls, type UIMessage } from "ai";
import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { conversationIdForChat } from "../src/lib/idempotency";
import { BASE, callJson, createUser, eventually, setObjectEnv, type TestUser } from "./helpers";

// The AI SDK's own chat (what useChat wraps) against the Worker, unmodified: client tools in the
// transport's body, addToolOutput / addToolApprovalResponse, and sendAutomaticallyWhen.

class MemoryState implements ChatState<UIMessage> {
  status: ChatStatus = "ready";
  error: Error | undefined = undefined;
  messages: UIMessage[] = [];
  pushMessage = (message: UIMessage) => void this.messages.push(message);
  popMessage = () => void this.messages.pop();
  replaceMessage = (index: number, message: UIMessage) => void (this.messages[index] = message);
  snapshot = <T>(thing: T): T => structuredClone(thing);
}

class TestChat extends AbstractChat<UIMessage> {
  constructor(init: Omit<ConstructorParameters<typeof AbstractChat<UIMessage>>[0], "state">) {
    super({ ...init, state: new MemoryState() } as never);
  }
}

/** MCP_SERVERS with the demo server (send_email needs approval). */
const mcpEnv = { ...env, MCP_SERVERS: JSON.stringify([{ name: "demo", url: env.TEST_MCP_URL, require_approval: ["send_email"] }]) } as Env;

const transport = (user: TestUser, body: object) =>
  new DefaultChatTransport<UIMessage>({
    api: `${BASE}/chat`,
    headers: { Authorization: `Bearer ${user.access}` },
    body,
    fetch: (input, init) => exports.default.fetch(new Request(input, init)),
  });

const CLOCK = { name: "local_time", description: "The user's local time.", parameters: { type: "object", properties: {} } };

/** Waits until the chat is idle again (every automatic re-send done). */
const settled = (chat: TestChat) => eventually(async () => chat.status, (status) => status === "ready" || status === "error");

describe("tools over /chat with the AI SDK's chat", () => {
  it("a client tool: the call arrives, addToolOutput re-posts, and the same assistant message goes on", async () => {
    const user = await createUser();
    const calls: string[] = [];
    const chat: TestChat = new TestChat({
      transport: transport(user, { tools: [CLOCK] }),
      sendAutomaticallyWhen: lastAssistantMessageIsCompleteWithToolCalls,
      onToolCall: ({ toolCall }) => {
        calls.push(toolCall.toolName);
        void chat.addToolOutput({ tool: "local_time", toolCallId: toolCall.toolCallId, output: "14:05" } as never);
      },
    });
    await chat.sendMessage({ text: "[stub: call=local_time] what time is it?" });
    await settled(chat);
    await eventually(async () => chat.messages.at(-1)!.parts.some((p) => p.type === "text"), Boolean);
    await settled(chat);
    expect(calls).toEqual(["local_time"]);
    expect(chat.messages.map((m) => m.role)).toEqual(["user", "assistant"]);
    const assistant = chat.messages[1]!;
    const tool = assistant.parts.find((p) => p.type === "tool-local_time") as any;
    expect(tool).toMatchObject({ state: "output-available", output: "14:05" });
    expect(assistant.parts.filter((p) => p.type === "text").map((p: any) => p.text).join("")).toBe("Tool results: local_time said 14:05. Done.");
    expect(assistant.parts.filter((p) => p.type === "step-start")).toHaveLength(2);

    // Stored as one AI message, with the same id the client holds.
    const conversations = await callJson("/conversations/", { token: user.access });
    const messages = await callJson(`/conversations/${conversations.results[0].id}/messages/`, { token: user.access });
    expect(messages.results.map((m: any) => m.id)).toEqual([expect.any(String), assistant.id]);
    expect(messages.results[1].parts.map((p: any) => p.type)).toEqual(["tool_call", "text"]);
  });

  it("an approval: tool-approval-request, then addToolApprovalResponse runs the server tool in the same message", async () => {
    const user = await createUser();
    const chatId = crypto.randomUUID();
    // The chat's conversation object runs with the demo server configured.
    await setObjectEnv(await conversationIdForChat(env, user.id, chatId), mcpEnv);
    const chat = new TestChat({ id: chatId, transport: transport(user, {}), sendAutomaticallyWhen: lastAssistantMessageIsCompleteWithApprovalResponses });
    await chat.sendMessage({ text: `[stub: call=demo__send_email args={"to":"x@y.z","subject":"hello"}] send it` });
    await settled(chat);
    const requested = chat.messages[1]!.parts.find((p: any) => p.toolCallId) as any;
    expect(requested).toMatchObject({ type: "dynamic-tool", toolName: "demo__send_email", state: "approval-requested" });
    await chat.addToolApprovalResponse({ id: requested.approval.id, approved: true });
    await eventually(async () => chat.messages.at(-1)!.parts.some((p) => p.type === "text"), Boolean);
    await settled(chat);
    expect(chat.messages).toHaveLength(2);
    const done = chat.messages[1]!.parts.find((p: any) => p.toolCallId) as any;
    expect(done).toMatchObject({ state: "output-available", output: `demo: an email "hello" to x@y.z would have been sent` });

    // A denial: the call ends denied, and the model is told why.
    await chat.sendMessage({ text: `[stub: call=demo__send_email args={"to":"x@y.z","subject":"again"}] once more` });
    await settled(chat);
    const asked = chat.messages[3]!.parts.find((p: any) => p.toolCallId) as any;
    await chat.addToolApprovalResponse({ id: asked.approval.id, approved: false, reason: "too many emails" });
    await eventually(async () => chat.messages.at(-1)!.parts.some((p) => p.type === "text"), Boolean);
    await settled(chat);
    expect(chat.messages).toHaveLength(4);
    expect(chat.messages[3]!.parts.find((p: any) => p.toolCallId)).toMatchObject({ state: "output-denied" });
    const text = chat.messages[3]!.parts.filter((p) => p.type === "text").map((p: any) => p.text).join("");
    expect(text).toBe("Tool results: demo__send_email said The user denied this tool call. Reason: too many emails. Done.");
  });
});

describe("the UI message stream of a turn with tools", () => {
  it("frames each step and each kind of part the way the AI SDK expects", async () => {
    const user = await createUser();
    const chatId = crypto.randomUUID();
    await setObjectEnv(await conversationIdForChat(env, user.id, chatId), mcpEnv);
    const stream = await transport(user, {}).sendMessages({
      chatId,
      messages: [{ id: crypto.randomUUID(), role: "user", parts: [{ type: "text", text: `[stub: reasoning=1 call=demo__add args={"a":1,"b":2} tokens=1] go` }] }],
      trigger: "submit-message",
      messageId: undefined,
      abortSignal: undefined,
    });
    const types: string[] = [];
    for await (const chunk of stream) types.push(chunk.type);
    expect(types).toEqual([
      "start",
      "start-step",
      "reasoning-start",
      "reasoning-delta",
      "reasoning-end",
      "tool-input-start",
      "tool-input-delta",
      "tool-input-available",
      "tool-output-available",
      "finish-step",
      "start-step",
      "reasoning-start",
      "reasoning-delta",
      "reasoning-end",
      "text-start",
      ...types.filter((type) => type === "text-delta").map(() => "text-delta"),
      "text-end",
      "finish-step",
      "finish",
    ]);
  });
});
