import { DurableObject } from "cloudflare:workers";
import { getConfig } from "../http/config";
import { type Connection, shardSession } from "../db/client";
import { virtualShardOf } from "../db/shard-map";
import type { Conversation, Message } from "../db/schema";
import { ApiError, isRefusal, notFound, type Refusal, toRefusal } from "../http/errors";
import { newId, nowIso } from "../lib/ids";
import { log, setLogLevel } from "../lib/log";
import { loadConversation } from "./cold-load";
import { ConversationStore } from "./conversation-store";
import { type ConversationFields, editedMessage, updatedConversation } from "./edits";
import { chargeStorage } from "../rules/storage";
import { utf8Length } from "./context-window";
import { catchUpFrames, finalFrame, framesStream, storedFailure, storedFrames, turnResult } from "./frames";
import { Heartbeat } from "./listeners";
import type { LiveTurn } from "./live-turn";
import { TurnFailure } from "../model/model";
import { Outbox } from "./outbox";
import { parseFrameId } from "../http/sse";
import { summarize } from "./summarizer";
import { TurnJournal } from "./turn-journal";
import { TurnQueue } from "./turn-queue";
import { TurnRunner } from "./turn-lifecycle";
import { refuse } from "./turn-checks";
import type { Attachment, Committed, ConversationOverlay, SubmitOutcome, ToolAnswerSubmission, TurnResult, TurnSubmission } from "./contract";
import { UserLedger } from "./user-ledger";
import { WaitingTurns } from "./waiting-turns";

const RECOVERY_CHECK_MS = 20_000;
/** How long a write's answer waits for D1 to have it (it is committed in the object either way). */
const D1_WAIT_MS = 2_000;

/**
 * One object per conversation owns the conversation. Its SQLite (`ConversationStore`) is the
 * commit point: a turn is accepted when its rows are written there, in the same synchronous step
 * that reserves its orders and moves the current leaf, and the model is called right after. D1
 * is written behind by the outbox. The object also runs the turns one at a time (`TurnRunner`),
 * fans their streams out to SSE listeners, and takes every edit of the conversation, so nothing
 * a turn reads can change behind its back.
 */
export class ConversationObject extends DurableObject<Env> {
  readonly #store = new ConversationStore(this.ctx.storage.sql, (body) => this.ctx.storage.transactionSync(() => this.#withPruning(body)));
  readonly #journal = new TurnJournal(this.ctx.storage.sql);
  readonly #waiting = new WaitingTurns(this.ctx.storage.sql);
  readonly #outbox = new Outbox(this.#store, () => this.#connect(), () => this.#ensureAlarm());
  readonly #ledger = new UserLedger(this.ctx.storage.sql, this.env, () => this.#ensureAlarm());
  readonly #turns = new Map<string, LiveTurn>();
  readonly #heartbeat = new Heartbeat(() => [...this.#turns.values()].map((t) => t.listeners));
  readonly #runner = new TurnRunner(() => this.env, this.#store, this.#journal, this.#waiting, this.#outbox, this.#ledger, this.#turns, new TurnQueue(), (turn) => this.#afterTurn(turn));
  /** Take-overs in flight, by the caller whose shard they read: another user's call must not answer for the owner's. */
  readonly #loading = new Map<string, Promise<void>>();
  #alarmSet = false;
  #summarizing = false;
  /** Its account was deleted: the storage is gone, and nothing in memory may answer for it. */
  #erased = false;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    setLogLevel(env.LOG_LEVEL);
    this.#recover();
  }

  async submitTurn(submission: TurnSubmission, mode: "json" | "sse"): Promise<SubmitOutcome> {
    const { userId, conversationId, lease } = submission;
    const found = await this.#find(userId, conversationId, submission.create);
    // From here to the commit nothing awaits: concurrent sends get distinct orders and parents,
    // and of concurrent requests with one Idempotency-Key exactly one is accepted.
    const checked = found ? this.#runner.check(submission) : toRefusal(notFound(submission.notFoundAs ?? "Conversation"));
    if (checked.kind !== "accept") {
      this.#ledger.release(lease, userId);
      return checked.kind === "rejected" ? checked : this.#replay(checked.aiMessageId, mode);
    }
    const turn = this.#runner.accept(submission, checked.plan, checked.branch);
    if (checked.spend !== null && checked.spend > (submission.budget?.reserved ?? 0)) this.#ledger.raiseReservation(lease, userId, checked.spend);
    this.#ensureAlarm();
    if (mode === "sse") return { kind: "stream", stream: this.#listen(turn, "start") };
    const { result, bookmark } = await turn.whenFinished();
    return { kind: "result", result, bookmark };
  }

  /**
   * Answers a turn waiting for tool outputs or approvals (`lease` is the generation slot the
   * Worker took for it). Once no call waits, the same AI message goes on with its next step,
   * answered like a send; while some still wait, the answers are stored and the turn is returned
   * as it is now.
   */
  async answerTools(submission: ToolAnswerSubmission, mode: "json" | "sse"): Promise<SubmitOutcome> {
    const { userId, conversationId, lease } = submission;
    let outcome: ReturnType<TurnRunner["answer"]>;
    try {
      if (!(await this.#find(userId, conversationId))) throw notFound("Message");
      outcome = this.#runner.answer(submission);
    } catch (error) {
      this.#ledger.release(lease, userId);
      if (error instanceof ApiError) return toRefusal(error);
      throw error;
    }
    if ("replay" in outcome || "waiting" in outcome) this.#ledger.release(lease, userId);
    if ("replay" in outcome) return this.#replay(outcome.replay, mode);
    if ("waiting" in outcome) return { kind: "result", result: outcome.waiting, bookmark: null };
    this.#ensureAlarm();
    if (mode === "sse") return { kind: "stream", stream: this.#listen(outcome.turn, outcome.from) };
    const { result, bookmark } = await outcome.turn.whenFinished();
    return { kind: "result", result, bookmark };
  }

  /**
   * Attaches to a reply. With `lastEventId` (`<ai message id>:<position>`) it resumes that reply
   * after the position, live or from the store; without, it attaches to the reply in flight.
   * `"finished"` when the client already has the whole reply, null when there is nothing to attach to.
   */
  async attach(userId: string, conversationId: string, lastEventId: string | null): Promise<Attachment | Refusal> {
    if (!(await this.#find(userId, conversationId))) return toRefusal(notFound("Conversation"));
    if (lastEventId === null) {
      const next = this.#runner.generating() ?? [...this.#turns.values()].sort((a, b) => a.rows.aiMessage.order - b.rows.aiMessage.order)[0];
      return next ? this.#listenWithLease(next, "start", userId) : null;
    }
    const position = parseFrameId(lastEventId);
    if (!position) return null;
    if (position.offset === "end") return "finished";
    const live = this.#turns.get(position.aiMessageId);
    if (live) return this.#listenWithLease(live, position.offset, userId);
    const stored = this.#store.turn(position.aiMessageId);
    return stored ? framesStream(storedFrames(stored, position.offset, null)) : null;
  }

  /** Stops the reply in flight; it is stored as Error `cancelled` with the text so far. */
  async cancel(userId: string, conversationId: string): Promise<TurnResult | null | Refusal> {
    if (!(await this.#find(userId, conversationId))) return toRefusal(notFound("Conversation"));
    const current = this.#runner.generating();
    if (!current) return null;
    current.abort.abort(new TurnFailure("cancelled", "cancelled"));
    return (await current.whenFinished()).result;
  }

  /** The conversation and what D1 may not have of it yet, for a listing of this conversation to merge. */
  async overlay(userId: string, conversationId: string): Promise<ConversationOverlay | Refusal> {
    const conversation = await this.#find(userId, conversationId);
    if (!conversation) return toRefusal(notFound("Conversation"));
    return { conversation, messages: this.#store.pendingMessages(new Map([...this.#turns].map(([id, turn]) => [id, { content: turn.text, parts: turn.parts }]))) };
  }

  /** The caller's conversation as it is now (D1 may trail it). */
  async conversation(userId: string, conversationId: string): Promise<Conversation | Refusal> {
    return (await this.#find(userId, conversationId)) ?? toRefusal(notFound("Conversation"));
  }

  /** The conversation once D1 has all of it (a fork or a share reads it from D1), or as it is after D1_WAIT_MS. */
  async synced(userId: string, conversationId: string): Promise<Conversation | Refusal> {
    const conversation = await this.#find(userId, conversationId);
    if (!conversation) return toRefusal(notFound("Conversation"));
    await this.#outbox.synced(this.#store.pending.lastChange(), D1_WAIT_MS);
    return this.#store.conversation()!;
  }

  /** A new, empty conversation (POST /conversations): answered once D1 has it, so the caller's list shows it. */
  async create(row: Conversation): Promise<Committed<Conversation>> {
    if (!this.#store.conversation()) this.#store.adopt({ conversation: row, messages: [], responses: [], summaries: [] }, true);
    return this.#committed(this.#store.conversation()!);
  }

  /** Renames, deletes or restores the conversation, changes its system prompt, or switches its branch. */
  async update(userId: string, conversationId: string, fields: ConversationFields): Promise<Committed<Conversation> | Refusal> {
    const conversation = await this.#find(userId, conversationId);
    if (!conversation) return toRefusal(notFound("Conversation"));
    return this.#apply(() => updatedConversation(this.#store, conversation, fields, getConfig(this.env).modelEntry(conversation.modelVersion), nowIso()), (row) => this.#store.saveConversation(row));
  }

  /** Edits a user message; text it grows by counts against the owner's storage quota (edits cost no tokens). */
  async editMessage(userId: string, conversationId: string, messageId: string, content: string): Promise<Committed<Message> | Refusal> {
    const before = await this.#ownedMessage(userId, conversationId, messageId);
    if (isRefusal(before)) return before;
    try {
      await chargeStorage(this.env, userId, utf8Length(content) - utf8Length(before.content));
    } catch (error) {
      if (error instanceof ApiError) return toRefusal(error);
      throw error;
    }
    // The message as it is now: another change may have landed while the quota was asked.
    const message = this.#store.message(messageId) ?? before;
    return this.#apply(() => editedMessage(message, content), (row) => this.#store.saveMessage(row));
  }

  async markDeleted(userId: string, conversationId: string, messageId: string): Promise<Committed<Message> | Refusal> {
    const message = await this.#ownedMessage(userId, conversationId, messageId);
    if (isRefusal(message)) return message;
    if (message.isDeleted) return { value: message, bookmark: null };
    return this.#apply(() => ({ ...message, isDeleted: true }), (row) => this.#store.saveMessage(row));
  }

  /**
   * Erases the conversation (its account is being deleted): turns in flight stop, then the
   * object's storage goes. From then on this object answers as if it never held anything.
   */
  async erase(userId: string, conversationId: string): Promise<void> {
    if (!(await this.#find(userId, conversationId))) return;
    this.#erased = true;
    for (const turn of this.#turns.values()) turn.abort.abort(new TurnFailure("cancelled", "cancelled"));
    await Promise.all([...this.#turns.values()].map((turn) => turn.whenFinished()));
    await this.ctx.storage.deleteAlarm();
    await this.ctx.storage.deleteAll();
  }

  override async alarm(): Promise<void> {
    // Waking up runs the constructor, and with it `recover`; keep waking while anything is pending.
    this.#alarmSet = false;
    await Promise.all([this.#outbox.drain(), this.#ledger.flush()]);
    if (this.#turns.size > 0 || !this.#outbox.isEmpty || this.#ledger.hasUnsent) this.#ensureAlarm();
  }

  /** A commit also carries the ledger's deletions: a write event of their own would cost a storage commit each. */
  #withPruning<T>(body: () => T): T {
    const result = body();
    this.#ledger.prune();
    return result;
  }

  /** Commits the row `change` makes (or refuses with its ApiError), and answers once D1 has it. */
  #apply<T>(change: () => T, save: (row: T) => void): Promise<Committed<T>> | Refusal {
    let row: T;
    try {
      row = change();
    } catch (error) {
      if (error instanceof ApiError) return toRefusal(error);
      throw error;
    }
    this.#store.commit(() => save(row));
    return this.#committed(row);
  }

  /** Answers with `value` once D1 has everything committed so far (with D1's bookmark), or after D1_WAIT_MS (without). */
  async #committed<T>(value: T): Promise<Committed<T>> {
    this.#ensureAlarm();
    return { value, bookmark: await this.#outbox.synced(this.#store.pending.lastChange(), D1_WAIT_MS) };
  }

  async #ownedMessage(userId: string, conversationId: string, messageId: string): Promise<Message | Refusal> {
    if (!(await this.#find(userId, conversationId))) return toRefusal(notFound("Message"));
    return this.#store.message(messageId) ?? toRefusal(notFound("Message"));
  }

  /**
   * The caller's conversation: the object's, else D1's (taken over once: at most one D1 round
   * trip in the object's life), else `create`'s row (adopted only when its first turn commits).
   * Null when none is the caller's.
   */
  async #find(userId: string, conversationId: string, create?: TurnSubmission["create"]): Promise<Conversation | null> {
    if (this.#erased) return null;
    if (!this.#store.conversation() && !(create && !create.mayExist)) {
      let loading = this.#loading.get(userId);
      if (!loading) {
        loading = this.#takeOver(userId, conversationId).finally(() => this.#loading.delete(userId));
        this.#loading.set(userId, loading);
      }
      await loading;
    }
    const conversation = this.#store.conversation() ?? create?.row ?? null;
    return conversation?.id === conversationId && conversation.userId === userId ? conversation : null;
  }

  async #takeOver(userId: string, conversationId: string): Promise<void> {
    const rows = await loadConversation(shardSession(this.env, userId, "first-primary").db, conversationId);
    if (!rows || this.#store.conversation()) return;
    this.#store.adopt(rows, false);
    // A reply D1 still has as Generating was cut off before this object held the conversation.
    this.#runner.interruptUnfinished(nowIso());
    void this.#outbox.drain();
  }

  /** A request repeating an Idempotency-Key: the original turn's result, live or stored. */
  async #replay(aiMessageId: string, mode: "json" | "sse"): Promise<SubmitOutcome> {
    const live = this.#turns.get(aiMessageId);
    if (live) {
      if (mode === "sse") return { kind: "stream", stream: this.#listen(live, "start") };
      return { kind: "result", ...(await live.whenFinished()) };
    }
    const stored = this.#store.turn(aiMessageId);
    if (!stored) return refuse("internal_error", "The message could not be stored.");
    const bookmark = await this.#outbox.synced(this.#store.pending.lastChange(), D1_WAIT_MS);
    if (mode === "sse") return { kind: "stream", stream: framesStream(storedFrames(stored, "start", bookmark)) };
    return { kind: "result", result: turnResult(stored, storedFailure(stored)), bookmark };
  }

  async #listenWithLease(turn: LiveTurn, after: number | "start", userId: string): Promise<Attachment | Refusal> {
    const { maxListenersPerTurn, maxListenersPerUser, maxQueuedTurns, model } = getConfig(this.env);
    if (turn.listeners.size >= maxListenersPerTurn) return refuse("rate_limited", `This reply already has ${maxListenersPerTurn} listeners.`, { "Retry-After": "5" });
    const lease = newId();
    const admission = await this.#ledger.acquire({ userId, kind: "listener", leaseId: lease, limit: maxListenersPerUser, ttlMs: (maxQueuedTurns + 1) * model.timeoutMs, dailyTokens: 0, dailyCostUsd: 0 });
    if (!admission.ok) return refuse("rate_limited", `You already have ${maxListenersPerUser} streams open; close one first.`, { "Retry-After": "5" });
    if (turn.phase === "finished") {
      // It ended while the slot was being taken.
      this.#ledger.settle(lease, 0);
      const stored = this.#store.turn(turn.rows.aiMessage.id);
      return stored ? framesStream(storedFrames(stored, after, null)) : null;
    }
    return this.#listen(turn, after, () => this.#ledger.settle(lease, 0));
  }

  #listen(turn: LiveTurn, after: number | "start", onEnd?: () => void): ReadableStream<Uint8Array> {
    this.#heartbeat.ensureRunning();
    return turn.listeners.add(catchUpFrames(turn.rows, turn.parts, after), onEnd);
  }

  /** After a turn's commit: the last frame once D1 has it (or D1_WAIT_MS passed), then the summary in the background. */
  async #afterTurn(turn: LiveTurn): Promise<void> {
    const { rows } = turn;
    const bookmark = await this.#outbox.synced(this.#store.pending.lastChange(), D1_WAIT_MS);
    const result = turnResult(rows, turn.failure);
    turn.finished(result, bookmark, finalFrame(result, bookmark));
    if (!turn.selection?.unsummarized.length || this.#summarizing || this.#erased) return;
    this.#summarizing = true;
    const summarizing = summarize(this.env, this.#store, this.#ledger, turn.branch!.summary, turn.selection.unsummarized, turn.model)
      .then(() => this.#outbox.drain())
      .finally(() => (this.#summarizing = false));
    this.ctx.waitUntil(summarizing);
  }

  /**
   * While anything is pending (a turn, rows D1 lacks, slots to give back), an alarm every
   * RECOVERY_CHECK_MS: after a restart it wakes the object, and `recover` runs, with no request.
   */
  #ensureAlarm(): void {
    if (this.#alarmSet) return;
    this.#alarmSet = true;
    void this.ctx.storage.setAlarm(Date.now() + RECOVERY_CHECK_MS);
  }

  /** A session at the primary of the owner's shard; none while that shard is frozen (being moved), so nothing lands in the copy's source. */
  #connect(): Connection | null {
    if (this.#erased) return null;
    const { userId } = this.#store.conversation()!;
    if (getConfig(this.env).frozenVirtualShards.has(virtualShardOf(userId))) return null;
    return shardSession(this.env, userId, "first-primary");
  }

  /**
   * Runs on every start. Nothing in memory survived: replies still Generating were cut off (they
   * become Error `interrupted`, keeping what was journaled), every user slot held is given back,
   * and what D1 lacks is drained, all with no request needed.
   */
  #recover(): void {
    this.#ledger.settleAllHeld();
    if (this.#store.conversation()) this.#runner.interruptUnfinished(nowIso());
    if (this.#outbox.isEmpty && !this.#ledger.hasUnsent) return;
    log.info("recovering a conversation object", { pending_rows: this.#store.pending.oldest(1_000).length });
    this.#ensureAlarm();
    this.ctx.waitUntil(Promise.all([this.#outbox.drain(), this.#ledger.flush()]));
  }
}
