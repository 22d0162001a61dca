import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { and, count, eq } from "drizzle-orm";
import type { AppEnv } from "../app-env";
import { getConfig } from "../config";
import { ModelVersionSchema, newConversationRow, resolveModel, SystemPromptSchema, TitleSchema } from "../conversation-rules";
import { createRouter } from "../create-router";
import { getDb } from "../db/client";
import { loadOwnedConversation, loadOwnedMessageInContext, ownedConversationQuery } from "../db/queries";
import { aiResponses, type Conversation, messages } from "../db/schema";
import { selectContext } from "../engine/context-window";
import type { SubmitOutcome, TurnRequest, TurnResult } from "../engine/conversation-object";
import type { TurnPlan } from "../engine/turn-store";
import { SSE_HEADERS } from "../engine/sse";
import { conversationObject } from "../engine/stub";
import { ApiError, invalid, notFound } from "../errors";
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

const regenerateReply = createRoute({
  ...secured,
  method: "post",
  path: "/messages/{id}/regenerate",
  summary: "Generate a new reply beside an AI message (a new branch); it becomes the current leaf",
  request: {
    params: IdParamSchema,
    query: StreamQuerySchema,
    headers: IdempotencyHeadersSchema,
    body: { required: false, content: { "application/json": { schema: z.strictObject({ model_version: ModelVersionSchema.optional() }) } } },
  },
  responses: turnResponses,
});

const resendMessage = createRoute({
  ...secured,
  method: "post",
  path: "/messages/{id}/resend",
  summary: "Edit-and-resend: a new user message beside this one (a new branch) and its reply",
  request: {
    params: IdParamSchema,
    query: StreamQuerySchema,
    headers: IdempotencyHeadersSchema,
    body: jsonBody(z.strictObject({ content: MessageContentSchema })),
  },
  responses: turnResponses,
});

const wantsEventStream = (c: Context<AppEnv>) =>
  c.req.query("stream") === "true" || (c.req.header("Accept") ?? "").includes("text/event-stream");

function turnResponse(c: Context<AppEnv>, outcome: SubmitOutcome): Response {
  if (outcome.kind === "rejected") throw new ApiError(outcome.code, outcome.message, { headers: outcome.headers });
  if (outcome.kind === "stream") return c.body(outcome.stream, 200, SSE_HEADERS);
  const { failure, ...turn }: TurnResult = outcome.result;
  if (failure?.code !== undefined && failure.code !== "cancelled") {
    const error = new ApiError("upstream_error", failure.message, { details: { code: failure.code } });
    return c.json({ ...error.body(c.get("requestId")), ...turn }, 502);
  }
  return c.json(turn, 201);
}

/**
 * The checks every new turn passes before anything is written: the per-user turn rate, what
 * `lookup` finds (the conversation, checked by `checkTarget`), and the cap on one user's turns
 * waiting or generating across conversations. The cap counts Generating responses, the source of
 * truth, so nothing can leak; concurrent sends may overshoot it slightly. All three are asked at
 * once: one wait instead of three.
 */
async function admitTurn<T>(c: Context<AppEnv>, lookup: Promise<T>, checkTarget: (found: T) => void): Promise<T> {
  const userId = c.get("userId");
  const generatingQuery = getDb(c.env)
    .select({ n: count() })
    .from(aiResponses)
    .where(and(eq(aiResponses.userId, userId), eq(aiResponses.status, "Generating")));
  const [, [counted], found] = await Promise.all([enforceRateLimit(c.env.TURN_RATE_LIMITER, [`user:${userId}`], "messages"), generatingQuery, lookup]);
  checkTarget(found);
  const cap = getConfig(c.env).maxConcurrentGenerations;
  if ((counted?.n ?? 0) >= cap) {
    throw new ApiError("rate_limited", `You already have ${cap} replies waiting or generating; wait for one to finish.`, { headers: { "Retry-After": "5" } });
  }
  return found;
}

function checkActive(conversation: Conversation | undefined): asserts conversation is Conversation {
  if (!conversation) throw notFound("Conversation");
  if (conversation.status !== "Active") throw new ApiError("conflict", "This conversation is deleted; restore it to add messages.");
}

/** A message that cannot fit the model's window even with no history is refused before anything is stored. */
function checkFitsContext(env: Env, conversation: Conversation, plan: TurnPlan): void {
  const model = (plan.kind === "regenerate" && plan.model) || conversation.modelVersion;
  const content = plan.kind === "regenerate" ? plan.userMessage.content : plan.content;
  const alone = { messages: [{ id: "", order: 0, role: "user" as const, content, tokens: null }], summary: null };
  if (!selectContext(conversation.systemPrompt, alone, getConfig(env).modelBudget(model))) {
    throw new ApiError("context_length_exceeded", `This message is too long for the context window of ${model}.`);
  }
}

/** Hands the turn to the conversation's object and answers in the mode the client asked for. */
async function submit(c: Context<AppEnv>, request: Omit<TurnRequest, "idempotency">, hashed: unknown[]): Promise<Response> {
  checkFitsContext(c.env, request.conversation, request.plan);
  const key = c.req.header("Idempotency-Key");
  const idempotency = key ? { key, requestHash: await requestHash(hashed) } : null;
  const outcome = await conversationObject(c.env, request.conversation.id).submitTurn({ ...request, idempotency }, wantsEventStream(c) ? "sse" : "json");
  return turnResponse(c, outcome);
}

export const turnRoutes = createRouter()
  .openapi(startConversation, async (c) => {
    const body = c.req.valid("json");
    const key = c.req.valid("header")["idempotency-key"];
    const userId = c.get("userId");
    const id = key ? await conversationIdForKey(c.env, userId, key) : undefined;
    const conversation = newConversationRow(c.env, userId, body, id);
    const content = checkMessageContent(c.env, body.content);
    await admitTurn(c, Promise.resolve(null), () => undefined);
    return submit(c, { conversation, isNewConversation: true, plan: { kind: "send", content, replyTo: null } }, ["start", body]);
  })
  .openapi(addMessage, async (c) => {
    const { id } = c.req.valid("param");
    const body = c.req.valid("json");
    const content = checkMessageContent(c.env, body.content);
    const replyTo = body.reply_to ?? null;
    const db = getDb(c.env);
    const [[conversation], replyTarget] = await admitTurn(
      c,
      db.batch([
        ownedConversationQuery(db, c.get("userId"), id),
        db.select({ id: messages.id }).from(messages).where(and(eq(messages.id, replyTo ?? ""), eq(messages.conversationId, id))),
      ]),
      ([[found]]) => checkActive(found),
    );
    if (replyTo && replyTarget.length === 0) throw invalid({ field: "reply_to", message: "Not a message of this conversation." });
    return submit(c, { conversation: conversation!, isNewConversation: false, plan: { kind: "send", content, replyTo } }, ["add", id, body]);
  })
  .openapi(regenerateReply, async (c) => {
    const { id } = c.req.valid("param");
    // The body is optional: with no Content-Type it validates as {}.
    const body = c.req.valid("json");
    const model = body.model_version === undefined ? null : resolveModel(c.env, body.model_version);
    const { message, conversation, parent } = await admitTurn(c, loadOwnedMessageInContext(getDb(c.env), c.get("userId"), id), (found) => {
      if (found.message.sender !== "ai") throw new ApiError("bad_request", "Only AI messages can be regenerated; use resend for a user message.");
      checkActive(found.conversation);
    });
    if (parent?.sender !== "user") throw new ApiError("conflict", "This reply has no user message to answer.");
    if (parent.isDeleted) throw new ApiError("conflict", "The message this reply answers is deleted.");
    return submit(
      c,
      { conversation, isNewConversation: false, plan: { kind: "regenerate", userMessage: parent, model } },
      ["regenerate", message.id, body],
    );
  })
  .openapi(resendMessage, async (c) => {
    const { id } = c.req.valid("param");
    const body = c.req.valid("json");
    const content = checkMessageContent(c.env, body.content);
    const { message, conversation } = await admitTurn(c, loadOwnedMessageInContext(getDb(c.env), c.get("userId"), id), (found) => {
      if (found.message.sender !== "user") throw new ApiError("bad_request", "Only user messages can be resent; use regenerate for an AI message.");
      checkActive(found.conversation);
    });
    return submit(c, { conversation, isNewConversation: false, plan: { kind: "resend", original: message, content } }, ["resend", message.id, body]);
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

