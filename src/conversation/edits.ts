import type { Conversation, Message } from "../db/schema";
import { ApiError, invalid } from "../http/errors";
import type { ModelEntry } from "../model/registry";
import { checkedAllowance, titleColumns } from "../rules/conversation-rules";
import type { ConversationStore } from "./conversation-store";

/* The changes of a conversation other than turns, as its object applies them: each returns the new row or says why not. */

export type ConversationFields = Partial<{
  title: string | null;
  status: Conversation["status"];
  system_prompt: string | null;
  max_output_tokens: number | null;
  current_leaf: string;
}>;

/** Renamed, deleted or restored, with another system prompt or output allowance (of its `model`), or switched to the branch ending at `current_leaf`. */
export function updatedConversation(store: ConversationStore, conversation: Conversation, fields: ConversationFields, model: ModelEntry, now: string): Conversation {
  const leaf = fields.current_leaf;
  if (leaf !== undefined && !store.message(leaf)) throw invalid({ field: "current_leaf", message: "Not a message of this conversation." });
  return {
    ...conversation,
    ...titleColumns(fields.title),
    ...(fields.status === undefined ? {} : { status: fields.status }),
    ...(fields.system_prompt === undefined ? {} : { systemPrompt: fields.system_prompt || null }),
    ...(fields.max_output_tokens === undefined ? {} : { maxOutputTokens: fields.max_output_tokens === null ? null : checkedAllowance(model, fields.max_output_tokens) }),
    ...(leaf === undefined ? {} : { currentLeafId: leaf, leafVersion: conversation.leafVersion + 1 }),
    updatedAt: now,
  };
}

/** One of the owner's user messages with new text; later turns see it. */
export function editedMessage(message: Message, content: string): Message {
  if (message.sender !== "user") throw new ApiError("forbidden", "Only your own user messages can be edited.");
  if (message.isDeleted) throw new ApiError("conflict", "A deleted message cannot be edited.");
  // The provider's count was of the old text.
  return { ...message, content, isEdited: true, tokens: null };
}
