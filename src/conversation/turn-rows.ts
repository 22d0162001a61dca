import { titleFromMessage } from "../rules/conversation-rules";
import type { AiResponse, AttachmentRef, Conversation, Message, MessagePart } from "../db/schema";
import { newId, nowIso } from "../lib/ids";
import type { ToolSpec } from "../rules/tool-rules";

/** What a turn adds to the conversation tree, the output allowance its reply gets, and the tools it may use. */
export type TurnPlan = TurnSteps & { maxOutputTokens: number; tools: ToolSpec };

/** What a turn adds to the conversation tree. */
export type TurnSteps =
  /** A new user message after the current leaf (add_message, start_conversation), with its files. */
  | { kind: "send"; content: string; replyTo: string | null; attachments: AttachmentRef[] | null }
  /** A new user message beside `original` (same parent), with its own reply: edit-and-resend. */
  | { kind: "resend"; original: Message; content: string; attachments: AttachmentRef[] | null }
  /** A new reply to the stored user message `userMessage`, beside its earlier replies. */
  | { kind: "regenerate"; userMessage: Message; model: string | null };

/** The rows a turn adds or changes, as the conversation object commits them. */
export interface TurnRows {
  conversation: Conversation;
  userMessage: Message;
  /** False when the user message already exists (regenerate). */
  isNewUserMessage: boolean;
  aiMessage: Message;
  aiResponse: AiResponse;
}

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
    userMessage = { ...base, id: newId(), sender: "user", content: plan.content, order: firstOrder, replyTo, parentId: parent, tokens: null, attachments: plan.attachments, parts: null };
  }
  const aiOrder = plan.kind === "regenerate" ? firstOrder : firstOrder + 1;
  const aiMessage: Message = { ...base, id: newId(), sender: "ai", content: "", order: aiOrder, replyTo: userMessage.id, parentId: userMessage.id, tokens: null, attachments: null, parts: null };
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
      reasoningTokens: null,
      usageEstimated: false,
      finishReason: null,
      maxOutputTokens: plan.maxOutputTokens,
      provider: null,
      attempts: null,
      costUsd: null,
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

/** The message with `content` and `parts`, stored only when they hold more than its text. */
export function withParts(message: Message, content: string, parts: readonly MessagePart[]): Message {
  return { ...message, content, parts: parts.some((part) => part.type !== "text") ? structuredClone(parts) as MessagePart[] : null };
}

