import { and, asc, desc, eq, isNull, lt, max, ne, sql } from "drizzle-orm";
import { alias } from "drizzle-orm/sqlite-core";
import { titleFromMessage } from "../conversation-rules";
import type { Database } from "../db/client";
import { aiResponses, type AiResponse, type Conversation, conversations, type Message, messages, type Summary, summaries } from "../db/schema";
import { newId, nowIso } from "../lib/ids";
import { addUsage } from "../usage";
import type { Branch, BranchSummary } from "./context-window";

/** What a turn adds to the conversation tree. */
export type TurnPlan =
  /** A new user message after the current leaf (add_message, start_conversation). */
  | { kind: "send"; content: string; replyTo: string | null }
  /** A new user message beside `original` (same parent), with its own reply: edit-and-resend. */
  | { kind: "resend"; original: Message; content: string }
  /** A new reply to the stored user message `userMessage`, beside its earlier replies. */
  | { kind: "regenerate"; userMessage: Message; model: string | null };

/** The D1 side of a turn: the rows it writes, each write one batch (one round trip, atomic). */
export interface TurnRows {
  conversation: Conversation;
  userMessage: Message;
  /** False when the user message already exists (regenerate). */
  isNewUserMessage: boolean;
  aiMessage: Message;
  aiResponse: AiResponse;
}

/** How many orders a turn of this plan reserves: the user message (unless it exists) and the reply. */
export const ordersNeeded = (plan: TurnPlan) => (plan.kind === "regenerate" ? 1 : 2);

/**
 * The rows of a new turn. `parentId` is the current leaf for a send; `firstOrder` the first of the
 * orders reserved for it; `leafVersion` the version under which its reply becomes the current leaf.
 */
export function newTurnRows(conversation: Conversation, plan: TurnPlan, parentId: string | null, firstOrder: number, leafVersion: number): TurnRows {
  const now = nowIso();
  const base = { conversationId: conversation.id, userId: conversation.userId, timestamp: now, isEdited: false, isDeleted: false };
  let userMessage: Message;
  if (plan.kind === "regenerate") {
    userMessage = plan.userMessage;
  } else {
    const replyTo = plan.kind === "send" ? plan.replyTo : plan.original.replyTo;
    const parent = plan.kind === "send" ? parentId : plan.original.parentId;
    userMessage = { ...base, id: newId(), sender: "user", content: plan.content, order: firstOrder, replyTo, parentId: parent, tokens: null };
  }
  const aiOrder = plan.kind === "regenerate" ? firstOrder : firstOrder + 1;
  const aiMessage: Message = { ...base, id: newId(), sender: "ai", content: "", order: aiOrder, replyTo: userMessage.id, parentId: userMessage.id, tokens: null };
  const title = conversation.title ?? (plan.kind === "send" && firstOrder === 1 ? titleFromMessage(plan.content) : null);
  return {
    conversation: { ...conversation, title, titleSearch: title?.toLowerCase() ?? null, updatedAt: now, currentLeafId: aiMessage.id, leafVersion },
    userMessage,
    isNewUserMessage: plan.kind !== "regenerate",
    aiMessage,
    aiResponse: {
      id: newId(),
      userId: conversation.userId,
      messageId: userMessage.id,
      aiMessageId: aiMessage.id,
      status: "Generating",
      errorCode: null,
      errorMessage: null,
      model: (plan.kind === "regenerate" && plan.model) || conversation.modelVersion,
      promptTokens: null,
      completionTokens: null,
      totalTokens: null,
      finishReason: null,
      contextFirstOrder: null,
      contextMessages: null,
      contextSummaryThroughOrder: null,
      feedbackRating: null,
      feedbackComment: null,
      createdAt: now,
      firstTokenAt: null,
      completedAt: null,
    },
  };
}

/** The highest order in use and the current leaf: where a conversation object starts from. */
export async function loadBranchState(db: Database, conversationId: string): Promise<{ highestOrder: number; currentLeafId: string | null; leafVersion: number }> {
  const [[highest], [conversation]] = await db.batch([
    db.select({ order: max(messages.order) }).from(messages).where(eq(messages.conversationId, conversationId)),
    db.select({ currentLeafId: conversations.currentLeafId, leafVersion: conversations.leafVersion }).from(conversations).where(eq(conversations.id, conversationId)),
  ]);
  return { highestOrder: highest?.order ?? 0, currentLeafId: conversation?.currentLeafId ?? null, leafVersion: conversation?.leafVersion ?? 0 };
}

/**
 * Moves the stored current leaf, unless a newer move already landed: the object bumps the version
 * on every move, and its D1 writes may arrive out of order.
 */
export const leafWrite = (db: Database, conversationId: string, leafId: string | null, version: number) =>
  db
    .update(conversations)
    .set({ currentLeafId: leafId, leafVersion: version })
    .where(and(eq(conversations.id, conversationId), lt(conversations.leafVersion, version)));

/**
 * Commits the new messages, the Generating response and the new current leaf together, and with
 * `readBranch` returns the branch the model is to see, read in the same round trip.
 */
export async function acceptTurn(db: Database, rows: TurnRows, isNewConversation: boolean, readBranch: boolean): Promise<Branch | null> {
  const { conversation } = rows;
  // A conversation created by its first turn: concurrent first turns (a chat client sending twice
  // before either landed) each carry the row, and whichever batch lands first creates it.
  const conversationWrite = isNewConversation
    ? db.insert(conversations).values(conversation).onConflictDoNothing()
    : db.update(conversations).set({ updatedAt: conversation.updatedAt }).where(eq(conversations.id, conversation.id));
  const titleWrite = db
    .update(conversations)
    .set({ title: conversation.title, titleSearch: conversation.titleSearch })
    .where(and(eq(conversations.id, conversation.id), isNull(conversations.title)));
  const writes = [
    conversationWrite,
    db.insert(messages).values(rows.isNewUserMessage ? [rows.userMessage, rows.aiMessage] : [rows.aiMessage]),
    db.insert(aiResponses).values(rows.aiResponse),
    leafWrite(db, conversation.id, conversation.currentLeafId, conversation.leafVersion),
    ...(rows.userMessage.order === 1 && conversation.title ? [titleWrite] : []),
  ] as const;
  if (!readBranch) {
    await db.batch(writes);
    return null;
  }
  // The branch is read last in the batch, so it includes this turn's own user message.
  const results = await db.batch([...writes, branchQuery(db, rows.userMessage.id), summaryQuery(db, conversation.id, rows.userMessage.id)]);
  return toBranch(results.at(-2) as BranchRow[], results.at(-1) as BranchSummary[]);
}

/** Stores the reply, its outcome and its token counts; `userMessageTokens` when its prompt share became known. */
export async function finishTurn(db: Database, rows: TurnRows, userMessageTokens: number | null): Promise<void> {
  const { aiResponse } = rows;
  await db.batch([
    db.update(messages).set({ content: rows.aiMessage.content, tokens: rows.aiMessage.tokens }).where(eq(messages.id, rows.aiMessage.id)),
    ...(userMessageTokens === null
      ? []
      : // Only while the message still holds the text that was counted: an edit clears the count.
        [db.update(messages).set({ tokens: userMessageTokens }).where(and(eq(messages.id, rows.userMessage.id), eq(messages.content, rows.userMessage.content)))]),
    db
      .update(aiResponses)
      .set({
        status: aiResponse.status,
        errorCode: aiResponse.errorCode,
        errorMessage: aiResponse.errorMessage,
        model: aiResponse.model,
        promptTokens: aiResponse.promptTokens,
        completionTokens: aiResponse.completionTokens,
        totalTokens: aiResponse.totalTokens,
        finishReason: aiResponse.finishReason,
        contextFirstOrder: aiResponse.contextFirstOrder,
        contextMessages: aiResponse.contextMessages,
        contextSummaryThroughOrder: aiResponse.contextSummaryThroughOrder,
        firstTokenAt: aiResponse.firstTokenAt,
        completedAt: aiResponse.completedAt,
      })
      .where(eq(aiResponses.id, aiResponse.id)),
    ...(aiResponse.totalTokens ? [addUsage(db, aiResponse.userId, aiResponse.totalTokens, aiResponse.completedAt ?? nowIso())] : []),
    db.update(conversations).set({ updatedAt: rows.conversation.updatedAt }).where(eq(conversations.id, rows.conversation.id)),
  ]);
}

/**
 * Marks a reply that was cut off by a restart, with `text`, what the journal holds of it (its
 * text reaches D1 only with the final batch). Only a reply still Generating changes: if the final
 * batch landed before the restart, what it stored stands.
 */
export async function markInterrupted(db: Database, aiMessageId: string, aiResponseId: string, text: string, at: string): Promise<void> {
  const stillGenerating = sql`EXISTS (SELECT 1 FROM ai_responses r WHERE r.id = ${aiResponseId} AND r.status = 'Generating')`;
  await db.batch([
    // First: its condition reads the response's status before the statement below changes it.
    db.update(messages).set({ content: text }).where(and(eq(messages.id, aiMessageId), stillGenerating)),
    db
      .update(aiResponses)
      .set({ status: "Error", errorCode: "interrupted", errorMessage: "interrupted", completedAt: at })
      .where(and(eq(aiResponses.id, aiResponseId), eq(aiResponses.status, "Generating"))),
  ]);
}

/** The ids of the branch that ends at `lastMessageId`: a recursive walk up the parent links. */
const branchIds = (lastMessageId: string) => sql`(
  WITH RECURSIVE path(id, parent_id) AS (
    SELECT id, parent_id FROM messages WHERE id = ${lastMessageId}
    UNION ALL
    SELECT m.id, m.parent_id FROM messages m JOIN path p ON m.id = p.parent_id
  )
  SELECT id FROM path)`;

// Subqueries in query builders, not raw SQL: Drizzle's D1 batch cannot run raw statements.
const branchQuery = (db: Database, lastMessageId: string) =>
  db
    .select({ id: messages.id, order: messages.order, sender: messages.sender, content: messages.content, tokens: messages.tokens })
    .from(messages)
    .where(and(sql`${messages.id} IN ${branchIds(lastMessageId)}`, eq(messages.isDeleted, false)))
    .orderBy(asc(messages.order));

/**
 * The newest summary of this branch before its last message (summaries of other branches end at
 * messages not on it; one through the last message itself was written for a later turn).
 */
const summaryQuery = (db: Database, conversationId: string, lastMessageId: string) =>
  db
    .select({ throughOrder: summaries.throughOrder, content: summaries.content, tokens: summaries.tokens })
    .from(summaries)
    .where(
      and(
        eq(summaries.conversationId, conversationId),
        ne(summaries.throughMessageId, lastMessageId),
        sql`${summaries.throughMessageId} IN ${branchIds(lastMessageId)}`,
      ),
    )
    .orderBy(desc(summaries.throughOrder))
    .limit(1);

type BranchRow = Awaited<ReturnType<typeof branchQuery>>[number];

const toBranch = (rows: BranchRow[], [summary]: BranchSummary[]): Branch => ({
  // An empty reply (a failed turn) is nothing the model needs to see.
  messages: rows
    .filter((row) => row.content.length > 0)
    .map((row) => ({ id: row.id, order: row.order, role: row.sender === "user" ? "user" : "assistant", content: row.content, tokens: row.tokens })),
  summary: summary ?? null,
});

/** What a turn is answering: the branch from the root to its user message, and the newest summary of it. */
export async function loadBranch(db: Database, conversationId: string, userMessageId: string): Promise<Branch> {
  const [rows, summary] = await db.batch([branchQuery(db, userMessageId), summaryQuery(db, conversationId, userMessageId)]);
  return toBranch(rows, summary);
}

/** Stores a rolling summary of the branch through `throughMessageId`, and what writing it cost its user. */
export async function saveSummary(db: Database, summary: Summary, userId: string, tokensSpent: number): Promise<void> {
  await db.batch([db.insert(summaries).values(summary), addUsage(db, userId, tokensSpent, summary.createdAt)]);
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
  return row ? { ...row, isNewUserMessage: true } : undefined;
}
