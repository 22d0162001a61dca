import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { and, eq } from "drizzle-orm";
import type { AppEnv } from "../app-env";
import { ModelVersionSchema, newConversationRow, resolveModel, SystemPromptSchema, TitleSchema } from "../conversation-rules";
import { createRouter } from "../create-router";
import { noteBookmark, userDb } from "../db/request-session";
import { loadOwnedConversation, ownedConversationQuery } from "../db/queries";
import { messages } from "../db/schema";
import type { SubmitOutcome, TurnResult } from "../engine/conversation-object";
import { SSE_HEADERS } from "../engine/sse";
import { conversationObject } from "../engine/stub";
import { ApiError, invalid } from "../errors";
import { conversationIdForKey, IdempotencyHeadersSchema, requestHash } from "../lib/idempotency";
import { checkMessageContent, MessageContentSchema } from "../message-content";
import { signStreamTicket, STREAM_TICKET_TTL_SECONDS } from "../lib/tokens";
import { authenticated, requireAuthOrStreamTicket } from "../middleware";
import { admitRegenerate, admitResend, admitTurn, checkActive, attachListener, rejection, submitTurn, type TurnAdmission } from "../turn-admission";
import {
  AiResponseSchema,
  ConversationSchema,
  ErrorSchema,
  errorResponses,
  IdParamSchema,
  jsonBody,
  jsonResponse,
  MessageSchema,
} from "../schemas";

const TurnSchema = z
  .object({ conversation: ConversationSchema, user_message: MessageSchema, ai_message: MessageSchema, ai_response: AiResponseSchema })
  .openapi("Turn");

/** OpenAI-style callers ask for a stream in the body. */
const StreamFlagSchema = z.boolean().optional().openapi({ description: "`true` answers with Server-Sent Events, like `Accept: text/event-stream`." });

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
        stream: StreamFlagSchema,
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
        stream: StreamFlagSchema,
      }),
    ),
  },
  responses: turnResponses,
});

const streamReply = createRoute({
  ...secured,
  middleware: [requireAuthOrStreamTicket],
  security: [...secured.security, { StreamTicket: [] }],
  method: "get",
  path: "/conversations/{id}/stream",
  summary: "Attach to the reply in flight, or resume one with Last-Event-ID",
  request: {
    params: IdParamSchema,
    query: z.object({
      ticket: z.string().max(2_000).optional().openapi({ description: "A stream ticket, instead of the Authorization header (for EventSource)." }),
    }),
    headers: z.object({ "last-event-id": z.string().max(100).optional() }),
  },
  responses: {
    200: { description: `The reply as Server-Sent Events. ${SSE_DESCRIPTION}`, content: { "text/event-stream": { schema: z.string() } } },
    204: { description: "Nothing in flight and nothing to resume, or the Last-Event-ID was the reply's final frame" },
    ...errorResponses(400, 401, 404),
  },
});

const streamTicket = createRoute({
  ...secured,
  method: "post",
  path: "/conversations/{id}/stream_ticket",
  summary: "A 60-second, read-only ticket for this conversation's stream, usable as ?ticket= (EventSource cannot send headers)",
  request: { params: IdParamSchema },
  responses: {
    201: jsonResponse(z.object({ ticket: z.string(), expires_in: z.number().int() }).openapi("StreamTicket"), "The ticket"),
    ...errorResponses(401, 404),
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
    body: { required: false, content: { "application/json": { schema: z.strictObject({ model_version: ModelVersionSchema.optional(), stream: StreamFlagSchema }) } } },
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
    body: jsonBody(z.strictObject({ content: MessageContentSchema, stream: StreamFlagSchema })),
  },
  responses: turnResponses,
});

const wantsEventStream = (c: Context<AppEnv>, bodyFlag: boolean | undefined) =>
  bodyFlag ?? (c.req.query("stream") === "true" || (c.req.header("Accept") ?? "").includes("text/event-stream"));

function turnResponse(c: Context<AppEnv>, outcome: SubmitOutcome): Response {
  if (outcome.kind === "rejected") throw rejection(outcome);
  if (outcome.kind === "stream") return c.body(outcome.stream, 200, SSE_HEADERS);
  noteBookmark(c, outcome.bookmark);
  const { failure, ...turn }: TurnResult = outcome.result;
  // Only a model failure is a 502: a cancelled or interrupted reply is a stored turn like any other.
  if (failure && failure.code !== "cancelled" && failure.code !== "interrupted") {
    const error = new ApiError("upstream_error", failure.message, { details: { code: failure.code } });
    return c.json({ ...error.body(c.get("requestId")), ...turn }, 502);
  }
  return c.json(turn, 201);
}

/**
 * Hands the turn to the conversation's object and answers in the mode the client asked for. An
 * Idempotency-Key is bound to the route, `target` and the body (less its `stream` flag: a retry
 * may ask for the other mode).
 */
async function submit(
  c: Context<AppEnv>,
  request: TurnAdmission,
  target: string[],
  { stream, ...body }: { stream?: boolean },
): Promise<Response> {
  const key = c.req.header("Idempotency-Key");
  const idempotency = key ? { key, requestHash: await requestHash([...target, body]) } : null;
  return turnResponse(c, await submitTurn(c.env, { ...request, idempotency }, wantsEventStream(c, stream) ? "sse" : "json"));
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
    return submit(c, { conversation, isNewConversation: true, keyNamesConversation: id !== undefined, plan: { kind: "send", content, replyTo: null } }, ["start"], body);
  })
  .openapi(addMessage, async (c) => {
    const { id } = c.req.valid("param");
    const body = c.req.valid("json");
    const content = checkMessageContent(c.env, body.content);
    const replyTo = body.reply_to ?? null;
    const db = userDb(c);
    const [[conversation], replyTarget] = await admitTurn(
      c,
      db.batch([
        ownedConversationQuery(db, c.get("userId"), id),
        db.select({ id: messages.id }).from(messages).where(and(eq(messages.id, replyTo ?? ""), eq(messages.conversationId, id))),
      ]),
      ([[found]]) => checkActive(found),
    );
    if (replyTo && replyTarget.length === 0) throw invalid({ field: "reply_to", message: "Not a message of this conversation." });
    return submit(c, { conversation: conversation!, isNewConversation: false, plan: { kind: "send", content, replyTo } }, ["add", id], body);
  })
  .openapi(regenerateReply, async (c) => {
    const { id } = c.req.valid("param");
    // The body is optional: with no Content-Type it validates as {}.
    const body = c.req.valid("json");
    const model = body.model_version === undefined ? null : resolveModel(c.env, body.model_version);
    const request = await admitRegenerate(c, id, model);
    return submit(c, request, ["regenerate", id], body);
  })
  .openapi(resendMessage, async (c) => {
    const { id } = c.req.valid("param");
    const body = c.req.valid("json");
    const request = await admitResend(c, id, checkMessageContent(c.env, body.content));
    return submit(c, request, ["resend", id], body);
  })
  .openapi(streamReply, async (c) => {
    const { id } = c.req.valid("param");
    await loadOwnedConversation(userDb(c), c.get("userId"), id);
    const lastEventId = c.req.valid("header")["last-event-id"] ?? null;
    const stream = await attachListener(c.env, c.get("userId"), id, lastEventId);
    if (stream === null && lastEventId !== null) throw new ApiError("not_found", "No reply with that Last-Event-ID in this conversation.");
    // 204 also tells an EventSource to stop reconnecting.
    if (stream === null || stream === "finished") return c.body(null, 204);
    return c.body(stream, 200, SSE_HEADERS);
  })
  .openapi(streamTicket, async (c) => {
    const { id } = c.req.valid("param");
    await loadOwnedConversation(userDb(c), c.get("userId"), id);
    return c.json({ ticket: await signStreamTicket(c.env, c.get("userId"), id), expires_in: STREAM_TICKET_TTL_SECONDS }, 201);
  })
  .openapi(cancelReply, async (c) => {
    const { id } = c.req.valid("param");
    await loadOwnedConversation(userDb(c), c.get("userId"), id);
    const result = await conversationObject(c.env, id).cancel();
    if (!result) throw new ApiError("conflict", "No reply is being generated in this conversation.");
    return c.json({ ai_response: result.ai_response }, 200);
  });

