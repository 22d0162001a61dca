import { sql } from "drizzle-orm";
import {
  type AnySQLiteColumn,
  index,
  integer,
  primaryKey,
  real,
  sqliteTable,
  text,
  uniqueIndex,
} from "drizzle-orm/sqlite-core";

/** A file a user message carries: what the model and every listing need of it, without a join. */
export interface AttachmentRef {
  id: string;
  filename: string;
  mediaType: string;
  size: number;
  sha256: string;
  width: number | null;
  height: number | null;
  /** The file was deleted since: the message keeps its name, the model is told it is gone. */
  deleted?: boolean;
  /** A PDF: the size of its text in UTF-8 (stored beside its bytes); null when none could be read. */
  textBytes?: number | null;
}

/** Where a tool call stands: running (a server tool), waiting for an approval or the client's output, or answered. */
export const toolCallStatuses = ["running", "awaiting_approval", "awaiting_output", "completed", "error", "denied"] as const;
export type ToolCallStatus = (typeof toolCallStatuses)[number];

/**
 * A piece of an AI message, in the order it was produced; `step` is the model call that produced
 * it. A tool call carries its result once it has one.
 */
export type MessagePart =
  | { type: "text"; step: number; text: string }
  | { type: "reasoning"; step: number; text: string }
  | {
      type: "tool_call";
      step: number;
      id: string;
      name: string;
      arguments: string;
      executor: "server" | "client";
      status: ToolCallStatus;
      output?: string;
      error?: string;
    };

/** One provider tried for a reply: how it went ("ok", "http_<status>", "timeout", "connection_error"), and how long it took to answer or fail. */
export interface Attempt {
  provider: string;
  outcome: string;
  ms: number;
}

const timestampColumn = (name: string) =>
  text(name)
    .notNull()
    .default(sql`(strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))`);

export const users = sqliteTable("users", {
  id: text().primaryKey(),
  // Stored trimmed and lower-cased, so the unique index compares case-insensitively.
  email: text().notNull().unique(),
  passwordHash: text("password_hash").notNull(),
  name: text().notNull().default(""),
  isActive: integer("is_active", { mode: "boolean" }).notNull().default(true),
  dateJoined: timestampColumn("date_joined"),
});

export const conversationStatuses = ["Active", "Deleted"] as const;

export const conversations = sqliteTable(
  "conversations",
  {
    id: text().primaryKey(),
    // The owner. Users live in the directory database, so this is no foreign key.
    userId: text("user_id").notNull(),
    title: text(),
    // JavaScript-lowercased title: SQLite's lower() and LIKE fold ASCII only.
    titleSearch: text("title_search"),
    status: text({ enum: conversationStatuses }).notNull().default("Active"),
    modelVersion: text("model_version").notNull(),
    systemPrompt: text("system_prompt"),
    /** An output allowance below the model's for every reply of the conversation; null: the model's. */
    maxOutputTokens: integer("max_output_tokens"),
    /** The last message of the branch shown and continued by default; null before the first message. */
    currentLeafId: text("current_leaf_id"),
    /**
     * Bumped by the conversation object on every change of the current leaf. Its D1 writes are
     * conditional on a lower version, so of two writes that land out of order the newer wins.
     */
    leafVersion: integer("leaf_version").notNull().default(0),
    forkedFromConversationId: text("forked_from_conversation_id"),
    forkedFromMessageId: text("forked_from_message_id"),
    createdAt: timestampColumn("created_at"),
    updatedAt: timestampColumn("updated_at"),
  },
  (t) => [
    index("conversations_user_status_updated").on(t.userId, t.status, t.updatedAt, t.id),
    // The account export pages through a user's conversations oldest first.
    index("conversations_user_created").on(t.userId, t.createdAt, t.id),
  ],
);

export const senders = ["user", "ai"] as const;

export const messages = sqliteTable(
  "messages",
  {
    id: text().primaryKey(),
    conversationId: text("conversation_id")
      .notNull()
      .references(() => conversations.id),
    // The conversation's owner, copied here so listing and ownership checks need no join.
    userId: text("user_id").notNull(),
    sender: text({ enum: senders }).notNull(),
    content: text().notNull(),
    timestamp: timestampColumn("timestamp"),
    order: integer().notNull(),
    isEdited: integer("is_edited", { mode: "boolean" }).notNull().default(false),
    isDeleted: integer("is_deleted", { mode: "boolean" }).notNull().default(false),
    replyTo: text("reply_to").references((): AnySQLiteColumn => messages.id),
    /** The message before this one on its branch; null for a first message. */
    parentId: text("parent_id").references((): AnySQLiteColumn => messages.id),
    /**
     * Its size in the model's tokens, from the provider's usage: a reply's completion tokens, a
     * user message's share of its turn's prompt tokens. Null until counted, or after an edit.
     */
    tokens: integer(),
    /** A user message's files, as they were when it was sent (`attachments` of add_message). */
    attachments: text({ mode: "json" }).$type<AttachmentRef[]>(),
    /** An AI message's parts when it has more than text (reasoning, tool calls); null: its content is its one text part. */
    parts: text({ mode: "json" }).$type<MessagePart[]>(),
  },
  (t) => [
    uniqueIndex("messages_conversation_order").on(t.conversationId, t.order),
    // The tree skeleton of a conversation (id, parent, order, deleted) read from the index alone.
    index("messages_conversation_tree").on(t.conversationId, t.order, t.parentId, t.isDeleted, t.id),
    // The user's messages newest first; with is_deleted, counting the visible ones reads the index alone.
    index("messages_user_timestamp").on(t.userId, t.timestamp, t.id, t.isDeleted),
  ],
);

/** RequiresAction: the turn waits for tool outputs or approvals (POST /messages/{id}/tool_outputs/). */
export const aiResponseStatuses = ["Generating", "RequiresAction", "Completed", "Error"] as const;

export const aiResponses = sqliteTable(
  "ai_responses",
  {
    id: text().primaryKey(),
    // The conversation's owner: counting a user's Generating responses needs no join.
    userId: text("user_id").notNull(),
    // The user message this response answers; regenerated replies share it.
    messageId: text("message_id")
      .notNull()
      .references(() => messages.id),
    // The AI message that carries the reply text.
    aiMessageId: text("ai_message_id")
      .notNull()
      .unique()
      .references(() => messages.id),
    status: text({ enum: aiResponseStatuses }).notNull().default("Generating"),
    /** Machine-readable reason of an Error: upstream_error, upstream_timeout, cancelled, interrupted, ... */
    errorCode: text("error_code"),
    errorMessage: text("error_message"),
    model: text().notNull(),
    promptTokens: integer("prompt_tokens"),
    completionTokens: integer("completion_tokens"),
    totalTokens: integer("total_tokens"),
    /** Of the completion tokens, those the model spent reasoning, when the provider says. */
    reasoningTokens: integer("reasoning_tokens"),
    /** The counts are our estimate: no usage came from the provider (a cancelled or cut-off reply). */
    usageEstimated: integer("usage_estimated", { mode: "boolean" }).notNull().default(false),
    /** The provider's finish_reason: stop, length, content_filter, ... */
    finishReason: text("finish_reason"),
    /** The output allowance sent upstream (max_tokens). */
    maxOutputTokens: integer("max_output_tokens"),
    /** The registry's provider that answered, and every provider tried for it, in order. */
    provider: text(),
    attempts: text({ mode: "json" }).$type<Attempt[]>(),
    /** What the reply cost at the model's prices, in USD; null when the model has no price or no usage came. */
    costUsd: real("cost_usd"),
    /** What the model was given: the branch from this order on, that many messages, after a summary through that order. */
    contextFirstOrder: integer("context_first_order"),
    contextMessages: integer("context_messages"),
    contextSummaryThroughOrder: integer("context_summary_through_order"),
    /** The owner's rating of this reply: "up", "down", or null. */
    feedbackRating: text("feedback_rating", { enum: ["up", "down"] }),
    feedbackComment: text("feedback_comment"),
    createdAt: timestampColumn("created_at"),
    firstTokenAt: text("first_token_at"),
    completedAt: text("completed_at"),
  },
  (t) => [index("ai_responses_user_status").on(t.userId, t.status), index("ai_responses_message").on(t.messageId, t.id)],
);

/**
 * Rolling summaries of what dropped out of the model's context window. A summary covers the branch
 * from the root through `through_message_id`; a turn uses the newest one on its own branch.
 */
export const summaries = sqliteTable(
  "summaries",
  {
    id: text().primaryKey(),
    conversationId: text("conversation_id")
      .notNull()
      .references(() => conversations.id),
    throughMessageId: text("through_message_id")
      .notNull()
      .references(() => messages.id),
    throughOrder: integer("through_order").notNull(),
    content: text().notNull(),
    /** Its size in tokens as the provider counted it when writing it. */
    tokens: integer().notNull(),
    createdAt: timestampColumn("created_at"),
  },
  (t) => [index("summaries_conversation_through").on(t.conversationId, t.throughMessageId)],
);

/**
 * Read-only links to a snapshot of a conversation's branch. Only a hash of the token is stored;
 * the snapshot is the branch root → `leaf_message_id` as it was when shared.
 */
export const shares = sqliteTable(
  "shares",
  {
    tokenHash: text("token_hash").primaryKey(),
    conversationId: text("conversation_id")
      .notNull()
      .references(() => conversations.id),
    userId: text("user_id").notNull(),
    leafMessageId: text("leaf_message_id").references(() => messages.id),
    createdAt: timestampColumn("created_at"),
    revokedAt: text("revoked_at"),
  },
  (t) => [index("shares_conversation").on(t.conversationId)],
);

/**
 * Which virtual shard holds each share link's conversation, by the token's SHA-256: a link is
 * read without auth, and the token itself must not tell anyone which shard its owner is in.
 */
export const shareLinks = sqliteTable("share_links", {
  tokenHash: text("token_hash").primaryKey(),
  virtualShard: integer("virtual_shard").notNull(),
  createdAt: timestampColumn("created_at"),
});

/**
 * Files a user uploaded. The bytes are in R2 under `users/<user id>/<sha256>`, once per user
 * however many files hold them; the type is the one the bytes showed, never the client's.
 */
export const files = sqliteTable(
  "files",
  {
    id: text().primaryKey(),
    userId: text("user_id").notNull(),
    /** For display only: control characters and path parts removed. */
    filename: text().notNull(),
    mediaType: text("media_type").notNull(),
    size: integer().notNull(),
    sha256: text().notNull(),
    width: integer(),
    height: integer(),
    /** A PDF: the UTF-8 size of the text read from it at upload (kept in R2 beside the bytes); null when none could be read. */
    textBytes: integer("text_bytes"),
    createdAt: timestampColumn("created_at"),
    /** Deleted: the bytes are gone (unless another file holds them); the row stays for what named it. */
    deletedAt: text("deleted_at"),
  },
  (t) => [index("files_user").on(t.userId, t.createdAt, t.id), index("files_user_sha").on(t.userId, t.sha256)],
);

/** Tokens each user spent per UTC day (`YYYY-MM-DD`), as the provider counted them: the daily budget. */
export const usageDaily = sqliteTable(
  "usage_daily",
  {
    userId: text("user_id").notNull(),
    day: text().notNull(),
    tokens: integer().notNull().default(0),
    costUsd: real("cost_usd").notNull().default(0),
  },
  (t) => [primaryKey({ columns: [t.userId, t.day] })],
);

/**
 * Refresh tokens, one row per token issued. A login starts a family; each refresh marks its token
 * used and issues the next one in the same family. Presenting a used token again means it was
 * stolen or replayed: the whole family is revoked (RFC 6819 §5.2.2.3).
 */
export const refreshTokens = sqliteTable(
  "refresh_tokens",
  {
    id: text().primaryKey(),
    familyId: text("family_id").notNull(),
    userId: text("user_id")
      .notNull()
      .references(() => users.id),
    createdAt: timestampColumn("created_at"),
    expiresAt: text("expires_at").notNull(),
    usedAt: text("used_at"),
    /** The token issued in exchange for this one. */
    replacedBy: text("replaced_by"),
    revokedAt: text("revoked_at"),
  },
  (t) => [
    index("refresh_tokens_family").on(t.familyId),
    index("refresh_tokens_user").on(t.userId),
    // Housekeeping finds expired and revoked tokens without a scan.
    index("refresh_tokens_expires").on(t.expiresAt),
    index("refresh_tokens_revoked").on(t.revokedAt),
  ],
);

export type User = typeof users.$inferSelect;
export type Conversation = typeof conversations.$inferSelect;
export type Message = typeof messages.$inferSelect;
export type AiResponse = typeof aiResponses.$inferSelect;
export type Summary = typeof summaries.$inferSelect;

export type FileRow = typeof files.$inferSelect;
