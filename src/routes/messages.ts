import { createRoute, z } from "@hono/zod-openapi";
import { and, asc, count, desc, eq, gt, max, sql } from "drizzle-orm";
import { createRouter } from "../http/create-router";
import { noteBookmark, refuseWhileMoving, userDb } from "../db/request-session";
import { loadOwnedMessage, messageWithStatus, olderThan } from "../db/queries";
import { aiResponses, messages } from "../db/schema";
import { ApiError, invalid, type Refusal, unwrap } from "../http/errors";
import { CursorQuerySchema, keysetPageBody, pageBody, pageRows, readCursor } from "../lib/pagination";
import { mergeOverlay, overlayOf, rowsMissingFromD1, withLiveText } from "../conversation/client/overlay";
import type { Committed } from "../conversation/contract";
import { type ConversationStub, conversationObject } from "../conversation/client/stub";
import type { Message } from "../db/schema";
import type { Context } from "hono";
import type { AppEnv } from "../http/app-env";
import { authenticated } from "../http/middleware";
import { checkMessageContent, MessageContentSchema } from "../rules/message-content";
import { wellFormedText } from "../rules/text-rules";
import { BooleanQuerySchema, errorResponses, IdParamSchema, jsonBody, jsonResponse, MessagePageSchema, MessageSchema, PageQuerySchema, renderMessage } from "../http/schemas";

const secured = authenticated("messages");

const listMessages = createRoute({
  ...secured,
  method: "get",
  path: "/messages",
  summary: "All the caller's messages, newest first; in conversation order with ?conversation=",
  request: {
    query: PageQuerySchema.extend(CursorQuerySchema.shape).extend({ conversation: z.string().min(1).max(64).optional(), include_deleted: BooleanQuerySchema }),
  },
  responses: { 200: jsonResponse(MessagePageSchema, "A page of messages"), ...errorResponses(400, 401, 404) },
});

const markDeleted = createRoute({
  ...secured,
  method: "patch",
  path: "/messages/{id}/mark_deleted",
  summary: "Soft-delete a message (idempotent)",
  request: { params: IdParamSchema },
  responses: { 200: jsonResponse(MessageSchema, "The message"), ...errorResponses(401, 404) },
});

const editMessage = createRoute({
  ...secured,
  method: "patch",
  path: "/messages/{id}/edit_message",
  summary: "Edit the content of one of your own user messages",
  request: { params: IdParamSchema, body: jsonBody(z.strictObject({ content: MessageContentSchema })) },
  responses: { 200: jsonResponse(MessageSchema, "The edited message"), ...errorResponses(400, 401, 403, 404, 409, 413, 415) },
});

const FEEDBACK_COMMENT_MAX_LENGTH = 2_000;

const putFeedback = createRoute({
  ...secured,
  method: "put",
  path: "/messages/{id}/feedback",
  summary: "Rate one of your AI replies: up, down, or null to clear",
  request: {
    params: IdParamSchema,
    body: jsonBody(
      z.strictObject({
        rating: z.enum(["up", "down"]).nullable(),
        comment: wellFormedText().max(FEEDBACK_COMMENT_MAX_LENGTH).nullable().optional(),
      }),
    ),
  },
  responses: { 200: jsonResponse(MessageSchema, "The message with its feedback"), ...errorResponses(400, 401, 404, 415) },
});

/**
 * Edits of a message go through its conversation's object, which owns the conversation (a turn
 * reads its branch there); the answer comes once D1 has the change too.
 */
async function throughObject(c: Context<AppEnv>, message: Message, change: (object: ConversationStub) => Promise<Committed<Message> | Refusal>) {
  refuseWhileMoving(c);
  const committed = unwrap(await change(conversationObject(c.env, message.conversationId)));
  noteBookmark(c, committed.bookmark);
  return committed;
}

export const messageRoutes = createRouter()
  .openapi(listMessages, async (c) => {
    const { conversation, include_deleted, cursor, ...paging } = c.req.valid("query");
    const db = userDb(c);
    const userId = c.get("userId");
    const where = and(
      // With a conversation, its index is the one to use: `+` keeps SQLite off the per-user index,
      // which would read every message of the user to find one conversation's.
      conversation ? and(eq(sql`+${messages.userId}`, userId), eq(messages.conversationId, conversation)) : eq(messages.userId, userId),
      include_deleted ? undefined : eq(messages.isDeleted, false),
    );
    // In one conversation: by order, the key is [order]. Across them: newest first, [timestamp, id].
    const after = readCursor(cursor, z.union([z.tuple([z.number().int()]), z.tuple([z.string(), z.string()])]));
    if (after && (after.length === 1) !== (conversation !== undefined)) throw invalid({ field: "cursor", message: "This cursor is from another list." });
    const afterCursor = !after
      ? undefined
      : after.length === 1
        ? gt(messages.order, after[0])
        : olderThan(messages.timestamp, messages.id, after);
    const orderBy = conversation ? [asc(messages.order)] : [desc(messages.timestamp), desc(messages.id)];
    const wanted = pageRows(paging, after);
    const [[[total], found, [last]], overlay] = await Promise.all([
      db.batch([
        db.select({ n: count() }).from(messages).where(where),
        messageWithStatus(db)
          .where(and(where, afterCursor))
          .orderBy(...orderBy)
          .limit(wanted.limit)
          .offset(wanted.offset),
        db.select({ order: max(messages.order) }).from(messages).where(eq(messages.conversationId, conversation ?? "")),
      ]),
      conversation ? overlayOf(c.env, userId, conversation).catch((error) => (error instanceof ApiError ? null : Promise.reject(error))) : null,
    ]);
    // In one conversation, what its object has that D1 lacks comes after D1's last message.
    const missing = overlay ? rowsMissingFromD1(overlay, new Set(), include_deleted).filter((row) => row.message.order > (last?.order ?? 0)) : [];
    const d1Count = total?.n ?? 0;
    const skip = after ? 0 : Math.max(0, wanted.offset - d1Count);
    const fill = missing.filter((row) => !after || row.message.order > (after[0] as number)).slice(skip, skip + Math.max(0, wanted.limit - found.length));
    const rows = overlay ? [...mergeOverlay(found, overlay), ...fill] : await withLiveText(c.env, userId, found);
    const n = d1Count + missing.length;
    const render = (row: (typeof rows)[number]) => renderMessage(row.message, row);
    if (after !== undefined) {
      const keyOf = ({ message }: (typeof rows)[number]) => (conversation ? [message.order] : [message.timestamp, message.id]);
      return c.json(keysetPageBody(c.env, c.req.url, paging.page_size, n, rows, keyOf, render), 200);
    }
    return c.json(pageBody(c.env, c.req.url, paging, n, rows.map(render)), 200);
  })
  .openapi(markDeleted, async (c) => {
    const { message, ...extras } = await loadOwnedMessage(userDb(c), c.get("userId"), c.req.valid("param").id);
    const { value } = await throughObject(c, message, (object) => object.markDeleted(c.get("userId"), message.conversationId, message.id));
    return c.json(renderMessage(value, extras), 200);
  })
  .openapi(putFeedback, async (c) => {
    const { rating, comment } = c.req.valid("json");
    const db = userDb(c);
    const { message, ...extras } = await loadOwnedMessage(db, c.get("userId"), c.req.valid("param").id);
    if (message.sender !== "ai") throw new ApiError("bad_request", "Only AI replies take feedback.");
    const feedback = { feedbackRating: rating, feedbackComment: rating === null ? null : (comment ?? null) };
    await db.update(aiResponses).set(feedback).where(eq(aiResponses.aiMessageId, message.id));
    return c.json(renderMessage(message, { ...extras, reply: extras.reply && { ...extras.reply, ...feedback } }), 200);
  })
  .openapi(editMessage, async (c) => {
    const content = checkMessageContent(c.env, c.req.valid("json").content);
    const { message, ...extras } = await loadOwnedMessage(userDb(c), c.get("userId"), c.req.valid("param").id);
    const { value } = await throughObject(c, message, (object) => object.editMessage(c.get("userId"), message.conversationId, message.id, content));
    return c.json(renderMessage(value, extras), 200);
  });
