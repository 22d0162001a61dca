import type { AppConfig } from "../http/config";
import { log } from "../lib/log";
import { type ContextSelection, estimateTokens, RETRY_TIGHTENING, selectContext } from "./context-window";
import type { LiveTurn } from "./live-turn";
import { classifyModelError, isContextLengthError, streamChat, type ToolOffer, TurnFailure } from "../model/model";
import { withFileParts } from "./file-parts";
import { Toolbox } from "./toolbox";
import { fittedOutput, textRoom } from "../rules/tool-rules";
import type { TurnJournal } from "./turn-journal";
import { Watchdog } from "./watchdog";

/**
 * Chooses what of the turn's branch (and its reply so far) fits `tighten` of the model's window,
 * beside `toolTokens` of tool definitions, and records it on the response.
 */
export function chooseContext(turn: LiveTurn, config: AppConfig, tighten: number, toolTokens = 0): ContextSelection {
  const budget = turnBudget(turn, config);
  const selection = selectContext(turn.systemPrompt, turn.branch!, { ...budget, contextTokens: budget.contextTokens - toolTokens }, tighten, turn.parts);
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

/** Where the engine writes a run's progress: the parts so far, committed before a tool runs and before the next step. */
export type Checkpoint = () => void;

/**
 * Runs the turn's steps until it ends in text, fails, or waits for the client (`turn.parked`):
 * each step is one model call; its server tool calls run at once, all of a step's in parallel,
 * and the next step follows with their results. Any failure ends up in `turn.failure`.
 */
export async function runSteps(turn: LiveTurn, config: AppConfig, journal: TurnJournal, files: R2Bucket, checkpoint: Checkpoint): Promise<void> {
  const signal = turn.abort.signal;
  try {
    const toolbox = await Toolbox.open(config, turn.tools);
    for (;;) {
      if (signal.aborted) throw signal.reason;
      await runServerCalls(turn, toolbox, config, checkpoint);
      if (turn.awaitingClient()) {
        turn.parked = true;
        return;
      }
      // A step that called no tool ended the turn (or none ran yet).
      if (turn.step >= 0 && turn.calls().length === 0) return;
      const step = turn.beginStep();
      const offer = toolbox.offer(step === config.tools.maxSteps - 1);
      await streamStep(turn, config, journal, files, offer);
      if (signal.aborted) throw signal.reason;
      const calls = offer?.choice === "none" ? [] : turn.streamedCalls.filter((call) => call.name);
      if (calls.length) {
        // Some servers stream calls without ids: the history needs one to pair each result with its call.
        turn.addCalls(calls.map((call) => toolbox.classify({ ...call, id: call.id || `call_${crypto.randomUUID()}` }, step)));
        checkpoint();
        continue;
      }
      // A stream cut off in transit can end cleanly: only a finish reason says the reply is whole.
      if (!turn.rows.aiResponse.finishReason) throw new TurnFailure("upstream_error", "The model's stream ended early.");
      if (!turn.parts.some((part) => part.type === "text" && part.step === step && part.text)) throw new TurnFailure("empty_reply", "The model returned an empty reply.");
    }
  } catch (error) {
    turn.failure = classifyModelError(error, signal);
    if (!(error instanceof TurnFailure) && turn.failure.code !== "cancelled") {
      log.warn("model call failed", { code: turn.failure.code, error: String(error), ai_message_id: turn.rows.aiMessage.id });
    }
  }
}

/** The step's server calls that may run, all at once; each result is committed as it comes (a restart keeps it). */
async function runServerCalls(turn: LiveTurn, toolbox: Toolbox, config: AppConfig, checkpoint: Checkpoint): Promise<void> {
  const running = turn.calls().filter((call) => call.executor === "server" && call.status === "running");
  const limits = { maxOutputBytes: config.tools.maxOutputBytes, maxReplyBytes: config.maxReplyBytes };
  await Promise.all(
    running.map(async (call) => {
      const result = await toolbox.run(call, turn.abort.signal);
      // Fitted as it comes: parallel outputs together never make the reply too large to store.
      turn.resolve(call.id, result.output === undefined ? result : { ...result, output: fittedOutput(result.output, turn.parts, limits) });
      checkpoint();
    }),
  );
}

/** One model call, within its own time limits; once more with a tighter window if the provider found the prompt too long before answering. */
async function streamStep(turn: LiveTurn, config: AppConfig, journal: TurnJournal, files: R2Bucket, offer: ToolOffer | undefined): Promise<void> {
  const watchdog = new Watchdog(turn.abort, config.model);
  const { aiResponse } = turn.rows;
  aiResponse.finishReason = null;
  const usage = { counted: false };
  const position = turn.position;
  // A reply that may hold tool calls stores its text twice: it gets half the room, less its calls.
  const textLimit = offer || turn.step > 0 ? textRoom(turn.parts, config.maxReplyBytes) : config.maxReplyBytes;
  const toolTokens = offer ? estimateTokens(JSON.stringify(offer.tools)) : 0;
  try {
    try {
      // The window chosen at acceptance serves a first step offered no tools; the tools' definitions
      // take room of their own, and each later step holds the calls and results before it.
      const selection = turn.step === 0 && !offer && turn.selection ? turn.selection : chooseContext(turn, config, 1, toolTokens);
      await callModel(turn, selection, config, journal, watchdog, files, { offer, textLimit }, usage);
    } catch (error) {
      if (!isContextLengthError(error) || turn.position > position) throw error;
      log.warn("prompt too long for the provider; retrying with a tighter budget", { ai_message_id: turn.rows.aiMessage.id, model: turn.model });
      await callModel(turn, chooseContext(turn, config, RETRY_TIGHTENING, toolTokens), config, journal, watchdog, files, { offer, textLimit }, usage);
    }
  } finally {
    watchdog.stop();
    chargeEstimate(turn, usage.counted, position);
  }
}

/**
 * A step that streamed and got no usage from the provider (cancelled, cut off, failed after its
 * first token) is charged our estimate: the prompt as counted for its window plus what it
 * streamed, marked as estimated. The provider bills a reply it started either way.
 */
function chargeEstimate(turn: LiveTurn, counted: boolean, position: number): void {
  const { aiResponse } = turn.rows;
  if (counted || turn.position === position || !turn.selection) return;
  const streamed = turn.parts
    .filter((part) => part.step === turn.step)
    .map((part) => (part.type === "tool_call" ? part.name + part.arguments : part.text))
    .join("");
  const completionTokens = estimateTokens(streamed);
  addUsage(turn, turn.selection.promptTokens, completionTokens, null);
  aiResponse.usageEstimated = true;
}

function addUsage({ rows: { aiResponse } }: LiveTurn, promptTokens: number, completionTokens: number, reasoningTokens: number | null): void {
  aiResponse.promptTokens = (aiResponse.promptTokens ?? 0) + promptTokens;
  aiResponse.completionTokens = (aiResponse.completionTokens ?? 0) + completionTokens;
  aiResponse.totalTokens = (aiResponse.totalTokens ?? 0) + promptTokens + completionTokens;
  if (reasoningTokens !== null) aiResponse.reasoningTokens = (aiResponse.reasoningTokens ?? 0) + reasoningTokens;
}

/** One model call with the prompt of `selection`. */
async function callModel(
  turn: LiveTurn,
  selection: ContextSelection,
  config: AppConfig,
  journal: TurnJournal,
  watchdog: Watchdog,
  files: R2Bucket,
  { offer, textLimit }: { offer: ToolOffer | undefined; textLimit: number },
  usage: { counted: boolean },
): Promise<void> {
  const { aiResponse, aiMessage } = turn.rows;
  const { maxOutputTokens } = turnBudget(turn, config);
  aiResponse.maxOutputTokens = maxOutputTokens;
  aiResponse.attempts ??= [];
  const attempts = aiResponse.attempts;
  // Files are read only now, when the model is called: a turn without them reads nothing.
  const prompt = await withFileParts(selection.prompt, files, turn.rows.conversation.userId);
  for await (const event of streamChat(config, config.modelEntry(turn.model), prompt, maxOutputTokens, turn.abort.signal, attempts, () => watchdog.touch(), offer)) {
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
      usage.counted = true;
      addUsage(turn, event.promptTokens, event.completionTokens, event.reasoningTokens);
    } else if (event.type === "tool_call") {
      const call = (turn.streamedCalls[event.index] ??= { id: "", name: "", arguments: "" });
      call.id ||= event.id ?? "";
      call.name ||= event.name ?? "";
      call.arguments += event.arguments ?? "";
    } else if (event.type === "reasoning") {
      aiResponse.firstTokenAt ??= new Date(now).toISOString();
      turn.addReasoning(event.content);
    } else {
      aiResponse.firstTokenAt ??= new Date(now).toISOString();
      const offset = turn.text.length;
      const fits = turn.addDelta(event.content, textLimit);
      journal.append(aiMessage.id, turn.text.slice(offset));
      if (!fits) {
        // As long as a reply may be stored: it ends here, as if the model's allowance had.
        aiResponse.finishReason = "length";
        return;
      }
    }
  }
}
