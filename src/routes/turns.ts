import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { AppEnv } from "../http/app-env";
import { IfBusySchema, MaxOutputTokensSchema, ModelVersionSchema, newConversationRow, resolveModel, SystemPromptSchema, TitleSchema } from "../rules/conversation-rules";
import { createRouter } from "../http/create-router";
import { userDb } from "../db/request-session";
import { and, eq, isNull } from "drizzle-orm";
import { idIn } from "../db/queries";
import { type AttachmentRef, files } from "../db/schema";
import { attachmentRef } from "../files/file-store";
import type { TurnSubmission } from "../conversation/contract";
import { SSE_HEADERS } from "../http/sse";
import { conversationObject } from "../conversation/client/stub";
import { ApiError, invalid, unwrap } from "../http/errors";
import { conversationIdForKey, IdempotencyHeadersSchema, requestHash } from "../lib/idempotency";
import { checkMessageContent, MessageContentSchema } from "../rules/message-content";
import { signStreamTicket, STREAM_TICKET_TTL_SECONDS } from "../lib/tokens";
import { authenticated, requireAuthOrStreamTicket } from "../http/middleware";
import { attachListener, conversationOfMessage, submitTurn } from "../conversation/client/turns";
import { checkToolNames, type ToolSpec, toolFields, toolSpecOf } from "../rules/tool-rules";
import { listServerTools } from "../model/tools/mcp-client";
import { getConfig } from "../http/config";
import { AiResponseSchema, errorResponses, IdParamSchema, jsonBody, jsonResponse } from "../http/schemas";
import { SSE_DESCRIPTION, StreamFlagSchema, StreamQuerySchema, turnResponse, turnResponses, wantsEventStream } from "../conversation/client/turn-responses";

const MAX_ATTACHMENTS = 10;

const AttachmentIdsSchema = z
  .array(z.string().min(1).max(64))
  .max(MAX_ATTACHMENTS)
  .optional()
  .openapi({ description: `Ids of your files (POST /files/), at most ${MAX_ATTACHMENTS}: the model gets them with the message, and every later turn of the branch does too.` });

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
        max_output_tokens: MaxOutputTokensSchema.nullable().optional().openapi({ description: "The conversation's output allowance per reply (below the model's)." }),
        attachments: AttachmentIdsSchema,
        ...toolFields,
        stream: StreamFlagSchema,
        if_busy: IfBusySchema,
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
        max_output_tokens: MaxOutputTokensSchema.optional(),
        attachments: AttachmentIdsSchema,
        ...toolFields,
        stream: StreamFlagSchema,
        if_busy: IfBusySchema,
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
    body: { required: false, content: { "application/json": { schema: z.strictObject({ model_version: ModelVersionSchema.optional(), max_output_tokens: MaxOutputTokensSchema.optional(), ...toolFields, stream: StreamFlagSchema, if_busy: IfBusySchema }) } } },
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
    body: jsonBody(
      z.strictObject({ content: MessageContentSchema, max_output_tokens: MaxOutputTokensSchema.optional(), attachments: AttachmentIdsSchema, ...toolFields, stream: StreamFlagSchema, if_busy: IfBusySchema }),
    ),
  },
  responses: turnResponses,
});

/**
 * The files a send names, as the message will carry them. One D1 read, on the caller's shard,
 * and only for a send that names files: the rest never wait on it.
 */
async function attachmentsOf(c: Context<AppEnv>, ids: string[] | undefined): Promise<AttachmentRef[] | undefined> {
  if (!ids?.length) return undefined;
  const unique = [...new Set(ids)];
  const rows = await userDb(c)
    .select()
    .from(files)
    .where(and(eq(files.userId, c.get("userId")), isNull(files.deletedAt), idIn(files.id, unique)));
  const missing = unique.filter((id) => !rows.some((row) => row.id === id));
  if (missing.length) throw invalid({ field: "attachments", message: `No file of yours with id ${missing.join(", ")}.` });
  return unique.map((id) => attachmentRef(rows.find((row) => row.id === id)!));
}

type SendBody = { stream?: boolean; if_busy?: TurnSubmission["ifBusy"] };

/** The tools a turn's body asks for, with named tools checked to exist. */
async function toolsOf(c: Context<AppEnv>, body: Parameters<typeof toolSpecOf>[0]): Promise<ToolSpec> {
  const spec = toolSpecOf(body);
  const config = getConfig(c.env);
  await checkToolNames(spec, async () => (await listServerTools(config.mcpServers)).tools.map((tool) => tool.name));
  return spec;
}

/**
 * Hands the turn to the conversation's object and answers in the mode the client asked for. An
 * Idempotency-Key is bound to the route, `target` and the body (less `stream` and `if_busy`: a
 * retry may ask for another mode).
 */
async function submit(
  c: Context<AppEnv>,
  submission: Omit<TurnSubmission, "userId" | "idempotency" | "ifBusy" | "lease" | "budget">,
  target: string[],
  { stream, if_busy, ...body }: SendBody,
): Promise<Response> {
  const key = c.req.header("Idempotency-Key");
  const idempotency = key ? { key, requestHash: await requestHash([...target, body]) } : null;
  const mode = wantsEventStream(c, stream) ? "sse" : "json";
  return turnResponse(c, await submitTurn(c, { ...submission, idempotency, ifBusy: if_busy ?? "queue" }, mode));
}

export const turnRoutes = createRouter()
  .openapi(startConversation, async (c) => {
    const body = c.req.valid("json");
    const key = c.req.valid("header")["idempotency-key"];
    const id = key ? await conversationIdForKey(c.env, c.get("userId"), key) : undefined;
    const row = newConversationRow(c.env, c.get("userId"), body, id);
    const content = checkMessageContent(c.env, body.content);
    const ask = { kind: "send", content, replyTo: null, attachments: await attachmentsOf(c, body.attachments), tools: await toolsOf(c, body) } as const;
    return submit(c, { conversationId: row.id, create: { row, mayExist: false }, keyNamesConversation: id !== undefined, ask }, ["start"], body);
  })
  .openapi(addMessage, async (c) => {
    const { id } = c.req.valid("param");
    const body = c.req.valid("json");
    const content = checkMessageContent(c.env, body.content);
    return submit(c, { conversationId: id, ask: { kind: "send", content, replyTo: body.reply_to ?? null, maxOutputTokens: body.max_output_tokens, attachments: await attachmentsOf(c, body.attachments), tools: await toolsOf(c, body) } }, ["add", id], body);
  })
  .openapi(regenerateReply, async (c) => {
    const { id } = c.req.valid("param");
    // The body is optional: with no Content-Type it validates as {}.
    const body = c.req.valid("json");
    const model = body.model_version === undefined ? null : resolveModel(c.env, body.model_version);
    const conversationId = await conversationOfMessage(c.env, c.get("userId"), id);
    return submit(c, { conversationId, ask: { kind: "regenerate", messageId: id, model, maxOutputTokens: body.max_output_tokens, tools: await toolsOf(c, body) } }, ["regenerate", id], body);
  })
  .openapi(resendMessage, async (c) => {
    const { id } = c.req.valid("param");
    const body = c.req.valid("json");
    const content = checkMessageContent(c.env, body.content);
    const conversationId = await conversationOfMessage(c.env, c.get("userId"), id);
    return submit(c, { conversationId, ask: { kind: "resend", messageId: id, content, maxOutputTokens: body.max_output_tokens, attachments: await attachmentsOf(c, body.attachments), tools: await toolsOf(c, body) } }, ["resend", id], body);
  })
  .openapi(streamReply, async (c) => {
    const { id } = c.req.valid("param");
    const lastEventId = c.req.valid("header")["last-event-id"] ?? null;
    const stream = await attachListener(c.env, c.get("userId"), id, lastEventId);
    if (stream === null && lastEventId !== null) throw new ApiError("not_found", "No reply with that Last-Event-ID in this conversation.");
    // 204 also tells an EventSource to stop reconnecting.
    if (stream === null || stream === "finished") return c.body(null, 204);
    return c.body(stream, 200, SSE_HEADERS);
  })
  .openapi(streamTicket, async (c) => {
    const { id } = c.req.valid("param");
    unwrap(await conversationObject(c.env, id).conversation(c.get("userId"), id));
    return c.json({ ticket: await signStreamTicket(c.env, c.get("userId"), id), expires_in: STREAM_TICKET_TTL_SECONDS }, 201);
  })
  .openapi(cancelReply, async (c) => {
    const { id } = c.req.valid("param");
    const result = unwrap(await conversationObject(c.env, id).cancel(c.get("userId"), id));
    if (!result) throw new ApiError("conflict", "No reply is being generated in this conversation.");
    return c.json({ ai_response: result.ai_response }, 200);
  });
