import { eq } from "drizzle-orm";
import type { Database } from "../db/client";
import { aiResponses, type AiResponse, type Conversation, conversations, type Message, messages, type Summary, summaries } from "../db/schema";

export interface ConversationRows {
  conversation: Conversation;
  messages: Message[];
  responses: AiResponse[];
  summaries: Summary[];
}

/**
 * Everything of a conversation, in one round trip: what its object takes over the first time it
 * runs without holding it (a conversation from before the object held its conversations, or a fork).
 */
export async function loadConversation(db: Database, conversationId: string): Promise<ConversationRows | null> {
  const [[conversation], messageRows, responseRows, summaryRows] = await db.batch([
    db.select().from(conversations).where(eq(conversations.id, conversationId)),
    db.select().from(messages).where(eq(messages.conversationId, conversationId)),
    db
      .select({ response: aiResponses })
      .from(aiResponses)
      .innerJoin(messages, eq(messages.id, aiResponses.aiMessageId))
      .where(eq(messages.conversationId, conversationId)),
    db.select().from(summaries).where(eq(summaries.conversationId, conversationId)),
  ]);
  if (!conversation) return null;
  return { conversation, messages: messageRows, responses: responseRows.map((row) => row.response), summaries: summaryRows };
}
