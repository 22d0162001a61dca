import { DurableObject } from "cloudflare:workers";
import { getConfig, type ModelBudget } from "../config";
import { type Connection, shardSession } from "../db/client";
import type { Conversation } from "../db/schema";
import type { ErrorCode } from "../errors";
import { newId, nowIso } from "../lib/ids";
import { log, setLogLevel } from "../lib/log";
import { renderAiResponse, renderContext, renderConversation, renderMessage } from "../schemas";
import { userObject } from "../user-object";
import { Heartbeat } from "./listeners";
import { LiveTurn } from "./live-turn";
import {
  type BranchMessage,
  type BranchSummary,
  type ContextSelection,
  estimateTokens,
  ownMessageTokens,
  RETRY_TIGHTENING,
  selectContext,
} from "./context-window";
import { classifyModelError, completeChat, getModelClient, isContextLengthError, streamChat, TurnFailure } from "./model";
import { summaryRequest } from "./summary-request";
import { encodeFrame, frameId, parseFrameId } from "./sse";
import { TurnJournal } from "./turn-journal";
import { TurnQueue } from "./turn-queue";
import {
  acceptTurn,
  finishTurn,
  leafWrite,
  loadBranchState,
  loadBranch,
  loadTurn,
  markInterrupted,
  newTurnRows,
  ordersNeeded,
  saveSummary,
  type TurnPlan,
  type TurnRows,
} from "./turn-store";
import { Watchdog } from "./watchdog";

const RECOVERY_CHECK_MS = 20_000;

export interface TurnRequest {
  conversation: Conversation;
  /** The conversation row is written with the turn unless it exists by then. */
  isNewConversation: boolean;
  /** The conversation's id derives from the Idempotency-Key (keyed start_conversation). */
  keyNamesConversation?: boolean;
  /** The user's generation slot taken for this turn (UserObject): released when the turn ends, or at once if none starts. */
  lease: string;
  plan: TurnPlan;
  /** The client's Idempotency-Key and a hash of what it sent with it. */
  idempotency: { key: string; requestHash: string } | null;
}

export type TurnResult = {
  conversation: ReturnType<typeof renderConversation>;
  user_message: ReturnType<typeof renderMessage>;
  ai_message: ReturnType<typeof renderMessage>;
  ai_response: ReturnType<typeof renderAiResponse>;
  failure: { code: TurnFailure["code"]; message: string } | null;
};

export type Attachment = { stream: ReadableStream<Uint8Array>; holdsLease: boolean } | "finished" | "busy" | null;

export type SubmitOutcome =
  | { kind: "rejected"; code: ErrorCode; message: string; headers?: Record<string, string> }
  | { kind: "stream"; stream: ReadableStream<Uint8Array> }
  /** `bookmark`: the D1 bookmark after the turn was stored, for the client to read it back with. */
  | { kind: "result"; result: TurnResult; bookmark: string | null };

const KEY_REUSED: SubmitOutcome = {
  kind: "rejected",
  code: "idempotency_key_reused",
  message: "This Idempotency-Key was used with a different request, or more than 24 hours ago.",
};
const STORE_FAILED: SubmitOutcome = { kind: "rejected", code: "internal_error", message: "The message could not be stored." };

const framesStream = (frames: Uint8Array[]) =>
  new ReadableStream<Uint8Array>({
    start(controller) {
      for (const frame of frames) controller.enqueue(frame);
      controller.close();
    },
  });

/** The failure of a stored Error response, as the live turn reported it. */
const storedFailure = ({ aiResponse }: TurnRows) =>
  aiResponse.status === "Error" ? new TurnFailure((aiResponse.errorCode ?? "upstream_error") as TurnFailure["code"], aiResponse.errorMessage ?? "") : null;

/**
 * One object per conversation owns that conversation's write path: it assigns message orders and
 * the current leaf of the conversation tree, runs the model turns one at a time, and fans the
 * streamed reply out to SSE listeners.
 *
 * Its own SQLite (the journal) holds the order counter, the current leaf, the turns not yet
 * finished, and the text of the reply in flight, so a restart can tell what was streamed (see `recover`).
 */
export class ConversationObject extends DurableObject<Env> {
  readonly #journal = new TurnJournal(this.ctx.storage.sql);
  readonly #queue = new TurnQueue();
  readonly #turns = new Map<string, LiveTurn>();
  readonly #heartbeat = new Heartbeat(() => [...this.#turns.values()].map((t) => t.listeners));
  /** Resolved once the order counter and the current leaf exist in this object's storage. */
  #initialized: Promise<void> | undefined;
  #alarmSet = false;
  #summarizing = false;
  /** The recovery of turns a restart cut off, while it runs. */
  #recovery: Promise<void> | undefined;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    setLogLevel(env.LOG_LEVEL);
    if (this.#journal.isInitialized()) this.#initialized = Promise.resolve();
    this.#recover();
  }

  /** Accepts a turn, reserves its orders, makes its reply the current leaf, and queues the reply. */
  async submitTurn(request: TurnRequest, mode: "json" | "sse"): Promise<SubmitOutcome> {
    const { conversation, isNewConversation, idempotency, plan } = request;
    const noTurn = () => this.#releaseLeases(conversation.userId, [request.lease]);
    const usedBefore = this.#journal.hasCounter();
    await this.#ensureInitialized(conversation.userId, isNewConversation ? null : conversation.id);

    // From here to the enqueue below nothing awaits: concurrent submissions cannot interleave,
    // so every turn gets distinct orders and the parent it was accepted after, the queue runs
    // turns in the order reserved, and of concurrent requests with one Idempotency-Key exactly
    // one gets past this check.
    if (idempotency) {
      const previous = this.#journal.findIdempotent(conversation.userId, idempotency.key);
      if (previous) {
        noTurn();
        return this.#replay(conversation, previous.aiMessageId, previous.requestHash !== idempotency.requestHash, mode);
      }
      // This object is named after the key, so a used object means the key is older than 24 h.
      if (request.keyNamesConversation && usedBefore) {
        noTurn();
        return KEY_REUSED;
      }
    }
    const maxQueued = getConfig(this.env).maxQueuedTurns;
    if (this.#turns.size >= maxQueued) {
      noTurn();
      return { kind: "rejected", code: "rate_limited", message: `This conversation already has ${maxQueued} replies waiting; wait for them to finish.`, headers: { "Retry-After": "5" } };
    }
    const firstOrder = this.#journal.reserveOrders(ordersNeeded(plan));
    const previousLeaf = this.#journal.currentLeaf();
    const rows = newTurnRows(conversation, plan, previousLeaf, firstOrder, 0);
    rows.conversation.leafVersion = this.#journal.moveLeaf(rows.aiMessage.id);
    // With no earlier turn unfinished, the branch cannot change before this turn starts, so it
    // is read in the accept batch: one D1 round trip less before the first token.
    const readBranchNow = this.#turns.size === 0;
    this.#journal.open(rows.aiMessage.id, rows.aiResponse.id, { userId: conversation.userId, id: request.lease });
    if (idempotency) this.#journal.rememberIdempotent(conversation.userId, idempotency.key, { requestHash: idempotency.requestHash, aiMessageId: rows.aiMessage.id });
    const turn = new LiveTurn(rows, conversation.systemPrompt, request.lease);
    this.#turns.set(rows.aiMessage.id, turn);
    this.#queue.enqueue(() => this.#run(turn)).catch((error) => log.error("turn crashed", error, { ai_message_id: rows.aiMessage.id }));
    this.#ensureAlarm();

    try {
      turn.accepted(await acceptTurn(this.#shard(conversation.userId).db, rows, isNewConversation, readBranchNow));
    } catch (error) {
      this.#turns.delete(rows.aiMessage.id);
      this.#journal.close(rows.aiMessage.id);
      // Turns accepted after this one chained onto it and fail the same way (their parent is missing).
      this.#journal.restoreLeaf(rows.aiMessage.id, previousLeaf);
      if (idempotency) this.#journal.forgetIdempotent(conversation.userId, idempotency.key);
      noTurn();
      turn.rejected();
      log.error("accepting a turn failed", error, { conversation_id: conversation.id });
      return STORE_FAILED;
    }
    // With the branch at hand the window is chosen now, so the first frame can say what the model
    // gets. If nothing fits, the turn fails with that when it starts.
    if (turn.branch) {
      try {
        this.#chooseContext(turn, 1);
      } catch {}
    }

    if (mode === "sse") return { kind: "stream", stream: this.#listen(turn, "start") };
    await turn.whenFinished();
    return { kind: "result", result: this.#result(turn), bookmark: turn.bookmark };
  }

  /** Makes `messageId` (a message of this conversation, checked by the caller) the current leaf. */
  async setCurrentLeaf(userId: string, conversationId: string, messageId: string): Promise<void> {
    await this.#ensureInitialized(userId, conversationId);
    const version = this.#journal.moveLeaf(messageId);
    await leafWrite(this.#shard(userId).db, conversationId, messageId, version);
  }

  /**
   * The text so far of the replies in flight among `aiMessageIds`. A reply's text reaches D1 only
   * when it ends (one write per turn), so listings take a Generating reply's text from here.
   */
  liveText(aiMessageIds: string[]): Record<string, string> {
    const texts: Record<string, string> = {};
    for (const id of aiMessageIds) {
      const turn = this.#turns.get(id);
      if (turn) texts[id] = turn.text;
    }
    return texts;
  }

  /**
   * Attaches to a reply. With `lastEventId` (`<ai message id>:<offset>`) it resumes that reply
   * after the offset, from memory while it is in flight or from D1 once it is stored; without,
   * it attaches to the reply in flight. `"finished"` when the client already has the whole reply
   * (its last frame was the final one), `"busy"` when the reply has MAX_LISTENERS_PER_TURN
   * listeners, null when there is nothing to attach to. A live listener keeps `lease` (the user's
   * listener slot) until it ends; otherwise the caller gives it back.
   */
  async attach(conversationId: string, lastEventId: string | null, lease: { userId: string; id: string }): Promise<Attachment> {
    if (lastEventId === null) {
      const next = this.#generating() ?? this.#storedTurns().sort((a, b) => a.rows.aiMessage.order - b.rows.aiMessage.order)[0];
      return next ? this.#listenWithLease(next, "start", lease) : null;
    }
    const position = parseFrameId(lastEventId);
    if (!position) return null;
    if (position.offset === "end") return "finished";
    const live = this.#turns.get(position.aiMessageId);
    if (live?.isStored) return this.#listenWithLease(live, position.offset, lease);

    const stored = await loadTurn(this.#shard(lease.userId).db, conversationId, position.aiMessageId);
    if (!stored) return null;
    return { stream: framesStream(this.#storedFrames(stored, position.offset)), holdsLease: false };
  }

  #listenWithLease(turn: LiveTurn, after: number | "start", lease: { userId: string; id: string }): Attachment {
    if (turn.listeners.size >= getConfig(this.env).maxListenersPerTurn) return "busy";
    return { stream: this.#listen(turn, after, () => this.#releaseLeases(lease.userId, [lease.id])), holdsLease: true };
  }

  /** Stops the reply in flight; it is stored as Error `cancelled` with the text so far. */
  async cancel(): Promise<TurnResult | null> {
    const current = this.#generating();
    if (!current) return null;
    current.abort.abort(new TurnFailure("cancelled", "cancelled"));
    await current.whenFinished();
    return this.#result(current);
  }

  override async alarm(): Promise<void> {
    // Waking up runs the constructor, and with it `recover`; keep waking while turns are pending.
    this.#alarmSet = false;
    if (this.#turns.size > 0) this.#ensureAlarm();
    await this.#recovery;
  }

  /** Gives slots back to the user's object, in the background: a failed release only means the lease runs out. */
  #releaseLeases(userId: string, ids: string[]): void {
    if (ids.length === 0) return;
    this.ctx.waitUntil(
      userObject(this.env, userId)
        .release(ids)
        .catch((error) => log.warn("releasing a user slot failed", { user_id: userId, error: String(error) })),
    );
  }

  /** A request repeating an Idempotency-Key: the original turn's result, live or stored. */
  async #replay(conversation: Conversation, aiMessageId: string, bodyDiffers: boolean, mode: "json" | "sse"): Promise<SubmitOutcome> {
    if (bodyDiffers) return KEY_REUSED;
    const live = this.#turns.get(aiMessageId);
    if (live) {
      if (!(await live.whenAccepted())) return STORE_FAILED;
      if (mode === "sse") return { kind: "stream", stream: this.#listen(live, "start") };
      await live.whenFinished();
      return { kind: "result", result: this.#result(live), bookmark: live.bookmark };
    }
    const shard = this.#shard(conversation.userId);
    const stored = await loadTurn(shard.db, conversation.id, aiMessageId);
    if (!stored) return STORE_FAILED;
    if (mode === "sse") return { kind: "stream", stream: framesStream(this.#storedFrames(stored, "start")) };
    return { kind: "result", result: this.#result({ rows: stored, failure: storedFailure(stored) }), bookmark: shard.bookmark };
  }

  /** The frames of a stored reply after `from` (a character offset, or from its message frame). */
  #storedFrames(rows: TurnRows, from: number | "start"): Uint8Array[] {
    return [...this.#catchUpFrames(rows, rows.aiMessage.content, from), this.#finalFrame(this.#result({ rows, failure: storedFailure(rows) }))];
  }

  /**
   * An alarm every RECOVERY_CHECK_MS while a turn is pending: after a restart it wakes the object
   * (and `recover` runs) within that time even if no request comes, so an interrupted reply does
   * not stay Generating, counting against its user's cap.
   */
  #ensureAlarm(): void {
    if (this.#alarmSet) return;
    this.#alarmSet = true;
    void this.ctx.storage.setAlarm(Date.now() + RECOVERY_CHECK_MS);
  }

  /**
   * Every D1 access of this object, on its owner's shard. A fresh session at the primary each
   * time: order and branch reads must see the latest write, whoever made it, and the session's
   * bookmark after a write is what the client reads it back with.
   */
  #shard(userId: string): Connection {
    return shardSession(this.env, userId, "first-primary");
  }

  /** Starts the counter after the highest order in D1 and the leaf where D1 has it (a conversation this object creates has neither). */
  #ensureInitialized(userId: string, conversationId: string | null): Promise<void> {
    this.#initialized ??= (async () => {
      const state = conversationId ? await loadBranchState(this.#shard(userId).db, conversationId) : { highestOrder: 0, currentLeafId: null, leafVersion: 0 };
      this.#journal.initialize(state.highestOrder + 1, state.currentLeafId, state.leafVersion);
    })().catch((error) => {
      this.#initialized = undefined;
      throw error;
    });
    return this.#initialized;
  }

  #generating(): LiveTurn | undefined {
    for (const turn of this.#turns.values()) if (turn.phase === "generating") return turn;
    return undefined;
  }

  #storedTurns(): LiveTurn[] {
    return [...this.#turns.values()].filter((t) => t.isStored);
  }

  async #run(turn: LiveTurn): Promise<void> {
    if (!(await turn.whenAccepted())) return;
    turn.generating();
    await this.#streamReply(turn);
    await this.#finish(turn);
  }

  /** Calls the model and fans its deltas out; any failure ends up in `turn.failure`. */
  async #streamReply(turn: LiveTurn): Promise<void> {
    const { rows } = turn;
    const signal = turn.abort.signal;
    const { model } = turn;
    const budget = getConfig(this.env).modelBudget(model);
    const watchdog = new Watchdog(turn.abort, getConfig(this.env).model);
    try {
      if (signal.aborted) throw signal.reason;
      turn.branch ??= await loadBranch(this.#shard(rows.conversation.userId).db, rows.conversation.id, rows.userMessage.id);
      try {
        await this.#callModel(turn, turn.selection ?? this.#chooseContext(turn, 1), budget, watchdog);
      } catch (error) {
        // The provider counted more than we did: once more, with room to spare.
        if (!isContextLengthError(error) || turn.text.length > 0) throw error;
        log.warn("prompt too long for the provider; retrying with a tighter budget", { ai_message_id: rows.aiMessage.id, model });
        await this.#callModel(turn, this.#chooseContext(turn, RETRY_TIGHTENING), budget, watchdog);
      }
      if (signal.aborted) throw signal.reason;
      if (turn.text.length === 0) throw new TurnFailure("empty_reply", "The model returned an empty reply.");
    } catch (error) {
      turn.failure = classifyModelError(error, signal);
      if (!(error instanceof TurnFailure) && turn.failure.code !== "cancelled") {
        log.warn("model call failed", { code: turn.failure.code, error: String(error), ai_message_id: rows.aiMessage.id });
      }
    } finally {
      watchdog.stop();
    }
  }

  /** Chooses what of the turn's branch fits `tighten` of the model's window, and records it on the response. */
  #chooseContext(turn: LiveTurn, tighten: number): ContextSelection {
    const selection = selectContext(turn.systemPrompt, turn.branch!, getConfig(this.env).modelBudget(turn.model), tighten);
    if (!selection) throw new TurnFailure("context_length_exceeded", "The message does not fit in the model's context window.");
    turn.selection = selection;
    Object.assign(turn.rows.aiResponse, {
      contextFirstOrder: selection.window.firstOrder,
      contextMessages: selection.window.messages,
      contextSummaryThroughOrder: selection.window.summaryThroughOrder,
    });
    return selection;
  }

  /** One model call with the prompt of `selection`. */
  async #callModel(turn: LiveTurn, selection: ContextSelection, budget: ModelBudget, watchdog: Watchdog): Promise<void> {
    const { rows } = turn;
    const config = getConfig(this.env);
    for await (const event of streamChat(getModelClient(config), turn.model, selection.prompt, budget.maxOutputTokens, turn.abort.signal)) {
      const now = watchdog.touch();
      if (event.type === "model") {
        // The upstream's own name for the model that answered, e.g. a dated snapshot.
        rows.aiResponse.model = event.model;
      } else if (event.type === "finish") {
        rows.aiResponse.finishReason = event.reason;
      } else if (event.type === "usage") {
        rows.aiResponse.promptTokens = event.promptTokens;
        rows.aiResponse.completionTokens = event.completionTokens;
        rows.aiResponse.totalTokens = event.totalTokens;
      } else {
        rows.aiResponse.firstTokenAt ??= new Date(now).toISOString();
        turn.addDelta(event.content);
        this.#journal.append(rows.aiMessage.id, event.content);
      }
    }
  }

  /** Stores the reply with its outcome, then sends the last frame and lets the next turn run. */
  async #finish(turn: LiveTurn): Promise<void> {
    const { rows, failure } = turn;
    const finishedAt = nowIso();
    rows.aiMessage.content = turn.text;
    rows.aiMessage.tokens = rows.aiResponse.completionTokens;
    rows.conversation.updatedAt = finishedAt;
    Object.assign(rows.aiResponse, {
      status: failure ? "Error" : "Completed",
      errorCode: failure?.code ?? null,
      errorMessage: failure?.message ?? null,
      completedAt: finishedAt,
    });
    try {
      const shard = this.#shard(rows.conversation.userId);
      await finishTurn(shard.db, rows, this.#userMessageTokens(turn));
      turn.bookmark = shard.bookmark;
      this.#journal.close(rows.aiMessage.id);
    } catch (error) {
      // The turn stays in this object's storage; the next start marks it interrupted.
      log.error("storing a reply failed", error, { ai_message_id: rows.aiMessage.id });
    }
    log.info("model call", {
      model: rows.aiResponse.model,
      outcome: failure?.code ?? "completed",
      finish_reason: rows.aiResponse.finishReason,
      prompt_tokens: rows.aiResponse.promptTokens,
      completion_tokens: rows.aiResponse.completionTokens,
      ttft_ms: rows.aiResponse.firstTokenAt ? Date.parse(rows.aiResponse.firstTokenAt) - Date.parse(rows.aiResponse.createdAt) : null,
      conversation_id: rows.conversation.id,
    });
    this.#turns.delete(rows.aiMessage.id);
    this.#releaseLeases(rows.conversation.userId, [turn.lease]);
    turn.finished(this.#finalFrame(this.#result(turn), turn.bookmark));
    if (turn.selection?.unsummarized.length) this.#summarize(rows.conversation.id, rows.conversation.userId, turn.branch!.summary, turn.selection.unsummarized, turn.model);
  }

  /** The share of the provider's prompt count that is the turn's own, not yet counted, user message. */
  #userMessageTokens({ branch, selection, rows }: LiveTurn): number | null {
    const own = branch?.messages.at(-1);
    if (!own || own.id !== rows.userMessage.id || own.tokens !== null || !selection || rows.aiResponse.promptTokens === null) return null;
    return ownMessageTokens(selection, own, rows.aiResponse.promptTokens);
  }

  /**
   * Folds messages that fell out of the window into the branch's rolling summary, in the
   * background: the next turn never waits for it (until it lands, turns use the previous summary),
   * and a failure only means the next turn tries again. One at a time per conversation.
   */
  #summarize(conversationId: string, userId: string, previous: BranchSummary | null, dropped: BranchMessage[], model: string): void {
    if (this.#summarizing) return;
    const config = getConfig(this.env);
    const request = summaryRequest(previous, dropped, config.modelBudget(model));
    if (!request) return;
    this.#summarizing = true;
    const summarizing = completeChat(getModelClient(config), model, request.prompt, request.maxTokens, AbortSignal.timeout(config.model.timeoutMs))
      .then(async ({ content, completionTokens, totalTokens }) => {
        if (!content.trim()) throw new Error("the model returned an empty summary");
        const summary = {
          id: newId(),
          conversationId,
          throughMessageId: request.through.id,
          throughOrder: request.through.order,
          content,
          tokens: completionTokens ?? estimateTokens(content),
          createdAt: nowIso(),
        };
        await saveSummary(this.#shard(userId).db, summary, userId, totalTokens);
        log.info("summary stored", { conversation_id: conversationId, through_order: request.through.order });
      })
      .catch((error) => log.warn("summarizing failed", { conversation_id: conversationId, error: String(error) }))
      .finally(() => (this.#summarizing = false));
    this.ctx.waitUntil(summarizing);
  }

  #listen(turn: LiveTurn, after: number | "start", onEnd?: () => void): ReadableStream<Uint8Array> {
    this.#heartbeat.ensureRunning();
    return turn.listeners.add(this.#catchUpFrames(turn.rows, turn.text, after), onEnd);
  }

  /**
   * What a listener joining at `after` has missed of `text`: the message frame (from the start)
   * and the rest of the text as one delta. One frame, not the deltas as they were sent: a long
   * reply's backlog would otherwise fill a new listener's buffer before it read anything.
   */
  #catchUpFrames(rows: TurnRows, text: string, after: number | "start"): Uint8Array[] {
    const offset = after === "start" ? 0 : after;
    const frames = after === "start" ? [this.#messageFrame(rows)] : [];
    if (offset < text.length) frames.push(encodeFrame("delta", frameId(rows.aiMessage.id, text.length), { content: text.slice(offset) }));
    return frames;
  }

  #messageFrame(rows: TurnRows): Uint8Array {
    return encodeFrame("message", frameId(rows.aiMessage.id, 0), {
      conversation: renderConversation(rows.conversation),
      user_message: renderMessage(rows.userMessage, { aiResponseStatus: rows.aiResponse.status }),
      ai_message: renderMessage(rows.aiMessage, { reply: rows.aiResponse }),
      // Null while the turn waits behind another one: its window is chosen when it starts.
      context: renderContext(rows.aiResponse),
    });
  }

  /** The last frame of a reply; `bookmark`, the D1 bookmark of its final write, lets a client read it back from a replica. */
  #finalFrame({ ai_message, ai_response, failure }: TurnResult, bookmark: string | null = null): Uint8Array {
    const id = frameId(ai_message.id, "end");
    const stored = bookmark ? { bookmark } : {};
    return failure ? encodeFrame("error", id, { ...failure, ai_message, ai_response, ...stored }) : encodeFrame("done", id, { ai_message, ai_response, ...stored });
  }

  #result({ rows, failure }: Pick<LiveTurn, "rows" | "failure">): TurnResult {
    return {
      conversation: renderConversation(rows.conversation),
      user_message: renderMessage(rows.userMessage, { aiResponseStatus: rows.aiResponse.status }),
      ai_message: renderMessage(rows.aiMessage, { reply: rows.aiResponse }),
      ai_response: renderAiResponse(rows.aiResponse, rows.aiMessage.content),
      failure: failure ? { code: failure.code, message: failure.message } : null,
    };
  }

  /**
   * Runs on every start. Turns left in this object's storage were cut off by a restart or
   * eviction (their in-memory state is gone): their replies become Error `interrupted`, keeping
   * every delta that was streamed, and the conversation stays usable.
   */
  #recover(): void {
    const unfinished = this.#journal.unfinished();
    if (unfinished.length === 0) return;
    this.#recovery = this.#queue
      .enqueue(async () => {
        const at = nowIso();
        for (const { aiMessageId, aiResponseId, text, lease } of unfinished) {
          await markInterrupted(this.#shard(lease.userId).db, aiMessageId, aiResponseId, text, at);
          this.#journal.close(aiMessageId);
          this.#releaseLeases(lease.userId, [lease.id]);
        }
      })
      // What is left in the journal is tried again at the next start.
      .catch((error) => log.error("recovering interrupted turns failed", error));
  }
}
