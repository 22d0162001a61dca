import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { AppEnv } from "../app-env";
import { ModelVersionSchema, newConversationRow, resolveModel, SystemPromptSchema } from "../conversation-rules";
import { createRouter } from "../create-router";
import { userDb } from "../db/request-session";
import { ownedConversationQuery } from "../db/queries";
import type { SubmitOutcome } from "../engine/conversation-object";
import { invalid, notFound } from "../errors";
import { conversationIdForChat, requestHash } from "../lib/idempotency";
import { checkMessageContent, MessageContentSchema } from "../message-content";
import { authenticated } from "../middleware";
import { errorResponses, jsonBody } from "../schemas";
import { admitRegenerate, admitResend, admitTurn, checkActive, attachListener, rejection, submitTurn, type TurnAdmission } from "../turn-admission";
import { toUiMessageStream, UI_MESSAGE_STREAM_HEADERS } from "../ui-message-stream";

/*
 * The AI SDK's chat protocol: `api` of `DefaultChatTransport` (`useChat`). The client names the
 * chat; the server keeps its history, so of `messages` only the last user message's text is read.
 */

const UiMessageSchema = z.looseObject({
  id: z.string().max(200),
  role: z.enum(["system", "user", "assistant"]),
  parts: z.array(z.looseObject({ type: z.string(), text: z.string().optional() })),
});

const ChatRequestSchema = z
  .looseObject({
    id: z.string().min(1).max(200).openapi({ description: "The client's chat id; the first message to a new one starts a conversation." }),
    messages: z.array(UiMessageSchema).min(1).openapi({ description: "The client's copy of the chat: only the last message is read." }),
    trigger: z.enum(["submit-message", "regenerate-message"]),
    messageId: z
      .string()
      .max(200)
      .optional()
      .openapi({ description: "regenerate: the reply to regenerate (default: the last); submit: a user message to edit and resend." }),
    model_version: ModelVersionSchema.optional().openapi({ description: "A new chat's model (the transport's `body` option)." }),
    system_prompt: SystemPromptSchema.optional().openapi({ description: "A new chat's system prompt (the transport's `body` option)." }),
  })
  .openapi("ChatRequest");

const UI_STREAM_DESCRIPTION =
  "The AI SDK UI message stream (`x-vercel-ai-ui-message-stream: v1`): `start` (messageId: the AI message id, " +
  "messageMetadata: {conversation, user_message}), `text-start`, `text-delta`…, `text-end`, `finish` (or `error`, " +
  "or `abort` when cancelled), then `[DONE]`.";

const secured = authenticated("chat");

const sendChat = createRoute({
  ...secured,
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

function uiStreamResponse(c: Context<AppEnv>, outcome: SubmitOutcome): Response {
  if (outcome.kind === "rejected") throw rejection(outcome);
  if (outcome.kind !== "stream") throw new Error("a chat turn is always streamed");
  return c.body(toUiMessageStream(outcome.stream), 200, UI_MESSAGE_STREAM_HEADERS);
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

export const chatRoutes = createRouter()
  .openapi(sendChat, async (c) => {
    const body = c.req.valid("json");
    const userId = c.get("userId");
    const db = userDb(c);
    const conversationId = await conversationIdForChat(c.env, userId, body.id);

    if (body.trigger === "regenerate-message") {
      const [conversation] = await ownedConversationQuery(db, userId, conversationId);
      const target = body.messageId ?? conversation?.currentLeafId;
      if (!conversation || !target) throw notFound("Chat");
      const request = await admitRegenerate(c, target, body.model_version === undefined ? null : resolveModel(c.env, body.model_version), conversationId);
      return uiStreamResponse(c, await submitTurn(c.env, { ...request, idempotency: null }, "sse"));
    }

    const message = lastUserText(body.messages);
    const content = checkMessageContent(c.env, message.text);
    // The client's message id makes a retried send land on the turn it already made.
    const idempotency = { key: `chat:${message.id}`, requestHash: await requestHash(["chat", content]) };
    let request: TurnAdmission;
    if (body.messageId !== undefined && body.messageId !== message.id) {
      // `sendMessage({text, messageId})` replaces an earlier user message: edit-and-resend.
      request = await admitResend(c, body.messageId, content, conversationId);
    } else {
      const [existing] = await admitTurn(c, ownedConversationQuery(db, userId, conversationId), ([found]) => found && checkActive(found));
      request = existing
        ? { conversation: existing, isNewConversation: false, plan: { kind: "send", content, replyTo: null } }
        : { conversation: newConversationRow(c.env, userId, { model_version: body.model_version, system_prompt: body.system_prompt }, conversationId), isNewConversation: true, plan: { kind: "send", content, replyTo: null } };
    }
    return uiStreamResponse(c, await submitTurn(c.env, { ...request, idempotency }, "sse"));
  })
  .openapi(resumeChat, async (c) => {
    const userId = c.get("userId");
    const conversationId = await conversationIdForChat(c.env, userId, c.req.valid("param").chatId);
    // A chat that has not started yet has nothing to resume: useChat({resume: true}) asks on every mount.
    const [conversation] = await ownedConversationQuery(userDb(c), userId, conversationId);
    if (!conversation) return c.body(null, 204);
    const stream = await attachListener(c.env, userId, conversationId, null);
    if (stream === null || stream === "finished") return c.body(null, 204);
    return c.body(toUiMessageStream(stream), 200, UI_MESSAGE_STREAM_HEADERS);
  });
