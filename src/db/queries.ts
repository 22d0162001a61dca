import { and, desc, eq, sql } from "drizzle-orm";
import { alias, type SQLiteColumn } from "drizzle-orm/sqlite-core";
import { notFound } from "../errors";
import type { Database } from "./client";
import { type AiResponse, aiResponses, conversations, messages } from "./schema";

export const ownedConversationQuery = (db: Database, userId: string, id: string) =>
  db
    .select()
    .from(conversations)
    .where(and(eq(conversations.id, id), eq(conversations.userId, userId)));

/** `column IN (ids)` with the ids as one JSON parameter: D1 allows only 100 bound parameters per statement. */
export const idIn = (column: SQLiteColumn, ids: string[]) => sql`${column} IN (SELECT value FROM json_each(${JSON.stringify(ids)}))`;

/** Another user's conversation is reported exactly like one that does not exist. */
export async function loadOwnedConversation(db: Database, userId: string, id: string) {
  const [conversation] = await ownedConversationQuery(db, userId, id);
  if (!conversation) throw notFound("Conversation");
  return conversation;
}

/** Message columns plus, for a user message, the status of the newest AI response answering it. */
export const messageWithStatus = (db: Database) =>
  db
    .select({
      message: messages,
      aiResponseStatus: sql<AiResponse["status"] | null>`(${db
        .select({ status: aiResponses.status })
        .from(aiResponses)
        .where(eq(aiResponses.messageId, messages.id))
        .orderBy(desc(aiResponses.id))
        .limit(1)})`,
    })
    .from(messages);

export async function loadOwnedMessage(db: Database, userId: string, id: string) {
  const [row] = await messageWithStatus(db).where(and(eq(messages.id, id), eq(messages.userId, userId)));
  if (!row) throw notFound("Message");
  return row;
}

const parentMessages = alias(messages, "parent_message");

/** One of the user's messages with its conversation and its parent message (null for a first message). */
export async function loadOwnedMessageInContext(db: Database, userId: string, id: string) {
  const [row] = await db
    .select({ message: messages, conversation: conversations, parent: parentMessages })
    .from(messages)
    .innerJoin(conversations, eq(conversations.id, messages.conversationId))
    .leftJoin(parentMessages, eq(parentMessages.id, messages.parentId))
    .where(and(eq(messages.id, id), eq(messages.userId, userId)));
  if (!row) throw notFound("Message");
  return row;
}
