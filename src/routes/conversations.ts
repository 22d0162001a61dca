import { createRoute, z } from "@hono/zod-openapi";
import { and, asc, count, desc, eq, gt, sql } from "drizzle-orm";
import { getConfig } from "../config";
import { createRouter } from "../create-router";
import { getDb } from "../db/client";
import { loadOwnedConversation, messageWithStatus } from "../db/queries";
import { conversations, conversationStatuses, messages } from "../db/schema";
import { invalid, notFound } from "../errors";
import { newId, nowIso } from "../lib/ids";
import { PAGE_SIZE, pageBody, pageOffset } from "../lib/pagination";
import { authenticated } from "../middleware";
import {
  ConversationSchema,
  errorResponses,
  IdParamSchema,
  jsonBody,
  jsonResponse,
  MessageSchema,
  PageQuerySchema,
  pageSchema,
  renderConversation,
  renderMessage,
} from "../schemas";

const TITLE_MAX_LENGTH = 200;
const SYSTEM_PROMPT_MAX_LENGTH = 8_000;
const SEARCH_MAX_LENGTH = 100;

export const TitleSchema = z.string().trim().max(TITLE_MAX_LENGTH).nullable();
export const ModelVersionSchema = z.string().trim().min(1).max(100).openapi({ example: "gpt-4" });
export const SystemPromptSchema = z.string().max(SYSTEM_PROMPT_MAX_LENGTH).nullable();

const booleanQuery = z
  .enum(["true", "false", "1", "0"])
  .optional()
  .transform((v) => v === "true" || v === "1");

/** `model_version` must be one of ALLOWED_MODELS; absent means DEFAULT_MODEL. */
export function resolveModel(env: Env, requested: string | undefined): string {
  const { allowedModels, defaultModel } = getConfig(env);
  if (requested === undefined) return defaultModel;
  if (!allowedModels.includes(requested)) {
    throw invalid({ field: "model_version", message: `Must be one of: ${allowedModels.join(", ")}.` });
  }
  return requested;
}

/** Title columns: the display title and its case-folded twin used by search. */
export const titleColumns = (title: string | null | undefined) =>
  title === undefined ? {} : { title: title || null, titleSearch: title ? title.toLowerCase() : null };

const ConversationPageSchema = pageSchema(ConversationSchema, "ConversationPage");
export const MessagePageSchema = pageSchema(MessageSchema, "MessagePage");
const secured = authenticated("conversations");

const listConversations = createRoute({
  ...secured,
  method: "get",
  path: "/conversations",
  summary: "The caller's conversations, newest activity first",
  request: {
    query: PageQuerySchema.extend({
      search: z.string().max(SEARCH_MAX_LENGTH).optional().openapi({ description: "Case-insensitive substring of the title; % and _ are literal." }),
      status: z.enum(conversationStatuses).default("Active"),
    }),
  },
  responses: { 200: jsonResponse(ConversationPageSchema, "A page of conversations"), ...errorResponses(400, 401, 404) },
});

const createConversation = createRoute({
  ...secured,
  method: "post",
  path: "/conversations",
  summary: "Create an empty conversation",
  request: {
    body: jsonBody(
      z.strictObject({
        title: TitleSchema.optional(),
        model_version: ModelVersionSchema.optional(),
        system_prompt: SystemPromptSchema.optional(),
      }),
    ),
  },
  responses: { 201: jsonResponse(ConversationSchema, "The new conversation"), ...errorResponses(400, 401, 413, 415) },
});

const getConversation = createRoute({
  ...secured,
  method: "get",
  path: "/conversations/{id}",
  summary: "One conversation",
  request: { params: IdParamSchema },
  responses: { 200: jsonResponse(ConversationSchema, "The conversation"), ...errorResponses(401, 404) },
});

const UpdateFields = {
  title: TitleSchema,
  status: z.enum(conversationStatuses),
  system_prompt: SystemPromptSchema,
};

const replaceConversation = createRoute({
  ...secured,
  method: "put",
  path: "/conversations/{id}",
  summary: "Replace title and status (system_prompt optional)",
  request: {
    params: IdParamSchema,
    body: jsonBody(z.strictObject({ ...UpdateFields, system_prompt: UpdateFields.system_prompt.optional() })),
  },
  responses: { 200: jsonResponse(ConversationSchema, "The updated conversation"), ...errorResponses(400, 401, 404, 415) },
});

const patchConversation = createRoute({
  ...secured,
  method: "patch",
  path: "/conversations/{id}",
  summary: "Update some of title, status, system_prompt",
  request: { params: IdParamSchema, body: jsonBody(z.strictObject(UpdateFields).partial()) },
  responses: { 200: jsonResponse(ConversationSchema, "The updated conversation"), ...errorResponses(400, 401, 404, 415) },
});

const deleteConversation = createRoute({
  ...secured,
  method: "delete",
  path: "/conversations/{id}",
  summary: "Soft-delete: the status becomes Deleted",
  request: { params: IdParamSchema },
  responses: { 204: { description: "Deleted" }, ...errorResponses(401, 404) },
});

const listConversationMessages = createRoute({
  ...secured,
  method: "get",
  path: "/conversations/{id}/messages",
  summary: "A conversation's messages in order",
  request: { params: IdParamSchema, query: PageQuerySchema.extend({ include_deleted: booleanQuery }) },
  responses: { 200: jsonResponse(MessagePageSchema, "A page of messages"), ...errorResponses(400, 401, 404) },
});

async function updateConversation(
  env: Env,
  userId: string,
  id: string,
  fields: Partial<{ title: string | null; status: (typeof conversationStatuses)[number]; system_prompt: string | null }>,
) {
  const db = getDb(env);
  const [updated] = await db
    .update(conversations)
    .set({
      ...titleColumns(fields.title),
      ...(fields.status === undefined ? {} : { status: fields.status }),
      ...(fields.system_prompt === undefined ? {} : { systemPrompt: fields.system_prompt || null }),
      updatedAt: nowIso(),
    })
    .where(and(eq(conversations.id, id), eq(conversations.userId, userId)))
    .returning();
  if (!updated) throw notFound("Conversation");
  return renderConversation(updated);
}

export const conversationRoutes = createRouter()
  .openapi(listConversations, async (c) => {
    const { page, search, status } = c.req.valid("query");
    const db = getDb(c.env);
    const term = search?.trim().toLowerCase();
    // instr() instead of LIKE: % and _ stay literal with no escaping, and D1's 50-byte LIKE
    // pattern limit does not apply.
    const where = and(
      eq(conversations.userId, c.get("userId")),
      eq(conversations.status, status),
      term ? gt(sql`instr(${conversations.titleSearch}, ${term})`, 0) : undefined,
    );
    const [[total], rows] = await db.batch([
      db.select({ n: count() }).from(conversations).where(where),
      db
        .select()
        .from(conversations)
        .where(where)
        .orderBy(desc(conversations.updatedAt), desc(conversations.id))
        .limit(PAGE_SIZE)
        .offset(pageOffset(page)),
    ]);
    return c.json(pageBody(c.req.url, page, total?.n ?? 0, rows.map(renderConversation)), 200);
  })
  .openapi(createConversation, async (c) => {
    const body = c.req.valid("json");
    const now = nowIso();
    const [conversation] = await getDb(c.env)
      .insert(conversations)
      .values({
        id: newId(),
        userId: c.get("userId"),
        ...titleColumns(body.title),
        modelVersion: resolveModel(c.env, body.model_version),
        systemPrompt: body.system_prompt || null,
        createdAt: now,
        updatedAt: now,
      })
      .returning();
    return c.json(renderConversation(conversation!), 201);
  })
  .openapi(getConversation, async (c) => {
    const conversation = await loadOwnedConversation(getDb(c.env), c.get("userId"), c.req.valid("param").id);
    return c.json(renderConversation(conversation), 200);
  })
  .openapi(replaceConversation, async (c) =>
    c.json(await updateConversation(c.env, c.get("userId"), c.req.valid("param").id, c.req.valid("json")), 200),
  )
  .openapi(patchConversation, async (c) =>
    c.json(await updateConversation(c.env, c.get("userId"), c.req.valid("param").id, c.req.valid("json")), 200),
  )
  .openapi(deleteConversation, async (c) => {
    await updateConversation(c.env, c.get("userId"), c.req.valid("param").id, { status: "Deleted" });
    return c.body(null, 204);
  })
  .openapi(listConversationMessages, async (c) => {
    const { id } = c.req.valid("param");
    const { page, include_deleted } = c.req.valid("query");
    const db = getDb(c.env);
    const where = and(
      eq(messages.conversationId, id),
      eq(messages.userId, c.get("userId")),
      include_deleted ? undefined : eq(messages.isDeleted, false),
    );
    const [owned, [total], rows] = await db.batch([
      db.select({ id: conversations.id }).from(conversations).where(and(eq(conversations.id, id), eq(conversations.userId, c.get("userId")))),
      db.select({ n: count() }).from(messages).where(where),
      messageWithStatus(db).where(where).orderBy(asc(messages.order)).limit(PAGE_SIZE).offset(pageOffset(page)),
    ]);
    if (owned.length === 0) throw notFound("Conversation");
    const results = rows.map((row) => renderMessage(row.message, row.aiResponseStatus));
    return c.json(pageBody(c.req.url, page, total?.n ?? 0, results), 200);
  });
