import { getConfig } from "../http/config";
import { ApiError, type Refusal, toRefusal } from "../http/errors";
import { nowIso } from "../lib/ids";
import { log } from "../lib/log";
import { type Branch, ownMessageTokens } from "./context-window";
import type { ToolAnswerSubmission, TurnSubmission } from "./contract";
import type { ConversationStore } from "./conversation-store";
import { LiveTurn } from "./live-turn";
import { costUsd } from "../model/cost";
import { TurnFailure } from "../model/model";
import type { Outbox } from "./outbox";
import { branchAhead, overBudget, planTurn, spendEstimate, withCommitted } from "./turn-checks";
import type { TurnJournal } from "./turn-journal";
import { type TurnResult, turnResult } from "./frames";
import type { TurnQueue } from "./turn-queue";
import { newTurnRows, type TurnPlan, withParts } from "./turn-rows";
import { chooseContext, runSteps } from "./turn-runner";
import { partsOf, stepsOf, waitingCalls } from "../rules/message-parts";
import { answered, answersToWaiting, closedCalls, type WaitingTurns } from "./waiting-turns";
import { usableSpec } from "../rules/tool-rules";
import type { UserLedger } from "./user-ledger";

const ACCEPT_WRITE_DELAY_MS = 1_000;

const KEY_REUSED = new ApiError("idempotency_key_reused", "This Idempotency-Key was used with a different request, or more than 24 hours ago.");

/**
 * `spend`: the most the accepted turn may spend, when a token budget applies; `branch`: the
 * branch it answers, when it was read for that or for a turn that starts at once.
 */
export type TurnCheck = { kind: "accept"; plan: TurnPlan; spend: number | null; branch: Branch | null } | { kind: "replay"; aiMessageId: string } | Refusal;

/**
 * A turn's life in its conversation object: the checks it passes, the synchronous commit that
 * accepts it, the model call (one turn at a time, through the queue) and the synchronous commit
 * that finishes it. Both commits write the store and nothing else that can fail; D1 follows
 * through the outbox.
 */
export class TurnRunner {
  constructor(
    /** The object's env as it is now: a test may give a running object another. */
    private readonly currentEnv: () => Env,
    private readonly store: ConversationStore,
    private readonly journal: TurnJournal,
    private readonly waiting: WaitingTurns,
    private readonly outbox: Outbox,
    private readonly ledger: UserLedger,
    /** The turns accepted and not yet finished, by AI message id. */
    private readonly turns: Map<string, LiveTurn>,
    private readonly queue: TurnQueue,
    /** Runs once a turn's end is committed: its last frame, its summary. */
    private readonly afterTurn: (turn: LiveTurn) => Promise<void>,
  ) {}

  private get env(): Env {
    return this.currentEnv();
  }

  generating(): LiveTurn | undefined {
    for (const turn of this.turns.values()) if (turn.phase === "generating") return turn;
    return undefined;
  }

  /** Whether the submission can be accepted now: synchronous, so it holds until the caller's next await. */
  check({ userId, ask, create, idempotency, keyNamesConversation, ifBusy, budget }: TurnSubmission): TurnCheck {
    if (idempotency) {
      const previous = this.journal.findIdempotent(userId, idempotency.key);
      if (previous) return previous.requestHash === idempotency.requestHash ? { kind: "replay", aiMessageId: previous.aiMessageId } : toRefusal(KEY_REUSED);
      // This object is named after the key, so a conversation with messages means the key is older than 24 h.
      if (keyNamesConversation && this.store.nextOrder() > 1) return toRefusal(KEY_REUSED);
    }
    const { maxQueuedTurns } = getConfig(this.env);
    if (this.turns.size >= maxQueuedTurns) {
      return toRefusal(
        new ApiError("rate_limited", `This conversation already has ${maxQueuedTurns} replies waiting; wait for them to finish.`, { headers: { "Retry-After": "5" } }),
      );
    }
    if (ifBusy === "reject" && this.turns.size > 0) return toRefusal(new ApiError("busy", "A reply is being generated in this conversation; nothing was stored."));
    try {
      const conversation = this.store.conversation() ?? create!.row;
      const plan = planTurn(this.env, this.store, conversation, ask);
      // Read once: for the budget, and for a turn that starts at once to choose its window.
      const branch = budget || this.turns.size === 0 ? branchAhead(this.store, conversation, plan) : null;
      if (!budget || !branch) return { kind: "accept", plan, spend: null, branch };
      const spend = spendEstimate(branch, conversation, plan, getConfig(this.env).modelEntry((plan.kind === "regenerate" && plan.model) || conversation.modelVersion));
      return overBudget(spend, budget) ?? { kind: "accept", plan, spend, branch };
    } catch (error) {
      if (error instanceof ApiError) return toRefusal(error);
      throw error;
    }
  }

  /**
   * Commits the turn: its orders (the next after the highest in use), its rows, the new current
   * leaf and the Idempotency-Key, in one synchronous step. Then it queues the model call.
   */
  accept(submission: TurnSubmission, plan: TurnPlan, branch: Branch | null): LiveTurn {
    // Turns ahead of this one stop (a running reply keeps its text), then this one runs.
    if (submission.ifBusy === "interrupt") for (const ahead of this.turns.values()) ahead.abort.abort(new TurnFailure("cancelled", "cancelled"));
    const isNew = !this.store.conversation();
    const turn = this.store.commit(() => this.#commitAccepted(submission, plan, branch));
    this.#enqueue(turn);
    // The accept rows are safe in the store. D1 gets them once the model's stream is open, so
    // writing them never competes with sending the request (a reply that ends before then takes
    // them along in its own batch); behind a slow model or queue, after ACCEPT_WRITE_DELAY_MS. A
    // new conversation's at once, so the caller's conversation list shows it.
    const delay = new Promise((resolve) => setTimeout(resolve, ACCEPT_WRITE_DELAY_MS));
    if (isNew) void this.outbox.drain();
    else void Promise.race([turn.whenStreaming(), delay]).then(() => this.outbox.drain());
    return turn;
  }

  #enqueue(turn: LiveTurn): void {
    this.turns.set(turn.rows.aiMessage.id, turn);
    this.queue.enqueue(() => this.#run(turn)).catch((error) => log.error("turn crashed", error, { ai_message_id: turn.rows.aiMessage.id }));
  }

  /** The accept step's writes, in one transaction. */
  #commitAccepted({ userId, create, idempotency, lease }: TurnSubmission, plan: TurnPlan, branch: Branch | null): LiveTurn {
    if (!this.store.conversation()) this.store.adopt({ conversation: create!.row, messages: [], responses: [], summaries: [] }, true);
    // A turn waiting for tool outputs ends first: the history never keeps a call without its result.
    for (const response of this.store.responsesWithStatus("RequiresAction")) this.#closeWaiting(response.aiMessageId);
    const conversation = this.store.conversation()!;
    const rows = newTurnRows(conversation, plan, conversation.currentLeafId, this.store.nextOrder(), conversation.leafVersion + 1);
    this.store.saveConversation(rows.conversation);
    if (rows.isNewUserMessage) this.store.saveMessage(rows.userMessage);
    this.store.saveMessage(rows.aiMessage);
    const turn = new LiveTurn(rows, conversation.systemPrompt, lease, plan.tools);
    if (this.turns.size === 0) {
      // Nothing ahead can change its branch: the window is chosen now, so the first frame says
      // what the model gets. If nothing fits, the turn fails with that when it starts.
      turn.branch = branch ? withCommitted(branch, rows.userMessage) : this.store.branch(rows.userMessage.id);
      try {
        chooseContext(turn, getConfig(this.env), 1);
      } catch {}
    }
    this.store.saveResponse(rows.aiResponse);
    this.ledger.hold(lease, userId, "generation");
    if (idempotency) this.journal.rememberIdempotent(userId, idempotency.key, { requestHash: idempotency.requestHash, aiMessageId: rows.aiMessage.id });
    return turn;
  }

  /**
   * Marks every reply still Generating in the store as cut off: nothing in memory is running it.
   * It keeps its parts as last committed and the text journaled since; a tool call that was
   * running has the error `interrupted`.
   */
  interruptUnfinished(at: string): void {
    this.store.commit(() => {
      for (const response of this.store.responsesWithStatus("Generating")) {
        if (this.turns.has(response.aiMessageId)) continue;
        const message = this.store.message(response.aiMessageId)!;
        const journaled = this.journal.text(response.aiMessageId);
        const parts = closedCalls(partsOf(message), "interrupted");
        if (journaled) parts.push({ type: "text", step: stepsOf(message.parts ?? []), text: journaled });
        this.store.saveMessage(withParts(message, message.content + journaled, parts));
        this.store.saveResponse({ ...response, status: "Error", errorCode: "interrupted", errorMessage: "interrupted", completedAt: at });
        this.journal.close(response.aiMessageId);
      }
    });
  }

  /**
   * Applies the client's answers to a waiting turn, in one synchronous step. With calls still
   * waiting, the answers are stored and the turn keeps waiting; with none, it goes on as a new
   * run of the same AI message (queued like any turn, holding `lease`).
   */
  answer({ aiMessageId, answers, lease, userId, idempotency, onlyWaiting = false }: ToolAnswerSubmission): { turn: LiveTurn; from: number } | { waiting: TurnResult } | { replay: string } {
    if (idempotency) {
      const previous = this.journal.findIdempotent(userId, idempotency.key);
      if (previous?.requestHash === idempotency.requestHash) return { replay: previous.aiMessageId };
      if (previous) throw KEY_REUSED;
    }
    const rows = this.store.turn(aiMessageId);
    if (!rows || rows.aiMessage.sender !== "ai") throw new ApiError("not_found", "Message not found.");
    const waiting = this.waiting.get(aiMessageId);
    if (rows.aiResponse.status !== "RequiresAction" || !waiting) throw new ApiError("conflict", "This reply is not waiting for tool outputs or approvals.");
    if (rows.conversation.status !== "Active") throw new ApiError("conflict", "This conversation is deleted; restore it to go on.");
    const config = getConfig(this.env);
    const parts = answered(partsOf(rows.aiMessage), onlyWaiting ? answersToWaiting(answers, rows.aiMessage) : answers, { maxOutputBytes: config.tools.maxOutputBytes, maxReplyBytes: config.maxReplyBytes });
    return this.store.commit(() => {
      rows.aiMessage = withParts(rows.aiMessage, rows.aiMessage.content, parts);
      this.store.saveMessage(rows.aiMessage);
      if (idempotency) this.journal.rememberIdempotent(userId, idempotency.key, { requestHash: idempotency.requestHash, aiMessageId });
      if (waitingCalls(parts).length) return { waiting: turnResult(rows, null) };
      rows.aiResponse = { ...rows.aiResponse, status: "Generating", finishReason: null, model: waiting.model };
      this.store.saveResponse(rows.aiResponse);
      this.waiting.delete(aiMessageId);
      this.ledger.hold(lease, userId, "generation");
      const turn = new LiveTurn({ ...rows, isNewUserMessage: false }, rows.conversation.systemPrompt, lease, usableSpec(waiting.tools, config.modelEntry(waiting.model)));
      this.#enqueue(turn);
      return { turn, from: waiting.position };
    });
  }

  /** A waiting turn no answer will continue: its open calls get the error "not answered", and it is Completed. */
  #closeWaiting(aiMessageId: string): void {
    const message = this.store.message(aiMessageId)!;
    this.store.saveMessage(withParts(message, message.content, closedCalls(partsOf(message), "not answered")));
    this.store.saveResponse({ ...this.store.response(aiMessageId)!, status: "Completed", completedAt: nowIso() });
    this.waiting.delete(aiMessageId);
  }

  async #run(turn: LiveTurn): Promise<void> {
    turn.generating();
    turn.branch ??= this.store.branch(turn.rows.userMessage.id);
    await runSteps(turn, getConfig(this.env), this.journal, this.env.FILES, () => this.store.commit(() => this.#checkpoint(turn)));
    this.#commitEnd(turn);
    turn.streaming();
    void this.outbox.drain();
    this.afterTurn(turn).catch((error) => log.error("ending a turn failed", error, { ai_message_id: turn.rows.aiMessage.id }));
  }

  /**
   * Commits the turn's end. Should that fail, the end is committed as an Error without the text
   * instead: no frame or result may report a reply that is not stored. (If even that fails, the
   * object is broken; its restart marks the reply interrupted.)
   */
  #commitEnd(turn: LiveTurn): void {
    try {
      this.store.commit(() => this.#finish(turn));
    } catch (error) {
      log.error("storing a finished reply failed", error, { ai_message_id: turn.rows.aiMessage.id, bytes: turn.bytes });
      turn.failure = new TurnFailure("storage_failed", "The reply could not be stored.");
      turn.text = "";
      turn.parts.length = 0;
      this.store.commit(() => this.#finish(turn));
    }
  }

  /**
   * Commits the reply with its outcome and token counts, closes its journal entry and settles its
   * slot, in one synchronous step; the next turn may start at once.
   */
  #finish(turn: LiveTurn): void {
    const { rows, failure } = turn;
    const finishedAt = nowIso();
    const { aiResponse } = rows;
    const userTokens = this.#userMessageTokens(turn);
    this.#price(turn);
    const waits = !failure && turn.parked;
    Object.assign(aiResponse, {
      status: failure ? "Error" : waits ? "RequiresAction" : "Completed",
      errorCode: failure?.code ?? null,
      errorMessage: failure?.message ?? null,
      completedAt: waits ? null : finishedAt,
    });
    // The provider's count of a reply of one step is the message's size; of several, no one number is.
    const tokens = aiResponse.usageEstimated || turn.step > 0 ? null : aiResponse.completionTokens;
    // A call a failure stopped (cancelled, timed out) has that as its error.
    const parts = failure ? closedCalls(turn.parts, failure.message) : turn.parts;
    rows.aiMessage = { ...withParts(this.store.message(rows.aiMessage.id)!, turn.text, parts), tokens };
    this.store.saveMessage(rows.aiMessage);
    if (waits) this.waiting.save(rows.aiMessage.id, { position: turn.position, tools: turn.tools, model: turn.model });
    const userMessage = this.store.message(rows.userMessage.id);
    // Only while the message still holds the text that was counted: an edit clears the count.
    if (userTokens !== null && userMessage?.content === rows.userMessage.content) this.store.saveMessage({ ...userMessage, tokens: userTokens });
    this.store.saveResponse(aiResponse);
    rows.conversation = { ...this.store.conversation()!, updatedAt: finishedAt };
    this.store.saveConversation(rows.conversation);
    this.journal.close(rows.aiMessage.id);
    this.ledger.settle(turn.lease, (aiResponse.totalTokens ?? 0) - turn.spentBefore.tokens, (aiResponse.costUsd ?? 0) - turn.spentBefore.costUsd);
    this.turns.delete(rows.aiMessage.id);
    log.info("model call", {
      model: aiResponse.model,
      provider: aiResponse.provider,
      attempts: aiResponse.attempts?.length ?? 0,
      failovers: aiResponse.attempts?.filter((attempt) => attempt.outcome !== "ok").length ?? 0,
      cost_usd: aiResponse.costUsd,
      outcome: failure?.code ?? "completed",
      finish_reason: aiResponse.finishReason,
      prompt_tokens: aiResponse.promptTokens,
      completion_tokens: aiResponse.completionTokens,
      ttft_ms: aiResponse.firstTokenAt ? Date.parse(aiResponse.firstTokenAt) - Date.parse(aiResponse.createdAt) : null,
      conversation_id: rows.conversation.id,
    });
  }

  /** The reply's parts so far, committed (and the journal's text with them): a restart keeps every step that ended. */
  #checkpoint(turn: LiveTurn): void {
    const { rows } = turn;
    this.#price(turn);
    rows.aiMessage = withParts(this.store.message(rows.aiMessage.id)!, turn.text, turn.parts);
    this.store.saveMessage(rows.aiMessage);
    this.store.saveResponse(rows.aiResponse);
    this.journal.close(rows.aiMessage.id);
  }

  /** What the reply costs at its model's prices, from its usage (the providers' counts, or our estimates). */
  #price({ rows: { aiResponse }, model }: LiveTurn): void {
    const { price } = getConfig(this.env).modelEntry(model);
    aiResponse.costUsd = aiResponse.promptTokens === null ? null : costUsd(price, aiResponse.promptTokens, aiResponse.completionTokens ?? 0);
  }

  /** The share of the provider's prompt count that is the turn's own, not yet counted, user message. */
  #userMessageTokens({ branch, selection, rows, step, spentBefore }: LiveTurn): number | null {
    const own = branch?.messages.at(-1);
    // Only a reply of one model call has a prompt count that is this message's branch alone.
    if (step > 0 || spentBefore.tokens > 0) return null;
    if (!own || own.id !== rows.userMessage.id || own.tokens !== null || !selection || rows.aiResponse.promptTokens === null) return null;
    return ownMessageTokens(selection, own, rows.aiResponse.promptTokens);
  }
}
