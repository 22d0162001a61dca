import type { AppConfig } from "../http/config";
import { log } from "../lib/log";
import { type ContextSelection, RETRY_TIGHTENING, selectContext } from "./context-window";
import type { LiveTurn } from "./live-turn";
import { classifyModelError, isContextLengthError, streamChat, TurnFailure } from "../model/model";
import { withFileParts } from "./file-parts";
import type { TurnJournal } from "./turn-journal";
import { Watchdog } from "./watchdog";

/** Chooses what of the turn's branch fits `tighten` of the model's window, and records it on the response. */
export function chooseContext(turn: LiveTurn, config: AppConfig, tighten: number): ContextSelection {
  const selection = selectContext(turn.systemPrompt, turn.branch!, turnBudget(turn, config), tighten);
  if (!selection) throw new TurnFailure("context_length_exceeded", "The message does not fit in the model's context window.");
  turn.selection = selection;
  Object.assign(turn.rows.aiResponse, {
    contextFirstOrder: selection.window.firstOrder,
    contextMessages: selection.window.messages,
    contextSummaryThroughOrder: selection.window.summaryThroughOrder,
  });
  return selection;
}

/** The model's window, and the output allowance the turn asked for (at most the model's own). */
function turnBudget(turn: LiveTurn, config: AppConfig) {
  const budget = config.modelBudget(turn.model);
  return { ...budget, maxOutputTokens: Math.min(budget.maxOutputTokens, turn.rows.aiResponse.maxOutputTokens ?? Infinity) };
}

/** Calls the model for a turn whose branch is set and fans its deltas out; any failure ends up in `turn.failure`. */
export async function streamReply(turn: LiveTurn, config: AppConfig, journal: TurnJournal, files: R2Bucket): Promise<void> {
  const { rows } = turn;
  const signal = turn.abort.signal;
  const watchdog = new Watchdog(turn.abort, config.model);
  try {
    if (signal.aborted) throw signal.reason;
    try {
      await callModel(turn, turn.selection ?? chooseContext(turn, config, 1), config, journal, watchdog, files);
    } catch (error) {
      // The provider counted more than we did: once more, with room to spare.
      if (!isContextLengthError(error) || turn.text.length > 0) throw error;
      log.warn("prompt too long for the provider; retrying with a tighter budget", { ai_message_id: rows.aiMessage.id, model: turn.model });
      await callModel(turn, chooseContext(turn, config, RETRY_TIGHTENING), config, journal, watchdog, files);
    }
    if (signal.aborted) throw signal.reason;
    // A stream cut off in transit can end cleanly: only a finish reason says the reply is whole.
    if (!rows.aiResponse.finishReason) throw new TurnFailure("upstream_error", "The model's stream ended early.");
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

/** One model call with the prompt of `selection`. */
async function callModel(turn: LiveTurn, selection: ContextSelection, config: AppConfig, journal: TurnJournal, watchdog: Watchdog, files: R2Bucket): Promise<void> {
  const { aiResponse, aiMessage } = turn.rows;
  const { maxOutputTokens } = turnBudget(turn, config);
  aiResponse.maxOutputTokens = maxOutputTokens;
  aiResponse.attempts ??= [];
  const attempts = aiResponse.attempts;
  // Files are read only now, when the model is called: a turn without them reads nothing.
  const prompt = await withFileParts(selection.prompt, files, turn.rows.conversation.userId);
  for await (const event of streamChat(config, config.modelEntry(turn.model), prompt, maxOutputTokens, turn.abort.signal, attempts, () => watchdog.touch())) {
    const now = watchdog.touch();
    if (event.type === "open") {
      aiResponse.provider = event.provider;
      turn.streaming();
    } else if (event.type === "model") {
      // The upstream's own name for the model that answered, e.g. a dated snapshot.
      aiResponse.model = event.model;
    } else if (event.type === "finish") {
      aiResponse.finishReason = event.reason;
    } else if (event.type === "usage") {
      aiResponse.promptTokens = event.promptTokens;
      aiResponse.completionTokens = event.completionTokens;
      aiResponse.totalTokens = event.totalTokens;
    } else {
      aiResponse.firstTokenAt ??= new Date(now).toISOString();
      const offset = turn.text.length;
      const fits = turn.addDelta(event.content, config.maxReplyBytes);
      journal.append(aiMessage.id, turn.text.slice(offset));
      if (!fits) {
        // As long as a reply may be stored: it ends here, as if the model's allowance had.
        aiResponse.finishReason = "length";
        return;
      }
    }
  }
}
