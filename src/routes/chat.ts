import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { AppEnv } from "../http/app-env";
import { IfBusySchema, MaxOutputTokensSchema, ModelVersionSchema, newConversationRow, resolveModel, SystemPromptSchema } from "../rules/conversation-rules";
import { createRouter } from "../http/create-router";
import type { SubmitOutcome } from "../conversation/contract";
import { conversationObject } from "../conversation/client/stub";
import { invalid, isRefusal, unwrap } from "../http/errors";
import { conversationIdForChat, requestHash } from "../lib/idempotency";
import { checkMessageContent, MessageContentSchema } from "../rules/message-content";
import { authenticated } from "../http/middleware";
import { errorResponses, jsonBody } from "../http/schemas";
import { chargeTurnFirst, submitTurn, withGenerationSlot } from "../conversation/client/turns";
import { type ToolAnswers, toolFields, toolSpecOf } from "../rules/tool-rules";
import { framesStream } from "../conversation/frames";
import { encodeFrame, frameId } from "../http/sse";
import { toUiMessageStream, UI_MESSAGE_STREAM_HEADERS } from "../http/ui-message-stream";
import { attachmentRef, storeFile } from "../files/file-store";
import type { AttachmentRef } from "../db/schema";

/*
 * The AI SDK's chat protocol: `api` of `DefaultChatTransport` (`useChat`). The client names the
 * chat; the server keeps its history, so of `messages` only the last user message's text is read.
 */

// Bounded, and without `looseObject`: copying a hostile body's unknown keys cost more CPU than
// anything else about it. Only the last message is read; unknown keys in messages are dropped.
const MAX_CHAT_MESSAGES = 2_000;
const MAX_MESSAGE_PARTS = 100;

const UiMessageSchema = z.object({
  id: z.string().max(200),
  role: z.enum(["system", "user", "assistant"]),
  parts: z
    .array(
      z.object({
        type: z.string().max(100),
        text: z.string().optional(),
        // A `file` part: read from the last user message only, as a data: URL.
        mediaType: z.string().max(200).optional(),
        url: z.string().optional(),
        filename: z.string().max(1_000).optional(),
        // A tool part of the last assistant message: the client's output or approval (addToolOutput, addToolApprovalResponse).
        toolCallId: z.string().max(200).optional(),
        state: z.string().max(100).optional(),
        output: z.unknown().optional(),
        errorText: z.string().max(10_000).optional(),
        approval: z.object({ id: z.string().max(200), approved: z.boolean().optional(), reason: z.string().max(2_000).optional() }).optional(),
      }),
    )
    .max(MAX_MESSAGE_PARTS),
});

const ChatRequestSchema = z
  .strictObject({
    id: z.string().min(1).max(200).openapi({ description: "The client's chat id; the first message to a new one starts a conversation." }),
    messages: z.array(UiMessageSchema).min(1).max(MAX_CHAT_MESSAGES).openapi({ description: "The client's copy of the chat: only the last message is read." }),
    trigger: z.enum(["submit-message", "regenerate-message"]),
    messageId: z
      .string()
      .max(200)
      .optional()
      .openapi({ description: "regenerate: the reply to regenerate (default: the last); submit: a user message to edit and resend." }),
    model_version: ModelVersionSchema.optional().openapi({ description: "A new chat's model (the transport's `body` option)." }),
    system_prompt: SystemPromptSchema.optional().openapi({ description: "A new chat's system prompt (the transport's `body` option)." }),
    max_output_tokens: MaxOutputTokensSchema.optional().openapi({ description: "This turn's output allowance (the transport's `body` option)." }),
    ...toolFields,
    if_busy: IfBusySchema,
  })
  .openapi("ChatRequest");

const UI_STREAM_DESCRIPTION =
  "The AI SDK UI message stream (`x-vercel-ai-ui-message-stream: v1`): `start` (messageId: the AI message id, " +
  "messageMetadata: {conversation, user_message}), per step `start-step` … `finish-step` with `text-*`, `reasoning-*`, " +
  "`tool-input-*`, `tool-approval-request` and `tool-output-*` chunks, `finish` (`tool-calls` when the reply waits for " +
  "the client's tools), or `error`, or `abort` when cancelled, then `[DONE]`. When the last message is the assistant's " +
  "with tool outputs or approval responses, the same assistant message goes on.";

const secured = authenticated("chat");

const sendChat = createRoute({
  ...secured,
  middleware: [...secured.middleware, chargeTurnFirst],
  method: "post",
  path: "/chat",
  summary: "AI SDK chat: send the last user message, or regenerate a reply, and stream the reply",
  request: { body: jsonBody(ChatRequestSchema) },
  responses: {
    200: { description: UI_STREAM_DESCRIPTION, content: { "text/event-stream": { schema: z.string() } } },
    ...errorResponses(400, 401, 404, 409, 413, 415, 429),
  },
});

const resumeChat = createRoute({
  ...secured,
  method: "get",
  path: "/chat/{chatId}/stream",
  summary: "AI SDK chat: the reply in flight, from its start (the transport's reconnectToStream)",
  request: { params: z.object({ chatId: z.string().min(1).max(200).openapi({ param: { name: "chatId", in: "path" } }) }) },
  responses: {
    200: { description: UI_STREAM_DESCRIPTION, content: { "text/event-stream": { schema: z.string() } } },
    204: { description: "No reply in flight (or no such chat yet)" },
    ...errorResponses(401),
  },
});

function uiStreamResponse(c: Context<AppEnv>, outcome: Exclude<SubmitOutcome, { kind: "rejected" }>, continuing?: string): Response {
  if (outcome.kind === "stream") return c.body(toUiMessageStream(outcome.stream, continuing), 200, UI_MESSAGE_STREAM_HEADERS);
  // Answers stored while other calls still wait: the message waits on, nothing streams.
  if (continuing && outcome.result.ai_response.status === "RequiresAction") {
    const waiting = framesStream([encodeFrame("requires_action", frameId(continuing, "end"), { ai_response: outcome.result.ai_response })]);
    return c.body(toUiMessageStream(waiting, continuing), 200, UI_MESSAGE_STREAM_HEADERS);
  }
  throw new Error("a chat turn is always streamed");
}

/**
 * What the last assistant message says to its waiting calls: outputs and errors the client's
 * tools gave (`addToolOutput`), and approval responses (`addToolApprovalResponse`). Parts the
 * server itself answered come along too; the object takes only answers to calls that wait.
 */
function toolAnswersIn(message: z.infer<typeof UiMessageSchema>): ToolAnswers {
  const outputs: ToolAnswers["outputs"] = [];
  const approvals: ToolAnswers["approvals"] = [];
  for (const part of message.parts) {
    if (!part.toolCallId || !(part.type.startsWith("tool-") || part.type === "dynamic-tool")) continue;
    if (part.state === "output-available") outputs.push({ toolCallId: part.toolCallId, output: typeof part.output === "string" ? part.output : JSON.stringify(part.output ?? null) });
    else if (part.state === "output-error") outputs.push({ toolCallId: part.toolCallId, error: part.errorText || "The tool failed." });
    else if (part.state === "approval-responded" && part.approval?.approved !== undefined) {
      approvals.push({ toolCallId: part.toolCallId, approved: part.approval.approved, ...(part.approval.reason ? { reason: part.approval.reason } : {}) });
    }
  }
  if (!outputs.length && !approvals.length) throw invalid({ field: "messages", message: "The last message is the assistant's but answers no tool call." });
  return { outputs, approvals };
}

/** The text of the message the client just added: the last one, from a user. */
function lastUserText(messages: z.infer<typeof UiMessageSchema>[]): { id: string; text: string } {
  const last = messages.at(-1)!;
  if (last.role !== "user") throw invalid({ field: "messages", message: "The last message must be the user's." });
  const text = last.parts.map((part) => (part.type === "text" ? (part.text ?? "") : "")).join("");
  const checked = MessageContentSchema.safeParse(text);
  if (!checked.success) throw invalid({ field: "messages", message: checked.error.issues[0]?.message ?? "Not a valid message." });
  return { id: last.id, text };
}

const MAX_CHAT_FILES = 10;

/**
 * The `file` parts of the message the client just added, stored as the caller's files: `data:`
 * URLs only. A remote URL is refused: the API never fetches what a client names.
 */
async function chatFiles(c: Context<AppEnv>, message: z.infer<typeof UiMessageSchema>): Promise<AttachmentRef[] | undefined> {
  const parts = message.parts.filter((part) => part.type === "file");
  if (parts.length === 0) return undefined;
  if (parts.length > MAX_CHAT_FILES) throw invalid({ field: "messages", message: `At most ${MAX_CHAT_FILES} files per message.` });
  const stored = [];
  for (const part of parts) {
    const data = /^data:([^;,]*)(;base64)?,(.*)$/s.exec(part.url ?? "");
    if (!data) throw invalid({ field: "messages", message: "A file part must carry its bytes as a data: URL; remote URLs are not fetched." });
    const [, type, isBase64, payload = ""] = data;
    let bytes: Uint8Array;
    try {
      bytes = isBase64 ? Uint8Array.from(atob(payload), (ch) => ch.charCodeAt(0)) : new TextEncoder().encode(decodeURIComponent(payload));
    } catch {
      throw invalid({ field: "messages", message: "A file part's data: URL could not be decoded." });
    }
    stored.push(attachmentRef(await storeFile(c, { bytes, declared: part.mediaType ?? type ?? null, name: part.filename })));
  }
  return stored;
}

export const chatRoutes = createRouter()
  .openapi(sendChat, async (c) => {
    const body = c.req.valid("json");
    const userId = c.get("userId");
    const conversationId = await conversationIdForChat(c.env, userId, body.id);
    const common = { conversationId, notFoundAs: "Chat", ifBusy: body.if_busy ?? "queue" } as const;
    const maxOutputTokens = body.max_output_tokens;

    const tools = toolSpecOf(body);

    if (body.trigger === "regenerate-message") {
      const model = body.model_version === undefined ? null : resolveModel(c.env, body.model_version);
      const ask = { kind: "regenerate", messageId: body.messageId ?? null, model, maxOutputTokens, tools } as const;
      return uiStreamResponse(c, await submitTurn(c, { ...common, ask, idempotency: null }, "sse"));
    }

    const last = body.messages.at(-1)!;
    if (last.role === "assistant") {
      // sendAutomaticallyWhen re-posts the chat once the client answered every call: the same message goes on.
      const answers = toolAnswersIn(last);
      const outcome = await withGenerationSlot(c, 0, (owner, lease) =>
        conversationObject(c.env, conversationId).answerTools({ userId: owner, conversationId, aiMessageId: last.id, answers, lease, idempotency: null, onlyWaiting: true }, "sse"),
      );
      return uiStreamResponse(c, outcome, last.id);
    }

    const message = lastUserText(body.messages);
    const attachments = await chatFiles(c, body.messages.at(-1)!);
    const content = checkMessageContent(c.env, message.text);
    // The client's message id makes a retried send land on the turn it already made.
    const idempotency = { key: `chat:${message.id}`, requestHash: await requestHash(["chat", content]) };
    if (body.messageId !== undefined && body.messageId !== message.id) {
      // `sendMessage({text, messageId})` replaces an earlier user message: edit-and-resend.
      const ask = { kind: "resend", messageId: body.messageId, content, maxOutputTokens, attachments, tools } as const;
      return uiStreamResponse(c, await submitTurn(c, { ...common, ask, idempotency }, "sse"));
    }
    // A new chat id starts a conversation; the object tells whether the chat exists.
    const row = newConversationRow(c.env, userId, { model_version: body.model_version, system_prompt: body.system_prompt }, conversationId);
    const ask = { kind: "send", content, replyTo: null, maxOutputTokens, attachments, tools } as const;
    return uiStreamResponse(c, await submitTurn(c, { ...common, ask, create: { row, mayExist: true }, idempotency }, "sse"));
  })
  .openapi(resumeChat, async (c) => {
    const userId = c.get("userId");
    const conversationId = await conversationIdForChat(c.env, userId, c.req.valid("param").chatId);
    // A chat that has not started yet has nothing to resume: useChat({resume: true}) asks on every mount.
    const attachment = await conversationObject(c.env, conversationId).attach(userId, conversationId, null);
    if (isRefusal(attachment) && attachment.code === "not_found") return c.body(null, 204);
    const stream = unwrap(attachment);
    if (stream === null || stream === "finished") return c.body(null, 204);
    return c.body(toUiMessageStream(stream), 200, UI_MESSAGE_STREAM_HEADERS);
  });
