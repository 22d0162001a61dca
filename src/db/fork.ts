import { sql } from "drizzle-orm";
import type { BatchItem } from "drizzle-orm/batch";
import type { Database } from "./client";
import { aiResponses, type Conversation, conversations, messages } from "./schema";
import { newId } from "../lib/ids";

// Mapping entries per statement: the mapping is one bound JSON parameter, so D1's 100-parameter
// limit does not apply, and content is copied inside D1 without crossing the wire.
const CHUNK = 500;

interface CopiedMessage {
  old: string;
  id: string;
  order: number;
  parent: string | null;
  reply_to: string | null;
}

interface CopiedResponse {
  old: string;
  id: string;
  message: string;
  ai_message: string;
}

const chunks = <T>(items: T[]) => Array.from({ length: Math.ceil(items.length / CHUNK) }, (_, i) => items.slice(i * CHUNK, (i + 1) * CHUNK));

/**
 * The statements that create `fork` holding copies of `path` (root first, each the parent of the
 * next) and of their AI responses: new ids, orders from 1, parents, reply_to links and responses
 * pointed at the copies; `fork.currentLeafId` becomes the copy of the last message. One batch, so
 * a fork is created whole or not at all.
 */
export function forkStatements(
  db: Database,
  fork: Conversation,
  path: { id: string; replyTo: string | null }[],
  responses: { id: string; aiMessageId: string; messageId: string }[],
): BatchItem<"sqlite">[] {
  const newIds = new Map(path.map((message) => [message.id, newId()]));
  const copied: CopiedMessage[] = path.map((message, i) => ({
    old: message.id,
    id: newIds.get(message.id)!,
    order: i + 1,
    parent: i === 0 ? null : newIds.get(path[i - 1]!.id)!,
    reply_to: (message.replyTo && newIds.get(message.replyTo)) ?? null,
  }));
  const copiedResponses: CopiedResponse[] = responses
    .filter((r) => newIds.has(r.messageId))
    .map((r) => ({ old: r.id, id: newId(), message: newIds.get(r.messageId)!, ai_message: newIds.get(r.aiMessageId)! }));
  fork.currentLeafId = copied.at(-1)?.id ?? null;
  return [
    db.insert(conversations).values(fork),
    ...chunks(copied).map(
      // Columns in the table's order: Drizzle's INSERT … SELECT names them all.
      (chunk) => db.insert(messages).select(sql`
        SELECT json_extract(j.value, '$.id'), ${fork.id}, m.user_id, m.sender, m.content, m.timestamp, json_extract(j.value, '$.order'),
               m.is_edited, m.is_deleted, json_extract(j.value, '$.reply_to'), json_extract(j.value, '$.parent'), m.tokens, m.attachments, m.parts
        FROM json_each(${JSON.stringify(chunk)}) j JOIN messages m ON m.id = json_extract(j.value, '$.old')
        ORDER BY j.key`),
    ),
    // A copy spent nothing: usage and cost stay with the original, so sums over replies count them once.
    ...chunks(copiedResponses).map(
      (chunk) => db.insert(aiResponses).select(sql`
        SELECT json_extract(j.value, '$.id'), r.user_id, json_extract(j.value, '$.message'), json_extract(j.value, '$.ai_message'),
               r.status, r.error_code, r.error_message, r.model, NULL, NULL,
               NULL, NULL, 0, r.finish_reason, r.max_output_tokens, r.provider, r.attempts, NULL, r.context_first_order, r.context_messages, r.context_summary_through_order,
               r.feedback_rating, r.feedback_comment, r.created_at, r.first_token_at, r.completed_at
        FROM json_each(${JSON.stringify(chunk)}) j JOIN ai_responses r ON r.id = json_extract(j.value, '$.old')`),
    ),
  ];
}
