import { and, asc, eq, isNull, lte, max } from "drizzle-orm";
import type { Database } from "../db/client";
import { alias } from "drizzle-orm/sqlite-core";
import { aiResponses, type AiResponse, type Conversation, conversations, type Message, messages } from "../db/schema";
import { newId, nowIso } from "../lib/ids";
import type { ChatMessage } from "./model";

/** The D1 side of a turn: the rows it writes, each write one batch (one round trip, atomic). */
export interface TurnRows {
  conversation: Conversation;
  userMessage: Message;
  aiMessage: Message;
  aiResponse: AiResponse;
}

const TITLE_FROM_MESSAGE_LENGTH = 60;

function titleFromMessage(content: string): string {
  const text = content.trim().replace(/\s+/g, " ");
  return text.length > TITLE_FROM_MESSAGE_LENGTH ? `${text.slice(0, TITLE_FROM_MESSAGE_LENGTH).trimEnd()}…` : text;
}

/** The rows of a new turn: the user message at `userOrder`, its empty reply right after it, and the Generating response. */
export function newTurnRows(conversation: Conversation, content: string, replyTo: string | null, userOrder: number): TurnRows {
  const now = nowIso();
  const title = conversation.title ?? (userOrder === 1 ? titleFromMessage(content) : null);
  const message = { conversationId: conversation.id, userId: conversation.userId, timestamp: now, isEdited: false, isDeleted: false };
  const userMessage: Message = { ...message, id: newId(), sender: "user", content, order: userOrder, replyTo };
  const aiMessage: Message = { ...message, id: newId(), sender: "ai", content: "", order: userOrder + 1, replyTo: userMessage.id };
  return {
    conversation: { ...conversation, title, titleSearch: title?.toLowerCase() ?? null, updatedAt: now },
    userMessage,
    aiMessage,
    aiResponse: {
      id: newId(),
      userId: conversation.userId,
      messageId: userMessage.id,
      aiMessageId: aiMessage.id,
      responseContent: "",
      status: "Generating",
      errorCode: null,
      errorMessage: null,
      model: conversation.modelVersion,
      promptTokens: null,
      completionTokens: null,
      totalTokens: null,
      createdAt: now,
      firstTokenAt: null,
      completedAt: null,
    },
  };
}

export async function highestOrder(db: Database, conversationId: string): Promise<number> {
  const [row] = await db.select({ order: max(messages.order) }).from(messages).where(eq(messages.conversationId, conversationId));
  return row?.order ?? 0;
}

export type HistoryMessage = ChatMessage & { role: "user" | "assistant" };

/**
 * Commits the user message, the empty AI message and its Generating response together, and
 * with `readHistory` returns the history the model is to see, read in the same round trip.
 */
export async function acceptTurn(db: Database, rows: TurnRows, isNewConversation: boolean, readHistory: boolean): Promise<HistoryMessage[] | null> {
  const { conversation } = rows;
  const conversationWrite = isNewConversation
    ? db.insert(conversations).values(conversation)
    : db.update(conversations).set({ updatedAt: conversation.updatedAt }).where(eq(conversations.id, conversation.id));
  const titleWrite = db
    .update(conversations)
    .set({ title: conversation.title, titleSearch: conversation.titleSearch })
    .where(and(eq(conversations.id, conversation.id), isNull(conversations.title)));
  const writes = [
    conversationWrite,
    db.insert(messages).values([rows.userMessage, rows.aiMessage]),
    db.insert(aiResponses).values(rows.aiResponse),
    ...(!isNewConversation && rows.userMessage.order === 1 && conversation.title ? [titleWrite] : []),
  ] as const;
  if (!readHistory) {
    await db.batch(writes);
    return null;
  }
  // The history query runs first in the batch, before this turn's own rows exist.
  const [earlier] = await db.batch([historyQuery(db, conversation.id, rows.userMessage.order), ...writes]);
  return [...toHistory(earlier), { role: "user", content: rows.userMessage.content }];
}

/** Writes the reply text so far; the final write in `finishTurn` supersedes it. */
export async function checkpointTurn(db: Database, rows: TurnRows, text: string): Promise<void> {
  await db.batch([
    db.update(messages).set({ content: text }).where(eq(messages.id, rows.aiMessage.id)),
    db.update(aiResponses).set({ responseContent: text }).where(eq(aiResponses.id, rows.aiResponse.id)),
  ]);
}

export async function finishTurn(db: Database, rows: TurnRows): Promise<void> {
  const { aiResponse } = rows;
  await db.batch([
    db.update(messages).set({ content: rows.aiMessage.content }).where(eq(messages.id, rows.aiMessage.id)),
    db
      .update(aiResponses)
      .set({
        responseContent: aiResponse.responseContent,
        status: aiResponse.status,
        errorCode: aiResponse.errorCode,
        errorMessage: aiResponse.errorMessage,
        model: aiResponse.model,
        promptTokens: aiResponse.promptTokens,
        completionTokens: aiResponse.completionTokens,
        totalTokens: aiResponse.totalTokens,
        firstTokenAt: aiResponse.firstTokenAt,
        completedAt: aiResponse.completedAt,
      })
      .where(eq(aiResponses.id, aiResponse.id)),
    db.update(conversations).set({ updatedAt: rows.conversation.updatedAt }).where(eq(conversations.id, rows.conversation.id)),
  ]);
}

/** Marks a reply that was cut off by a restart; `text` is what had been streamed. */
export async function markInterrupted(db: Database, aiMessageId: string, aiResponseId: string, text: string, at: string): Promise<void> {
  await db.batch([
    db.update(messages).set({ content: text }).where(eq(messages.id, aiMessageId)),
    db
      .update(aiResponses)
      .set({ responseContent: text, status: "Error", errorCode: "interrupted", errorMessage: "interrupted", completedAt: at })
      .where(and(eq(aiResponses.id, aiResponseId), eq(aiResponses.status, "Generating"))),
  ]);
}

const historyQuery = (db: Database, conversationId: string, order: number) =>
  db
    .select({ sender: messages.sender, content: messages.content })
    .from(messages)
    .where(and(eq(messages.conversationId, conversationId), lte(messages.order, order), eq(messages.isDeleted, false)))
    .orderBy(asc(messages.order));

const toHistory = (rows: { sender: "user" | "ai"; content: string }[]): HistoryMessage[] =>
  rows.filter((row) => row.content.length > 0).map((row) => ({ role: row.sender === "user" ? "user" : "assistant", content: row.content }));

/** What the model is sent for the turn whose user message has `order`: non-deleted messages up to it. */
export async function loadHistory(db: Database, conversationId: string, order: number): Promise<HistoryMessage[]> {
  return toHistory(await historyQuery(db, conversationId, order));
}

const userMessages = alias(messages, "user_message");

/** A stored turn by its AI message, with everything its JSON result and SSE frames need. */
export async function loadTurn(db: Database, conversationId: string, aiMessageId: string): Promise<TurnRows | undefined> {
  const [row] = await db
    .select({ conversation: conversations, userMessage: userMessages, aiMessage: messages, aiResponse: aiResponses })
    .from(messages)
    .innerJoin(aiResponses, eq(aiResponses.aiMessageId, messages.id))
    .innerJoin(userMessages, eq(userMessages.id, aiResponses.messageId))
    .innerJoin(conversations, eq(conversations.id, messages.conversationId))
    .where(and(eq(messages.id, aiMessageId), eq(messages.conversationId, conversationId)));
  return row;
}
