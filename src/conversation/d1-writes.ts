import { getTableColumns, getTableName } from "drizzle-orm";
import type { SQLiteColumn, SQLiteTable } from "drizzle-orm/sqlite-core";
import type { Connection } from "../db/client";
import { type AiResponse, aiResponses, type Conversation, conversations, type Message, messages, type Summary, summaries } from "../db/schema";

/*
 * The outbox's writes, as SQL built once from the Drizzle schema: building them per batch with
 * the query builder cost a few ms of CPU per turn. Every one is idempotent.
 */

type Row = Record<string, unknown>;

/** `INSERT … ON CONFLICT (id) DO UPDATE SET <update>` (or `DO NOTHING`) with every column of `table`, and how to bind a row to it. */
function upsert(table: SQLiteTable, update: string[]) {
  const columns = Object.entries(getTableColumns(table)) as [string, SQLiteColumn][];
  const name = (key: string) => `"${columns.find(([k]) => k === key)![1].name}"`;
  const onConflict = update.length ? `DO UPDATE SET ${update.map((key) => `${name(key)} = excluded.${name(key)}`).join(", ")}` : "DO NOTHING";
  const query = `INSERT INTO "${getTableName(table)}" (${columns.map(([, column]) => `"${column.name}"`).join(", ")})
    VALUES (${columns.map(() => "?").join(", ")}) ON CONFLICT ("id") ${onConflict}`;
  // A row the object stored before a column existed lacks it: the column's own default applies.
  const valueOf = (row: Row, key: string, column: SQLiteColumn) => (row[key] === undefined && column.hasDefault && typeof column.default !== "object" ? column.default : row[key]);
  const values = (row: Row) =>
    columns.map(([key, column]) => {
      const value = valueOf(row, key, column);
      return value == null ? null : column.mapToDriverValue(value);
    });
  return (connection: Connection, row: Row) => connection.prepare(query).bind(...values(row));
}

const upsertConversation = upsert(conversations, ["title", "titleSearch", "status", "modelVersion", "systemPrompt", "maxOutputTokens", "currentLeafId", "leafVersion", "forkedFromConversationId", "forkedFromMessageId", "updatedAt"]);
// Text and deletion apart: the search index's trigger fires on any write of those columns, and a
// turn rewrites its user message only for its token count.
const upsertMessage = upsert(messages, ["tokens", "isEdited", "parts"]);
// Feedback is the owner's, written by its route: never overwritten here.
const upsertResponse = upsert(aiResponses, ["status", "errorCode", "errorMessage", "model", "promptTokens", "completionTokens", "totalTokens", "reasoningTokens", "usageEstimated", "finishReason", "maxOutputTokens", "provider", "attempts", "costUsd", "contextFirstOrder", "contextMessages", "contextSummaryThroughOrder", "firstTokenAt", "completedAt"]);
const insertSummary = upsert(summaries, []);

const MESSAGE_TEXT = `UPDATE "messages" SET "content" = ?, "is_deleted" = ? WHERE "id" = ? AND ("content" <> ? OR "is_deleted" <> ?)`;

/** Adds tokens and cost to a user's day, unless the row it pays for is already stored (finished): the first write that stores it counts. */
const usageUnless = (paidFor: string) => `INSERT INTO "usage_daily" ("user_id", "day", "tokens", "cost_usd") SELECT ?, ?, ?, ? WHERE NOT EXISTS (${paidFor})
  ON CONFLICT ("user_id", "day") DO UPDATE SET "tokens" = "tokens" + excluded."tokens", "cost_usd" = "cost_usd" + excluded."cost_usd"`;
// A turn that waits for tool outputs is charged once, with all its steps, when it ends.
const USAGE_FOR_RESPONSE = usageUnless(`SELECT 1 FROM "ai_responses" WHERE "id" = ? AND "status" IN ('Completed', 'Error')`);
const USAGE_FOR_SUMMARY = usageUnless(`SELECT 1 FROM "summaries" WHERE "id" = ?`);

export const conversationWrites = (connection: Connection, row: Conversation) => [upsertConversation(connection, row)];

export const messageWrites = (connection: Connection, row: Message) => {
  const deleted = row.isDeleted ? 1 : 0;
  return [upsertMessage(connection, row), connection.prepare(MESSAGE_TEXT).bind(row.content, deleted, row.id, row.content, deleted)];
};

/** A response, and with its first write as finished, what it cost its user. */
export const responseWrites = (connection: Connection, row: AiResponse) => [
  // A turn is charged once, with all its steps, when it ends: not while it waits for tool outputs.
  ...((row.status === "Completed" || row.status === "Error") && row.totalTokens
    ? [connection.prepare(USAGE_FOR_RESPONSE).bind(row.userId, row.completedAt!.slice(0, 10), row.totalTokens, row.costUsd ?? 0, row.id)]
    : []),
  upsertResponse(connection, row),
];

/** A summary, and with its first write, what writing it cost its user. */
export const summaryWrites = (connection: Connection, row: Summary, userId: string, spent: { tokens?: number; costUsd?: number }) => [
  ...(spent.tokens ? [connection.prepare(USAGE_FOR_SUMMARY).bind(userId, row.createdAt.slice(0, 10), spent.tokens, spent.costUsd ?? 0, row.id)] : []),
  insertSummary(connection, row),
];
