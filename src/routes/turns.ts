import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { and, count, eq } from "drizzle-orm";
import type { AppEnv } from "../app-env";
import { createRouter } from "../create-router";
import { getDb } from "../db/client";
import { loadOwnedConversation, ownedConversationQuery } from "../db/queries";
import { aiResponses, type Conversation, messages } from "../db/schema";
import type { SubmitOutcome, TurnResult } from "../engine/conversation-object";
import { SSE_HEADERS } from "../engine/sse";
import { getConfig } from "../config";
import { ApiError, invalid, notFound } from "../errors";
import { newId, nowIso } from "../lib/ids";
import { conversationIdForKey, IdempotencyHeadersSchema, requestHash } from "../lib/idempotency";
import { enforceRateLimit } from "../lib/rate-limit";
import { checkMessageContent, MessageContentSchema } from "../message-content";
import { authenticated } from "../middleware";
import {
  AiResponseSchema,
  ConversationSchema,
  ErrorSchema,
  errorResponses,
  IdParamSchema,
  jsonBody,
  MessageSchema,
} from "../schemas";
import { ModelVersionSchema, resolveModel, SystemPromptSchema, titleColumns, TitleSchema } from "./conversations";

const TurnSchema = z
  .object({ conversation: ConversationSchema, user_message: MessageSchema, ai_message: MessageSchema, ai_response: AiResponseSchema })
  .openapi("Turn");

const StreamQuerySchema = z.object({
  stream: z.enum(["true", "false"]).optional().openapi({ description: "`true` answers with Server-Sent Events, like `Accept: text/event-stream`." }),
});

const SSE_DESCRIPTION =
  "With `Accept: text/event-stream` or `?stream=true`: `event: message` ({conversation, user_message, ai_message}), " +
  "then `event: delta` ({content}) per token, then `event: done` ({ai_message, ai_response}) or `event: error` " +
  "({code, message, ai_message, ai_response}). Frame ids are `<ai message id>:<characters so far>`; resume with " +
  "GET /conversations/{id}/stream/ and `Last-Event-ID`.";

const turnResponses = {
  201: {
    description: `The stored turn (JSON mode). ${SSE_DESCRIPTION}`,
    content: { "application/json": { schema: TurnSchema }, "text/event-stream": { schema: z.string() } },
  },
  502: {
    description: "The model failed: the error plus the stored user message and the AI response with status Error.",
    content: { "application/json": { schema: ErrorSchema.extend(TurnSchema.shape) } },
  },
  ...errorResponses(400, 401, 404, 409, 413, 415, 422, 429),
};

const secured = authenticated("turns");

const startConversation = createRoute({
  ...secured,
  method: "post",
  path: "/start_conversation",
  summary: "Create a conversation with its first message and generate the reply",
  request: {
    query: StreamQuerySchema,
    headers: IdempotencyHeadersSchema,
    body: jsonBody(
      z.strictObject({
        content: MessageContentSchema,
        title: TitleSchema.optional(),
        model_version: ModelVersionSchema.optional(),
        system_prompt: SystemPromptSchema.optional(),
      }),
    ),
  },
  responses: turnResponses,
});

const addMessage = createRoute({
  ...secured,
  method: "post",
  path: "/conversations/{id}/add_message",
  summary: "Add a user message to an Active conversation and generate the reply",
  request: {
    params: IdParamSchema,
    query: StreamQuerySchema,
    headers: IdempotencyHeadersSchema,
    body: jsonBody(
      z.strictObject({
        content: MessageContentSchema,
        reply_to: z.string().min(1).max(64).nullable().optional().openapi({ description: "Id of a message in this conversation." }),
      }),
    ),
  },
  responses: turnResponses,
});

const streamReply = createRoute({
  ...secured,
  method: "get",
  path: "/conversations/{id}/stream",
  summary: "Attach to the reply in flight, or resume one with Last-Event-ID",
  request: {
    params: IdParamSchema,
    headers: z.object({ "last-event-id": z.string().max(100).optional() }),
  },
  responses: {
    200: { description: `The reply as Server-Sent Events. ${SSE_DESCRIPTION}`, content: { "text/event-stream": { schema: z.string() } } },
    204: { description: "Nothing in flight and nothing to resume" },
    ...errorResponses(400, 401, 404),
  },
});

const cancelReply = createRoute({
  ...secured,
  method: "post",
  path: "/conversations/{id}/cancel",
  summary: "Stop the reply in flight; it is stored as Error `cancelled` with the text so far",
  request: { params: IdParamSchema },
  responses: {
    200: { description: "The cancelled AI response", content: { "application/json": { schema: z.object({ ai_response: AiResponseSchema }) } } },
    ...errorResponses(401, 404, 409),
  },
});

const conversationObject = (env: Env, conversationId: string) => env.CONVERSATION.get(env.CONVERSATION.idFromName(conversationId));

const wantsEventStream = (c: Context<AppEnv>) =>
  c.req.query("stream") === "true" || (c.req.header("Accept") ?? "").includes("text/event-stream");

function turnResponse(c: Context<AppEnv>, outcome: SubmitOutcome): Response {
  if (outcome.kind === "rejected") throw new ApiError(outcome.code, outcome.message, undefined, outcome.headers);
  if (outcome.kind === "stream") return c.body(outcome.stream, 200, SSE_HEADERS);
  const { failure, ...turn }: TurnResult = outcome.result;
  if (failure?.code !== undefined && failure.code !== "cancelled") {
    const error = new ApiError("upstream_error", failure.message, { code: failure.code });
    return c.json({ ...error.body(c.get("requestId")), ...turn }, 502);
  }
  return c.json(turn, 201);
}

/**
 * The checks every new turn passes before anything is written: the per-user turn rate, and the
 * cap on one user's turns waiting or generating across conversations. The cap counts Generating
 * responses, the source of truth, so nothing can leak; concurrent sends may overshoot it slightly.
 */
async function admitTurn(c: Context<AppEnv>, conversationId: string | null): Promise<Conversation | null> {
  const userId = c.get("userId");
  const db = getDb(c.env);
  const generatingQuery = db
    .select({ n: count() })
    .from(aiResponses)
    .where(and(eq(aiResponses.userId, userId), eq(aiResponses.status, "Generating")));
  const noConversationToLoad: Conversation[] = [];
  // The rate limiter and D1 are asked at the same time: two round trips, one wait.
  const [, [[counted], [found]]] = await Promise.all([
    enforceRateLimit(c.env.TURN_RATE_LIMITER, [`user:${userId}`], "messages"),
    conversationId === null
      ? Promise.all([generatingQuery, noConversationToLoad])
      : db.batch([generatingQuery, ownedConversationQuery(db, userId, conversationId)]),
  ]);
  const generating = counted?.n ?? 0;
  const conversation = found ?? null;
  if (conversationId !== null) {
    if (!conversation) throw notFound("Conversation");
    if (conversation.status !== "Active") throw new ApiError("conflict", "This conversation is deleted; restore it to add messages.");
  }
  const cap = getConfig(c.env).maxConcurrentGenerations;
  if (generating >= cap) {
    throw new ApiError("rate_limited", `You already have ${cap} replies waiting or generating; wait for one to finish.`, undefined, { "Retry-After": "5" });
  }
  return conversation;
}

export const turnRoutes = createRouter()
  .openapi(startConversation, async (c) => {
    const body = c.req.valid("json");
    const key = c.req.valid("header")["idempotency-key"];
    const now = nowIso();
    const conversation: Conversation = {
      id: key ? await conversationIdForKey(c.env, c.get("userId"), key) : newId(),
      userId: c.get("userId"),
      title: null,
      titleSearch: null,
      ...titleColumns(body.title),
      status: "Active",
      modelVersion: resolveModel(c.env, body.model_version),
      systemPrompt: body.system_prompt || null,
      createdAt: now,
      updatedAt: now,
    };
    const content = checkMessageContent(c.env, body.content);
    await admitTurn(c, null);
    const outcome = await conversationObject(c.env, conversation.id).submitTurn(
      { conversation, isNewConversation: true, content, replyTo: null, idempotency: key ? { key, requestHash: await requestHash(["start", body]) } : null },
      wantsEventStream(c) ? "sse" : "json",
    );
    return turnResponse(c, outcome);
  })
  .openapi(addMessage, async (c) => {
    const { id } = c.req.valid("param");
    const body = c.req.valid("json");
    const key = c.req.valid("header")["idempotency-key"];
    const content = checkMessageContent(c.env, body.content);
    const replyTo = body.reply_to ?? null;
    // The reply_to lookup runs beside the admission checks rather than after them.
    const [conversation, replyTarget] = await Promise.all([
      admitTurn(c, id),
      replyTo ? getDb(c.env).select({ id: messages.id }).from(messages).where(and(eq(messages.id, replyTo), eq(messages.conversationId, id))) : null,
    ]);
    if (replyTarget?.length === 0) throw invalid({ field: "reply_to", message: "Not a message of this conversation." });
    const outcome = await conversationObject(c.env, id).submitTurn(
      { conversation: conversation!, isNewConversation: false, content, replyTo, idempotency: key ? { key, requestHash: await requestHash(["add", id, body]) } : null },
      wantsEventStream(c) ? "sse" : "json",
    );
    return turnResponse(c, outcome);
  })
  .openapi(streamReply, async (c) => {
    const { id } = c.req.valid("param");
    await loadOwnedConversation(getDb(c.env), c.get("userId"), id);
    const lastEventId = c.req.valid("header")["last-event-id"] ?? null;
    const stream = await conversationObject(c.env, id).attach(id, lastEventId);
    if (!stream) {
      if (lastEventId !== null) throw new ApiError("not_found", "No reply with that Last-Event-ID in this conversation.");
      return c.body(null, 204);
    }
    return c.body(stream, 200, SSE_HEADERS);
  })
  .openapi(cancelReply, async (c) => {
    const { id } = c.req.valid("param");
    await loadOwnedConversation(getDb(c.env), c.get("userId"), id);
    const result = await conversationObject(c.env, id).cancel();
    if (!result) throw new ApiError("conflict", "No reply is being generated in this conversation.");
    return c.json({ ai_response: result.ai_response }, 200);
  });

