import { and, eq } from "drizzle-orm";
import { notFound } from "../errors";
import type { Database } from "./client";
import { aiResponses, conversations, messages } from "./schema";

export const ownedConversationQuery = (db: Database, userId: string, id: string) =>
  db
    .select()
    .from(conversations)
    .where(and(eq(conversations.id, id), eq(conversations.userId, userId)));

/** Another user's conversation is reported exactly like one that does not exist. */
export async function loadOwnedConversation(db: Database, userId: string, id: string) {
  const [conversation] = await ownedConversationQuery(db, userId, id);
  if (!conversation) throw notFound("Conversation");
  return conversation;
}

/** Message columns plus the status of the AI response answering it (user messages only). */
export const messageWithStatus = (db: Database) =>
  db
    .select({ message: messages, aiResponseStatus: aiResponses.status })
    .from(messages)
    .leftJoin(aiResponses, eq(aiResponses.messageId, messages.id));

export async function loadOwnedMessage(db: Database, userId: string, id: string) {
  const [row] = await messageWithStatus(db).where(and(eq(messages.id, id), eq(messages.userId, userId)));
  if (!row) throw notFound("Message");
  return row;
}
