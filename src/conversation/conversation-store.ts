import type { AiResponse, AttachmentRef, Conversation, Message, MessagePart, Summary } from "../db/schema";
import { addColumnIfMissing } from "../lib/sqlite-columns";
import { isToolCall } from "../rules/message-parts";
import type { Branch, BranchSummary } from "./context-window";
import { PendingIndex } from "./pending-index";
import { type TurnRows, withParts } from "./turn-rows";

/** A message as a listing shows it: with its reply's response (AI) or its newest reply's status (user). */
export interface MessageView {
  message: Message;
  reply: AiResponse | null;
  aiResponseStatus: AiResponse["status"] | null;
}

/** The kinds of rows the object holds. */
export type RowKind = "conversation" | "message" | "response" | "summary";

/** A row D1 does not have in its latest version yet, as the outbox drains it. */
export type PendingRow = {
  kind: RowKind;
  id: string;
  /** The change that last touched it: it is synced once D1 has this version. */
  version: number;
};

/** A summary as the object holds it: with the tokens (and dollars) writing it cost, which D1's usage_daily gets with it. */
export type StoredSummary = Summary & { spentTokens?: number; spentCostUsd?: number };

type MessageRow = {
  id: string;
  ord: number;
  parent_id: string | null;
  reply_to: string | null;
  sender: Message["sender"];
  content: string;
  tokens: number | null;
  is_deleted: number;
  is_edited: number;
  timestamp: string;
  attachments: string | null;
  parts: string | null;
};

const MESSAGE_COLUMNS = "id, ord, parent_id, reply_to, sender, content, tokens, is_deleted, is_edited, timestamp, attachments, parts";

/**
 * The conversation as its object holds it, in the object's own SQLite: the conversation row, every
 * message, every AI response and every summary. It is the commit point of the conversation: a
 * change is done when it is written here, and D1 gets it later from the outbox. Every write also
 * marks its row pending (the `outbox` table) in the same synchronous step, so a crash can never
 * keep a change here that D1 will not get. All calls are synchronous: nothing interleaves between
 * a caller's read and its write.
 */
export class ConversationStore {
  readonly #sql: SqlStorage;
  #conversation: Conversation | null | undefined;
  /** The rows D1 still lacks, as last saved: the outbox and the turn's steps read them back often. */
  readonly #pendingCache = new Map<string, Message | AiResponse | StoredSummary>();
  readonly #cachedVersions = new Map<string, number>();
  /** Which rows D1 lacks: what the outbox drains. */
  readonly pending: PendingIndex;
  constructor(
    sql: SqlStorage,
    /** Runs its callback as one SQLite transaction (`storage.transactionSync`). */
    private readonly transaction: <T>(body: () => T) => T,
  ) {
    this.#sql = sql;
    sql.exec(`CREATE TABLE IF NOT EXISTS store_conversation (id INTEGER PRIMARY KEY CHECK (id = 1), row TEXT NOT NULL)`);
    sql.exec(
      `CREATE TABLE IF NOT EXISTS store_messages (id TEXT PRIMARY KEY, ord INTEGER NOT NULL UNIQUE, parent_id TEXT, reply_to TEXT,
         sender TEXT NOT NULL, content TEXT NOT NULL, tokens INTEGER, is_deleted INTEGER NOT NULL, is_edited INTEGER NOT NULL, timestamp TEXT NOT NULL)`,
    );
    sql.exec(`CREATE TABLE IF NOT EXISTS store_responses (ai_message_id TEXT PRIMARY KEY, status TEXT NOT NULL, row TEXT NOT NULL)`);
    sql.exec(
      `CREATE TABLE IF NOT EXISTS store_summaries (id TEXT PRIMARY KEY, through_message_id TEXT NOT NULL, through_order INTEGER NOT NULL, row TEXT NOT NULL)`,
    );
    addColumnIfMissing(sql, "store_messages", "attachments", "TEXT");
    addColumnIfMissing(sql, "store_messages", "parts", "TEXT");
    this.pending = new PendingIndex(sql, () => this.commit(() => undefined));
  }

  /** The conversation, or null before it was loaded or created here. */
  conversation(): Conversation | null {
    this.#conversation ??= this.#sql.exec<{ row: string }>(`SELECT row FROM store_conversation`).toArray().map((r) => JSON.parse(r.row) as Conversation)[0] ?? null;
    return this.#conversation;
  }

  /**
   * Runs `body`'s writes (here, in the journal, in the ledger: one SQLite) as one transaction: a
   * statement on its own is its own transaction, and a turn's commit is a dozen of them.
   */
  commit<T>(body: () => T): T {
    return this.transaction(() => {
      const result = body();
      this.pending.saveSynced();
      return result;
    });
  }

  /**
   * Takes a conversation over: from D1 on a cold start (`pending` false: D1 has it all), or a new
   * one (`pending` true: D1 gets it from the outbox).
   */
  adopt(rows: { conversation: Conversation; messages: Message[]; responses: AiResponse[]; summaries: Summary[] }, pending: boolean): void {
    this.commit(() => {
      this.saveConversation(rows.conversation, pending);
      for (const message of rows.messages) this.saveMessage(message, pending);
      for (const response of rows.responses) this.saveResponse(response, pending);
      for (const summary of rows.summaries) this.saveSummary(summary, pending);
    });
  }

  saveConversation(conversation: Conversation, pending = true): void {
    this.#conversation = conversation;
    this.#sql.exec(`INSERT OR REPLACE INTO store_conversation (id, row) VALUES (1, ?)`, JSON.stringify(conversation));
    if (pending) this.#markPending("conversation", conversation.id);
  }

  saveMessage(message: Message, pending = true): void {
    this.#sql.exec(
      `INSERT OR REPLACE INTO store_messages (${MESSAGE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      message.id,
      message.order,
      message.parentId,
      message.replyTo,
      message.sender,
      message.content,
      message.tokens,
      message.isDeleted ? 1 : 0,
      message.isEdited ? 1 : 0,
      message.timestamp,
      message.attachments?.length ? JSON.stringify(message.attachments) : null,
      message.parts?.length ? JSON.stringify(message.parts) : null,
    );
    if (pending) this.#markPending("message", message.id, message);
  }

  saveResponse(response: AiResponse, pending = true): void {
    this.#sql.exec(`INSERT OR REPLACE INTO store_responses (ai_message_id, status, row) VALUES (?, ?, ?)`, response.aiMessageId, response.status, JSON.stringify(response));
    if (pending) this.#markPending("response", response.aiMessageId, response);
  }

  saveSummary(summary: StoredSummary, pending = true): void {
    this.#sql.exec(
      `INSERT OR REPLACE INTO store_summaries (id, through_message_id, through_order, row) VALUES (?, ?, ?, ?)`,
      summary.id,
      summary.throughMessageId,
      summary.throughOrder,
      JSON.stringify(summary),
    );
    if (pending) this.#markPending("summary", summary.id, summary);
  }

  message(id: string): Message | null {
    const cached = this.#pendingCache.get(`message:${id}`) as Message | undefined;
    if (cached) return cached;
    const [row] = this.#sql.exec<MessageRow>(`SELECT ${MESSAGE_COLUMNS} FROM store_messages WHERE id = ?`, id).toArray();
    return row ? this.#toMessage(row) : null;
  }

  /** The AI response carried by the AI message `aiMessageId`. */
  response(aiMessageId: string): AiResponse | null {
    const cached = this.#pendingCache.get(`response:${aiMessageId}`) as AiResponse | undefined;
    if (cached) return cached;
    const [row] = this.#sql.exec<{ row: string }>(`SELECT row FROM store_responses WHERE ai_message_id = ?`, aiMessageId).toArray();
    return row ? (JSON.parse(row.row) as AiResponse) : null;
  }

  /** The newest response answering the user message `messageId`. */
  newestResponseTo(messageId: string): AiResponse | null {
    const responses = this.#sql
      .exec<{ row: string }>(`SELECT r.row FROM store_responses r JOIN store_messages m ON m.id = r.ai_message_id WHERE m.parent_id = ? ORDER BY m.ord DESC LIMIT 1`, messageId)
      .toArray();
    return responses[0] ? (JSON.parse(responses[0].row) as AiResponse) : null;
  }

  summary(id: string): StoredSummary | null {
    const cached = this.#pendingCache.get(`summary:${id}`) as StoredSummary | undefined;
    if (cached) return cached;
    const [row] = this.#sql.exec<{ row: string }>(`SELECT row FROM store_summaries WHERE id = ?`, id).toArray();
    return row ? (JSON.parse(row.row) as StoredSummary) : null;
  }

  /** A turn by its AI message: its rows as the store holds them now. */
  turn(aiMessageId: string): TurnRows | null {
    const aiMessage = this.message(aiMessageId);
    const aiResponse = aiMessage?.sender === "ai" ? this.response(aiMessageId) : null;
    const userMessage = aiResponse ? this.message(aiResponse.messageId) : null;
    if (!aiMessage || !aiResponse || !userMessage) return null;
    return { conversation: this.conversation()!, userMessage, isNewUserMessage: true, aiMessage, aiResponse };
  }

  /** The messages D1 lacks in their latest version (and the replies in flight, `live`, as they are now), as listings show them. */
  pendingMessages(live: ReadonlyMap<string, Pick<Message, "content" | "parts">>): MessageView[] {
    const ids = new Set([...this.pending.ids("message"), ...this.pending.ids("response"), ...live.keys()]);
    return [...ids].flatMap((id) => {
      const message = this.message(id);
      if (!message) return [];
      const reply = live.get(id);
      return [
        {
          message: reply === undefined ? message : withParts(message, reply.content, reply.parts ?? []),
          reply: message.sender === "ai" ? this.response(id) : null,
          aiResponseStatus: message.sender === "user" ? (this.newestResponseTo(id)?.status ?? null) : null,
        },
      ];
    });
  }

  /** The order after the highest in use: orders stay contiguous because a turn's rows and its orders are written in one step. */
  nextOrder(): number {
    return (this.#sql.exec<{ n: number | null }>(`SELECT max(ord) AS n FROM store_messages`).one().n ?? 0) + 1;
  }

  responsesWithStatus(status: "Generating" | "RequiresAction"): AiResponse[] {
    return this.#sql
      .exec<{ row: string }>(`SELECT row FROM store_responses WHERE status = ?`, status)
      .toArray()
      .map((r) => JSON.parse(r.row) as AiResponse);
  }

  /** What a turn answers: the visible branch from the root to `lastMessageId`, and the newest summary of it before that message. */
  branch(lastMessageId: string): Branch {
    const path = `WITH RECURSIVE path(id, parent_id) AS (
        SELECT id, parent_id FROM store_messages WHERE id = ?
        UNION ALL SELECT m.id, m.parent_id FROM store_messages m JOIN path p ON m.id = p.parent_id)`;
    const rows = this.#sql
      .exec<Pick<MessageRow, "id" | "ord" | "sender" | "content" | "tokens" | "attachments" | "parts">>(
        `${path} SELECT m.id, m.ord, m.sender, m.content, m.tokens, m.attachments, m.parts FROM store_messages m JOIN path USING (id) WHERE m.is_deleted = 0 ORDER BY m.ord`,
        lastMessageId,
      )
      .toArray();
    const [summary] = this.#sql
      .exec<{ row: string }>(
        `${path} SELECT s.row FROM store_summaries s JOIN path p ON p.id = s.through_message_id WHERE s.through_message_id != ? ORDER BY s.through_order DESC LIMIT 1`,
        lastMessageId,
        lastMessageId,
      )
      .toArray();
    const stored = summary ? (JSON.parse(summary.row) as Summary) : null;
    return {
      // An empty reply (a failed turn) is nothing the model needs to see; tool calls without text are.
      messages: rows
        .map((row) => ({
          id: row.id,
          order: row.ord,
          role: row.sender === "user" ? ("user" as const) : ("assistant" as const),
          content: row.content,
          tokens: row.tokens,
          attachments: row.attachments ? (JSON.parse(row.attachments) as AttachmentRef[]) : null,
          parts: row.parts ? (JSON.parse(row.parts) as MessagePart[]) : null,
        }))
        .filter((message) => message.content.length > 0 || message.parts?.some(isToolCall)),
      summary: stored ? ({ throughOrder: stored.throughOrder, content: stored.content, tokens: stored.tokens } satisfies BranchSummary) : null,
    };
  }

  /** D1 has `rows` in these versions: the outbox drained them. */
  markSynced(rows: PendingRow[]): void {
    this.pending.synced(rows);
    for (const { kind, id, version } of rows) {
      const key = `${kind}:${id}`;
      if (this.#cachedVersions.get(key) === version) {
        this.#pendingCache.delete(key);
        this.#cachedVersions.delete(key);
      }
    }
  }

  #markPending(kind: RowKind, id: string, row?: Message | AiResponse | StoredSummary): void {
    const change = this.pending.mark(kind, id);
    if (row) {
      // A copy: the caller may go on changing its own object (a turn fills its response in as it streams).
      this.#pendingCache.set(`${kind}:${id}`, { ...row });
      this.#cachedVersions.set(`${kind}:${id}`, change);
    }
  }

  #toMessage(row: MessageRow): Message {
    const conversation = this.conversation()!;
    return {
      id: row.id,
      conversationId: conversation.id,
      userId: conversation.userId,
      sender: row.sender,
      content: row.content,
      timestamp: row.timestamp,
      order: row.ord,
      isEdited: row.is_edited === 1,
      isDeleted: row.is_deleted === 1,
      replyTo: row.reply_to,
      parentId: row.parent_id,
      tokens: row.tokens,
      attachments: row.attachments ? (JSON.parse(row.attachments) as AttachmentRef[]) : null,
      parts: row.parts ? (JSON.parse(row.parts) as MessagePart[]) : null,
    };
  }
}
