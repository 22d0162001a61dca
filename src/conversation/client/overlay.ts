import type { AiResponse, Message } from "../../db/schema";
import type { ConversationOverlay } from "../contract";
import type { MessageView } from "../conversation-store";
import { conversationObject } from "./stub";
import { unwrap } from "../../http/errors";
import type { ReplyContext } from "../../http/schemas";
import type { TreeNode } from "../../db/tree";

/*
 * A conversation's object is its commit point and D1 trails it by the outbox's lag. Listings of
 * one conversation merge what the object has that D1 may not (new turns, a Generating reply's
 * text) into what D1 returned, so they reflect every turn the object accepted.
 */

/** A listing row as `messageWithStatus` reads it from D1. */
export type ListedMessage = {
  message: Message;
  reply: (ReplyContext & Pick<AiResponse, "status">) | null;
  aiResponseStatus: AiResponse["status"] | null;
};

/** The caller's conversation as its object holds it, with its pending rows; a 404 if it is not the caller's. */
export async function overlayOf(env: Env, userId: string, conversationId: string): Promise<ConversationOverlay> {
  return unwrap(await conversationObject(env, conversationId).overlay(userId, conversationId));
}

/** A pending row as a listing row; the owner's feedback is D1's (the object never writes it). */
function asListed(pending: MessageView, fromD1: ListedMessage | undefined): ListedMessage {
  const { message, reply, aiResponseStatus } = pending;
  return {
    message,
    reply: reply && { ...reply, feedbackRating: fromD1?.reply?.feedbackRating ?? null, feedbackComment: fromD1?.reply?.feedbackComment ?? null },
    aiResponseStatus: message.sender === "user" ? aiResponseStatus : null,
  };
}

/** D1's rows with the object's newer copies in their place. */
export function mergeOverlay<R extends ListedMessage>(rows: R[], overlay: ConversationOverlay): R[] {
  const pending = new Map(overlay.messages.map((row) => [row.message.id, row]));
  return rows.map((row) => {
    const newer = pending.get(row.message.id);
    return newer ? { ...row, ...asListed(newer, row) } : row;
  });
}

/** The pending rows D1 does not have at all, in order: they come after every row D1 has. */
export function rowsMissingFromD1(overlay: ConversationOverlay, inD1: ReadonlySet<string>, includeDeleted: boolean): ListedMessage[] {
  return overlay.messages
    .filter((row) => !inD1.has(row.message.id) && (includeDeleted || !row.message.isDeleted))
    .sort((a, b) => a.message.order - b.message.order)
    .map((row) => asListed(row, undefined));
}

/** D1's tree skeleton with the object's pending messages in it. */
export function mergeTreeNodes(nodes: TreeNode[], overlay: ConversationOverlay): TreeNode[] {
  const merged = new Map(nodes.map((node) => [node.id, node]));
  for (const { message } of overlay.messages) merged.set(message.id, { id: message.id, parentId: message.parentId, order: message.order, isDeleted: message.isDeleted });
  return [...merged.values()].sort((a, b) => a.order - b.order);
}

/**
 * For lists across conversations (D1 only, trailing by the outbox's lag): the text so far of the
 * replies D1 lists as Generating, from their conversations' objects.
 */
export async function withLiveText<R extends ListedMessage>(env: Env, userId: string, rows: R[]): Promise<R[]> {
  const generating = new Set(rows.filter((row) => row.reply?.status === "Generating").map((row) => row.message.conversationId));
  if (generating.size === 0) return rows;
  const overlays = await Promise.all([...generating].map((id) => overlayOf(env, userId, id).catch(() => null)));
  return overlays.reduce((merged, overlay) => (overlay ? mergeOverlay(merged, overlay) : merged), rows);
}
