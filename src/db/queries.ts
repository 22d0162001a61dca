import { and, eq, gt, isNull, lt, or, sql } from "drizzle-orm";
import { alias, type SQLiteColumn } from "drizzle-orm/sqlite-core";
import { notFound } from "../http/errors";
import { nowIso } from "../lib/ids";
import type { Database } from "./client";
import { type AiResponse, aiResponses, conversations, messages, shares } from "./schema";

export const ownedConversationQuery = (db: Database, userId: string, id: string) =>
  db
    .select()
    .from(conversations)
    .where(and(eq(conversations.id, id), eq(conversations.userId, userId)));

/** `column IN (ids)` with the ids as one JSON parameter: D1 allows only 100 bound parameters per statement. */
export const idIn = (column: SQLiteColumn, ids: string[]) => sql`${column} IN (SELECT value FROM json_each(${JSON.stringify(ids)}))`;

/** Rows after `[value, id]` in a newest-first list sorted by `column`, then `idColumn` (keyset paging). */
export const olderThan = (column: SQLiteColumn, idColumn: SQLiteColumn, [value, id]: [string, string]) =>
  or(lt(column, value), and(eq(column, value), lt(idColumn, id)));

/** The same for an oldest-first list. */
export const newerThan = (column: SQLiteColumn, idColumn: SQLiteColumn, [value, id]: [string, string]) =>
  or(gt(column, value), and(eq(column, value), gt(idColumn, id)));

/** Another user's conversation is reported exactly like one that does not exist. */
export async function loadOwnedConversation(db: Database, userId: string, id: string) {
  const [conversation] = await ownedConversationQuery(db, userId, id);
  if (!conversation) throw notFound("Conversation");
  return conversation;
}

const replyResponses = alias(aiResponses, "reply_response");

/**
 * Message columns plus, for a user message, the status of the newest AI response answering it,
 * and for an AI message the response it carries (joined by `replyResponseJoin`).
 */
export const messageStatusColumns = {
  message: messages,
  // Only columns whose names no other selected column has: D1 batches return rows keyed by
  // column name, so a second `id` would overwrite the message's.
  reply: {
    status: replyResponses.status,
    finishReason: replyResponses.finishReason,
    contextFirstOrder: replyResponses.contextFirstOrder,
    contextMessages: replyResponses.contextMessages,
    contextSummaryThroughOrder: replyResponses.contextSummaryThroughOrder,
    promptTokens: replyResponses.promptTokens,
    feedbackRating: replyResponses.feedbackRating,
    feedbackComment: replyResponses.feedbackComment,
    provider: replyResponses.provider,
    costUsd: replyResponses.costUsd,
  },
  aiResponseStatus: sql<AiResponse["status"] | null>`(
    SELECT r.status FROM ai_responses r WHERE r.message_id = ${messages.id} ORDER BY r.id DESC LIMIT 1)`,
};

/** The left join `messageStatusColumns` reads the AI message's own response from. */
export const replyResponseJoin = [replyResponses, eq(replyResponses.aiMessageId, messages.id)] as const;

export const messageWithStatus = (db: Database) =>
  db
    .select(messageStatusColumns)
    .from(messages)
    .leftJoin(...replyResponseJoin);

export async function loadOwnedMessage(db: Database, userId: string, id: string) {
  const [row] = await messageWithStatus(db).where(and(eq(messages.id, id), eq(messages.userId, userId)));
  if (!row) throw notFound("Message");
  return row;
}

/** Revokes the conversation's share link, if it has one: at once, since reads of a link go to the primary. */
export const revokeShareOf = (db: Database, conversationId: string) =>
  db.update(shares).set({ revokedAt: nowIso() }).where(and(eq(shares.conversationId, conversationId), isNull(shares.revokedAt)));
