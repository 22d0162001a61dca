import { DurableObject } from "cloudflare:workers";
import { getConfig } from "../config";
import { getDb } from "../db/client";
import type { Conversation } from "../db/schema";
import type { ErrorCode } from "../errors";
import { nowIso } from "../lib/ids";
import { log, setLogLevel } from "../lib/log";
import { renderAiResponse, renderConversation, renderMessage } from "../schemas";
import { Heartbeat, ListenerSet } from "./listeners";
import { classifyModelError, getModelClient, streamChat, TurnFailure } from "./model";
import { encodeFrame, frameId, parseFrameId } from "./sse";
import { TurnJournal } from "./turn-journal";
import { TurnQueue } from "./turn-queue";
import {
  acceptTurn,
  checkpointTurn,
  finishTurn,
  highestOrder,
  loadHistory,
  type HistoryMessage,
  loadTurn,
  markInterrupted,
  newTurnRows,
  type TurnRows,
} from "./turn-store";

const CHECKPOINT_INTERVAL_MS = 2_000;

export interface TurnRequest {
  conversation: Conversation;
  isNewConversation: boolean;
  content: string;
  replyTo: string | null;
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

export type SubmitOutcome =
  | { kind: "rejected"; code: ErrorCode; message: string; headers?: Record<string, string> }
  | { kind: "stream"; stream: ReadableStream<Uint8Array> }
  | { kind: "result"; result: TurnResult };

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

/** A turn this object holds in memory, from acceptance until its reply is stored. */
interface LiveTurn {
  rows: TurnRows;
  systemPrompt: string | null;
  /** The history read with the accept batch, when no earlier turn could still change it. */
  history: HistoryMessage[] | null;
  /** Delta frames sent so far, with the reply length after each: replayed to late listeners. */
  frames: { end: number; bytes: Uint8Array }[];
  listeners: ListenerSet;
  abort: AbortController;
  failure: TurnFailure | null;
  /** Resolves true once the user message and the Generating response are committed to D1. */
  accepted: PromiseWithResolvers<boolean>;
  isAccepted: boolean;
  finished: PromiseWithResolvers<void>;
}

/**
 * One object per conversation owns that conversation's write path: it assigns message orders,
 * runs the model turns one at a time, and fans the streamed reply out to SSE listeners.
 *
 * Its own SQLite (the journal) holds the order counter, the turns not yet finished, and the text
 * of the reply in flight, so a restart can tell what was streamed (see `recover`).
 */
export class ConversationObject extends DurableObject<Env> {
  readonly #journal = new TurnJournal(this.ctx.storage.sql);
  readonly #queue = new TurnQueue();
  readonly #turns = new Map<string, LiveTurn>();
  readonly #heartbeat = new Heartbeat(() => [...this.#turns.values()].map((t) => t.listeners));
  /** Resolved once the order counter exists in this object's storage. */
  #orderReady: Promise<void> | undefined;
  /** The turn whose reply is being generated. */
  #current: LiveTurn | null = null;
  #alarmSet = false;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    setLogLevel(env.LOG_LEVEL);
    if (this.#journal.hasCounter()) this.#orderReady = Promise.resolve();
    this.#recover();
  }

  /** Accepts a user message, reserves its order and its reply's, and queues the reply. */
  async submitTurn(request: TurnRequest, mode: "json" | "sse"): Promise<SubmitOutcome> {
    const { conversation, isNewConversation, idempotency } = request;
    const usedBefore = this.#journal.hasCounter();
    await (this.#orderReady ??= this.#initCounter(isNewConversation ? null : conversation.id));

    // From here to the enqueue below nothing awaits: concurrent submissions cannot interleave,
    // so every turn gets a distinct (n, n+1), the queue runs turns in the order reserved, and of
    // concurrent requests with one Idempotency-Key exactly one gets past this check.
    if (idempotency) {
      const previous = this.#journal.findIdempotent(conversation.userId, idempotency.key);
      if (previous) return this.#replay(conversation.id, previous.aiMessageId, previous.requestHash !== idempotency.requestHash, mode);
      // A new conversation's object is named after the key, so a used object means the key is older than 24 h.
      if (isNewConversation && usedBefore) return KEY_REUSED;
    }
    const maxQueued = getConfig(this.env).maxQueuedTurns;
    if (this.#turns.size >= maxQueued) {
      return { kind: "rejected", code: "rate_limited", message: `This conversation already has ${maxQueued} replies waiting; wait for them to finish.`, headers: { "Retry-After": "5" } };
    }
    const userOrder = this.#journal.reserveOrders();
    // With no earlier turn unfinished, the history cannot change before this turn starts, so it
    // is read in the accept batch: one D1 round trip less before the first token.
    const readHistoryNow = this.#turns.size === 0;
    const rows = newTurnRows(conversation, request.content, request.replyTo, userOrder);
    this.#journal.open(rows.aiMessage.id, rows.aiResponse.id);
    if (idempotency) this.#journal.rememberIdempotent(conversation.userId, idempotency.key, { requestHash: idempotency.requestHash, aiMessageId: rows.aiMessage.id });
    const turn: LiveTurn = {
      rows,
      systemPrompt: conversation.systemPrompt,
      history: null,
      frames: [],
      listeners: new ListenerSet(),
      abort: new AbortController(),
      failure: null,
      accepted: Promise.withResolvers<boolean>(),
      isAccepted: false,
      finished: Promise.withResolvers<void>(),
    };
    this.#turns.set(rows.aiMessage.id, turn);
    this.#queue
      .enqueue(() => this.#generate(turn))
      .catch((error) => log.error("turn crashed", error, { ai_message_id: rows.aiMessage.id }));
    this.#ensureAlarm();

    try {
      turn.history = await acceptTurn(getDb(this.env), rows, isNewConversation, readHistoryNow);
    } catch (error) {
      this.#turns.delete(rows.aiMessage.id);
      this.#journal.close(rows.aiMessage.id);
      if (idempotency) this.#journal.forgetIdempotent(conversation.userId, idempotency.key);
      turn.accepted.resolve(false);
      log.error("accepting a turn failed", error, { conversation_id: conversation.id });
      return STORE_FAILED;
    }
    turn.isAccepted = true;
    turn.accepted.resolve(true);

    if (mode === "sse") return { kind: "stream", stream: this.#listen(turn, "start") };
    await turn.finished.promise;
    return { kind: "result", result: this.#result(turn) };
  }

  /**
   * Attaches to a reply. With `lastEventId` (`<ai message id>:<offset>`) it resumes that reply
   * after the offset, from memory while it is in flight or from D1 once it is stored; without,
   * it attaches to the reply in flight. Null when there is nothing to attach to.
   */
  async attach(conversationId: string, lastEventId: string | null): Promise<ReadableStream<Uint8Array> | null> {
    if (lastEventId === null) {
      const next = this.#current ?? this.#acceptedTurns().sort((a, b) => a.rows.userMessage.order - b.rows.userMessage.order)[0];
      return next ? this.#listen(next, "start") : null;
    }
    const position = parseFrameId(lastEventId);
    if (!position) return null;
    const live = this.#turns.get(position.aiMessageId);
    if (live?.isAccepted) return this.#listen(live, position.offset === "end" ? "start" : position.offset);

    const stored = await loadTurn(getDb(this.env), conversationId, position.aiMessageId);
    if (!stored) return null;
    return framesStream(this.#storedFrames(stored, position.offset === "end" ? stored.aiMessage.content.length : position.offset));
  }

  /** A request repeating an Idempotency-Key: the original turn's result, live or stored. */
  async #replay(conversationId: string, aiMessageId: string, bodyDiffers: boolean, mode: "json" | "sse"): Promise<SubmitOutcome> {
    if (bodyDiffers) return KEY_REUSED;
    const live = this.#turns.get(aiMessageId);
    if (live) {
      if (!(await live.accepted.promise)) return STORE_FAILED;
      if (mode === "sse") return { kind: "stream", stream: this.#listen(live, "start") };
      await live.finished.promise;
      return { kind: "result", result: this.#result(live) };
    }
    const stored = await loadTurn(getDb(this.env), conversationId, aiMessageId);
    if (!stored) return STORE_FAILED;
    if (mode === "sse") return { kind: "stream", stream: framesStream(this.#storedFrames(stored, "start")) };
    return { kind: "result", result: this.#result({ rows: stored, failure: storedFailure(stored) }) };
  }

  /** The frames of a stored reply after `from` (a character offset, or from its message frame). */
  #storedFrames(rows: TurnRows, from: number | "start"): Uint8Array[] {
    const text = rows.aiMessage.content;
    const offset = from === "start" ? 0 : from;
    const frames = from === "start" ? [this.#messageFrame(rows)] : [];
    if (offset < text.length) frames.push(encodeFrame("delta", frameId(rows.aiMessage.id, text.length), { content: text.slice(offset) }));
    frames.push(this.#finalFrame(this.#result({ rows, failure: storedFailure(rows) })));
    return frames;
  }

  /** Stops the reply in flight; it is stored as Error `cancelled` with the text so far. */
  async cancel(): Promise<TurnResult | null> {
    const current = this.#current;
    if (!current) return null;
    current.abort.abort(new TurnFailure("cancelled", "cancelled"));
    await current.finished.promise;
    return this.#result(current);
  }

  override async alarm(): Promise<void> {
    // Waking up runs the constructor, and with it `recover`; keep waking while turns are pending.
    this.#alarmSet = false;
    if (this.#turns.size > 0) this.#ensureAlarm();
  }

  /** An alarm after the longest a turn can take, so a restart mid-turn is recovered even if no request comes. */
  #ensureAlarm(): void {
    if (this.#alarmSet) return;
    this.#alarmSet = true;
    void this.ctx.storage.setAlarm(Date.now() + getConfig(this.env).model.timeoutMs + 60_000);
  }

  /** Starts the counter after the highest order in D1 (none for a conversation this object creates). */
  async #initCounter(conversationId: string | null): Promise<void> {
    try {
      const highest = conversationId ? await highestOrder(getDb(this.env), conversationId) : 0;
      this.#journal.initCounter(highest + 1);
    } catch (error) {
      this.#orderReady = undefined;
      throw error;
    }
  }

  #acceptedTurns(): LiveTurn[] {
    return [...this.#turns.values()].filter((t) => t.isAccepted);
  }

  async #generate(turn: LiveTurn): Promise<void> {
    const { rows } = turn;
    const db = getDb(this.env);
    const config = getConfig(this.env).model;
    const signal = turn.abort.signal;
    if (!(await turn.accepted.promise)) return;
    this.#current = turn;

    let text = "";
    let lastActivity = Date.now();
    let lastCheckpoint = Date.now();
    let checkpoint: Promise<void> = Promise.resolve();
    let checkpointInFlight = false;
    const overall = setTimeout(
      () => turn.abort.abort(new TurnFailure("upstream_timeout", `The model did not finish within ${config.timeoutMs / 1000} s.`)),
      config.timeoutMs,
    );
    // One timer, re-armed only when it fires early: cheaper than resetting it on every token.
    let idleTimer: ReturnType<typeof setTimeout>;
    const watchIdle = () => {
      const idleFor = Date.now() - lastActivity;
      if (idleFor >= config.idleTimeoutMs) {
        turn.abort.abort(new TurnFailure("upstream_timeout", `The model sent nothing for ${config.idleTimeoutMs / 1000} s.`));
      } else {
        idleTimer = setTimeout(watchIdle, config.idleTimeoutMs - idleFor);
      }
    };
    idleTimer = setTimeout(watchIdle, config.idleTimeoutMs);

    try {
      if (signal.aborted) throw signal.reason;
      const history = turn.history ?? (await loadHistory(db, rows.conversation.id, rows.userMessage.order));
      const messages = turn.systemPrompt ? [{ role: "system" as const, content: turn.systemPrompt }, ...history] : history;
      for await (const event of streamChat(getModelClient(getConfig(this.env)), rows.aiResponse.model, messages, signal)) {
        lastActivity = Date.now();
        if (event.type === "model") {
          // The upstream's own name for the model that answered, e.g. a dated snapshot.
          rows.aiResponse.model = event.model;
          continue;
        }
        if (event.type === "usage") {
          rows.aiResponse.promptTokens = event.promptTokens;
          rows.aiResponse.completionTokens = event.completionTokens;
          rows.aiResponse.totalTokens = event.totalTokens;
          continue;
        }
        rows.aiResponse.firstTokenAt ??= new Date(lastActivity).toISOString();
        text += event.content;
        this.#journal.append(rows.aiMessage.id, event.content);
        const bytes = encodeFrame("delta", frameId(rows.aiMessage.id, text.length), { content: event.content });
        turn.frames.push({ end: text.length, bytes });
        turn.listeners.send(bytes);
        // Checkpoints go to D1 in the background, one at a time; the token loop never waits on them.
        if (!checkpointInFlight && lastActivity - lastCheckpoint >= CHECKPOINT_INTERVAL_MS) {
          checkpointInFlight = true;
          lastCheckpoint = lastActivity;
          checkpoint = checkpointTurn(db, rows, text)
            .catch((error) => log.error("checkpoint failed", error, { ai_message_id: rows.aiMessage.id }))
            .finally(() => (checkpointInFlight = false));
        }
      }
      if (signal.aborted) throw signal.reason;
      if (text.length === 0) throw new TurnFailure("empty_reply", "The model returned an empty reply.");
    } catch (error) {
      turn.failure = classifyModelError(error, signal);
      if (!(error instanceof TurnFailure) && turn.failure.code !== "cancelled") {
        log.warn("model call failed", { code: turn.failure.code, error: String(error), ai_message_id: rows.aiMessage.id });
      }
    } finally {
      clearTimeout(overall);
      clearTimeout(idleTimer!);
    }

    const finishedAt = nowIso();
    rows.aiMessage.content = text;
    rows.conversation.updatedAt = finishedAt;
    Object.assign(rows.aiResponse, {
      responseContent: text,
      status: turn.failure ? "Error" : "Completed",
      errorCode: turn.failure?.code ?? null,
      errorMessage: turn.failure?.message ?? null,
      completedAt: finishedAt,
    });
    // A checkpoint landing after the final write would put back an older text.
    await checkpoint;
    try {
      await finishTurn(db, rows);
      this.#journal.close(rows.aiMessage.id);
    } catch (error) {
      // The turn stays in this object's storage; the next start marks it interrupted.
      log.error("storing a reply failed", error, { ai_message_id: rows.aiMessage.id });
    }
    log.info("model call", {
      model: rows.aiResponse.model,
      outcome: turn.failure?.code ?? "completed",
      prompt_tokens: rows.aiResponse.promptTokens,
      completion_tokens: rows.aiResponse.completionTokens,
      ttft_ms: rows.aiResponse.firstTokenAt ? Date.parse(rows.aiResponse.firstTokenAt) - Date.parse(rows.aiResponse.createdAt) : null,
      conversation_id: rows.conversation.id,
    });
    this.#turns.delete(rows.aiMessage.id);
    this.#current = null;
    turn.listeners.close(this.#finalFrame(this.#result(turn)));
    turn.finished.resolve();
  }

  #listen(turn: LiveTurn, after: number | "start"): ReadableStream<Uint8Array> {
    const initial =
      after === "start" ? [this.#messageFrame(turn.rows), ...turn.frames.map((f) => f.bytes)] : turn.frames.filter((f) => f.end > after).map((f) => f.bytes);
    this.#heartbeat.ensureRunning();
    return turn.listeners.add(initial);
  }

  #messageFrame(rows: TurnRows): Uint8Array {
    return encodeFrame("message", frameId(rows.aiMessage.id, 0), {
      conversation: renderConversation(rows.conversation),
      user_message: renderMessage(rows.userMessage, rows.aiResponse.status),
      ai_message: renderMessage(rows.aiMessage),
    });
  }

  #finalFrame({ ai_message, ai_response, failure }: TurnResult): Uint8Array {
    const id = frameId(ai_message.id, "end");
    return failure ? encodeFrame("error", id, { ...failure, ai_message, ai_response }) : encodeFrame("done", id, { ai_message, ai_response });
  }

  #result({ rows, failure }: Pick<LiveTurn, "rows" | "failure">): TurnResult {
    return {
      conversation: renderConversation(rows.conversation),
      user_message: renderMessage(rows.userMessage, rows.aiResponse.status),
      ai_message: renderMessage(rows.aiMessage),
      ai_response: renderAiResponse(rows.aiResponse),
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
    this.#queue
      .enqueue(async () => {
        const db = getDb(this.env);
        const at = nowIso();
        for (const { aiMessageId, aiResponseId, text } of unfinished) {
          await markInterrupted(db, aiMessageId, aiResponseId, text, at);
          this.#journal.close(aiMessageId);
        }
      })
      // What is left in the journal is tried again at the next start.
      .catch((error) => log.error("recovering interrupted turns failed", error));
  }
}
