import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { AppEnv } from "../http/app-env";
import { and, asc, count, desc, eq, gt, sql } from "drizzle-orm";
import { MaxOutputTokensSchema, newConversationRow, SystemPromptSchema, TitleSchema, ModelVersionSchema } from "../rules/conversation-rules";
import { createRouter } from "../http/create-router";
import { noteBookmark, refuseWhileMoving, userDb } from "../db/request-session";
import { mergeOverlay, mergeTreeNodes, overlayOf, rowsMissingFromD1 } from "../conversation/client/overlay";
import { forkStatements } from "../db/fork";
import { idIn, messageWithStatus, olderThan, revokeShareOf } from "../db/queries";
import type { ConversationFields } from "../conversation/edits";
import { enforceRateLimit } from "../lib/rate-limit";
import { chargeStorage } from "../rules/storage";
import { aiResponses, type Conversation, conversations, conversationStatuses, messages } from "../db/schema";
import { ConversationTree, loadOwnedTree, treeQuery } from "../db/tree";
import { conversationObject } from "../conversation/client/stub";
import { ApiError, invalid, unwrap } from "../http/errors";
import { CursorQuerySchema, keysetPageBody, pageBody, pageOffset, pageRows, readCursor } from "../lib/pagination";
import { authenticated } from "../http/middleware";
import {
  BooleanQuerySchema,
  ConversationSchema,
  errorResponses,
  IdParamSchema,
  jsonBody,
  jsonResponse,
  MessagePageSchema,
  PageQuerySchema,
  pageSchema,
  renderConversation,
  renderMessage,
} from "../http/schemas";

const SEARCH_MAX_LENGTH = 100;

const ConversationPageSchema = pageSchema(ConversationSchema, "ConversationPage");
const secured = authenticated("conversations");

const listConversations = createRoute({
  ...secured,
  method: "get",
  path: "/conversations",
  summary: "The caller's conversations, newest activity first",
  request: {
    query: PageQuerySchema.extend(CursorQuerySchema.shape).extend({
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
        max_output_tokens: MaxOutputTokensSchema.nullable().optional(),
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
  max_output_tokens: MaxOutputTokensSchema.nullable(),
  current_leaf: z
    .string()
    .min(1)
    .max(64)
    .openapi({ description: "Switch branch: any message of this conversation becomes the end of the branch shown and continued." }),
};

const replaceConversation = createRoute({
  ...secured,
  method: "put",
  path: "/conversations/{id}",
  summary: "Replace title and status (system_prompt optional)",
  request: {
    params: IdParamSchema,
    body: jsonBody(
      z.strictObject({
        ...UpdateFields,
        system_prompt: UpdateFields.system_prompt.optional(),
        max_output_tokens: UpdateFields.max_output_tokens.optional(),
        current_leaf: UpdateFields.current_leaf.optional(),
      }),
    ),
  },
  responses: { 200: jsonResponse(ConversationSchema, "The updated conversation"), ...errorResponses(400, 401, 404, 415) },
});

const patchConversation = createRoute({
  ...secured,
  method: "patch",
  path: "/conversations/{id}",
  summary: "Update some of title, status, system_prompt, max_output_tokens, current_leaf",
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
  summary: "The current branch (root → current_leaf) in order, or with ?branch=all every message",
  request: {
    params: IdParamSchema,
    query: PageQuerySchema.extend({
      include_deleted: BooleanQuerySchema,
      branch: z.enum(["current", "all"]).default("current").openapi({ description: "`all`: every message of every branch, in order." }),
    }),
  },
  responses: { 200: jsonResponse(MessagePageSchema, "A page of messages, each with its `siblings`"), ...errorResponses(400, 401, 404) },
});

const forkConversation = createRoute({
  ...secured,
  method: "post",
  path: "/conversations/{id}/fork",
  summary: "A new conversation holding copies of the branch root → `message`",
  request: {
    params: IdParamSchema,
    body: jsonBody(z.strictObject({ message: z.string().min(1).max(64).openapi({ description: "Id of a message in this conversation." }) })),
  },
  responses: { 201: jsonResponse(ConversationSchema, "The new conversation, with `forked_from`"), ...errorResponses(400, 401, 404, 409, 415) },
});

/**
 * Every change of a conversation goes through its object, which owns it; the answer comes once
 * D1 has it too. Deleting it also revokes its share link, so restoring it does not bring the
 * link back.
 */
async function updateConversation(c: Context<AppEnv>, id: string, fields: ConversationFields) {
  refuseWhileMoving(c);
  const { value, bookmark } = unwrap(await conversationObject(c.env, id).update(c.get("userId"), id, fields));
  if (fields.status === "Deleted") await revokeShareOf(userDb(c), id);
  noteBookmark(c, bookmark);
  return renderConversation(value);
}

export const conversationRoutes = createRouter()
  .openapi(listConversations, async (c) => {
    const { search, status, cursor, ...paging } = c.req.valid("query");
    const after = readCursor(cursor, z.tuple([z.string(), z.string()]));
    const db = userDb(c);
    const term = search?.trim().toLowerCase();
    // instr() instead of LIKE: % and _ stay literal with no escaping, and D1's 50-byte LIKE
    // pattern limit does not apply.
    const where = and(
      eq(conversations.userId, c.get("userId")),
      eq(conversations.status, status),
      term ? gt(sql`instr(${conversations.titleSearch}, ${term})`, 0) : undefined,
    );
    const afterCursor = after ? olderThan(conversations.updatedAt, conversations.id, after) : undefined;
    const wanted = pageRows(paging, after);
    const [[total], rows] = await db.batch([
      db.select({ n: count() }).from(conversations).where(where),
      db
        .select()
        .from(conversations)
        .where(and(where, afterCursor))
        .orderBy(desc(conversations.updatedAt), desc(conversations.id))
        .limit(wanted.limit)
        .offset(wanted.offset),
    ]);
    const n = total?.n ?? 0;
    if (after !== undefined) return c.json(keysetPageBody(c.env, c.req.url, paging.page_size, n, rows, (row) => [row.updatedAt, row.id], renderConversation), 200);
    return c.json(pageBody(c.env, c.req.url, paging, n, rows.map(renderConversation)), 200);
  })
  .openapi(createConversation, async (c) => {
    refuseWhileMoving(c);
    const row = newConversationRow(c.env, c.get("userId"), c.req.valid("json"));
    const { value, bookmark } = await conversationObject(c.env, row.id).create(row);
    noteBookmark(c, bookmark);
    return c.json(renderConversation(value), 201);
  })
  .openapi(getConversation, async (c) => {
    const { id } = c.req.valid("param");
    const conversation = unwrap(await conversationObject(c.env, id).conversation(c.get("userId"), id));
    return c.json(renderConversation(conversation), 200);
  })
  .openapi(replaceConversation, async (c) =>
    c.json(await updateConversation(c, c.req.valid("param").id, c.req.valid("json")), 200),
  )
  .openapi(patchConversation, async (c) =>
    c.json(await updateConversation(c, c.req.valid("param").id, c.req.valid("json")), 200),
  )
  .openapi(deleteConversation, async (c) => {
    await updateConversation(c, c.req.valid("param").id, { status: "Deleted" });
    return c.body(null, 204);
  })
  .openapi(listConversationMessages, async (c) => {
    const { id } = c.req.valid("param");
    const { include_deleted, branch, ...paging } = c.req.valid("query");
    const db = userDb(c);
    const [overlay, nodes] = await Promise.all([overlayOf(c.env, c.get("userId"), id), treeQuery(db, id)]);
    const tree = new ConversationTree(mergeTreeNodes(nodes, overlay), include_deleted);
    const listed = branch === "all" ? tree.all() : tree.pathTo(overlay.conversation.currentLeafId);
    const pageIds = listed.slice(pageOffset(paging), pageOffset(paging) + paging.page_size).map((node) => node.id);
    const found = pageIds.length === 0 ? [] : await messageWithStatus(db).where(idIn(messages.id, pageIds)).orderBy(asc(messages.order));
    const missing = rowsMissingFromD1(overlay, new Set(found.map((row) => row.message.id)), true).filter((row) => pageIds.includes(row.message.id));
    const rows = [...mergeOverlay(found, overlay), ...missing].sort((a, b) => a.message.order - b.message.order);
    const results = rows.map((row) => renderMessage(row.message, { ...row, siblings: tree.siblings(row.message.id) }));
    return c.json(pageBody(c.env, c.req.url, paging, listed.length, results), 200);
  })
  .openapi(forkConversation, async (c) => {
    const { id } = c.req.valid("param");
    const { message: forkAt } = c.req.valid("json");
    const userId = c.get("userId");
    // A fork is free of tokens but costs its shard's D1 the copy: bounded per user, and by the storage quota.
    await enforceRateLimit(c.env.FORK_RATE_LIMITER, [`user:${userId}`], "forks");
    const db = userDb(c);
    // The fork copies from D1: first the object makes sure D1 has all of the conversation.
    unwrap(await conversationObject(c.env, id).synced(userId, id));
    const { conversation: source, tree } = await loadOwnedTree(db, userId, id, true);
    if (!tree.get(forkAt)) throw invalid({ field: "message", message: "Not a message of this conversation." });
    const pathIds = tree.pathTo(forkAt).map((node) => node.id);
    const [path, responses] = await db.batch([
      db
        .select({ id: messages.id, replyTo: messages.replyTo, bytes: sql<number>`length(CAST(${messages.content} AS BLOB))` })
        .from(messages)
        .where(idIn(messages.id, pathIds))
        .orderBy(asc(messages.order)),
      db
        .select({ id: aiResponses.id, aiMessageId: aiResponses.aiMessageId, messageId: aiResponses.messageId, status: aiResponses.status })
        .from(aiResponses)
        .where(idIn(aiResponses.aiMessageId, pathIds)),
    ]);
    if (responses.some((r) => r.status === "Generating")) throw new ApiError("conflict", "A reply on this branch is still being generated; fork once it has finished.");
    const fork: Conversation = {
      ...newConversationRow(c.env, userId, {}),
      title: source.title,
      titleSearch: source.titleSearch,
      modelVersion: source.modelVersion,
      systemPrompt: source.systemPrompt,
      maxOutputTokens: source.maxOutputTokens,
      forkedFromConversationId: source.id,
      forkedFromMessageId: forkAt,
    };
    await chargeStorage(c.env, userId, path.reduce((sum, message) => sum + message.bytes, 0));
    const [first, ...rest] = forkStatements(db, fork, path, responses);
    await db.batch([first!, ...rest]);
    return c.json(renderConversation(fork), 201);
  });
