import type { Message, MessagePart } from "../db/schema";
import { ApiError } from "../http/errors";
import { isResolved, isToolCall, partsOf, waitingCalls } from "../rules/message-parts";
import { fittedOutput, type ToolAnswers, type ToolSpec } from "../rules/tool-rules";

/* Turns that wait for the client (RequiresAction): what they keep, and the answers that let them go on. */

/** What a waiting turn needs to go on, kept in the object's SQLite so it survives restarts. */
export interface WaitingTurn {
  /** Where its frames ended when it stopped: a continuation's stream starts there. */
  position: number;
  tools: ToolSpec;
  /** The model the turn asked for (the response's `model` is the name the upstream answered with). */
  model: string;
}

/** Stored beside the journal: one row per waiting turn. */
export class WaitingTurns {
  constructor(private readonly sql: SqlStorage) {
    sql.exec(`CREATE TABLE IF NOT EXISTS waiting_turns (ai_message_id TEXT PRIMARY KEY, position INTEGER NOT NULL, tools TEXT NOT NULL, model TEXT NOT NULL)`);
  }

  save(aiMessageId: string, { position, tools, model }: WaitingTurn): void {
    this.sql.exec(`INSERT OR REPLACE INTO waiting_turns (ai_message_id, position, tools, model) VALUES (?, ?, ?, ?)`, aiMessageId, position, JSON.stringify(tools), model);
  }

  get(aiMessageId: string): WaitingTurn | null {
    const [row] = this.sql.exec<{ position: number; tools: string; model: string }>(`SELECT position, tools, model FROM waiting_turns WHERE ai_message_id = ?`, aiMessageId).toArray();
    return row ? { position: row.position, tools: JSON.parse(row.tools) as ToolSpec, model: row.model } : null;
  }

  delete(aiMessageId: string): void {
    this.sql.exec(`DELETE FROM waiting_turns WHERE ai_message_id = ?`, aiMessageId);
  }
}

const notWaiting = (id: string, what: string) => new ApiError("conflict", `The tool call ${id} is not ${what}.`, { details: { tool_call_id: id } });

/**
 * The parts with the client's answers applied: outputs (fitted to `limits`) and errors
 * for calls awaiting an output, approvals (the call runs next) and denials for calls awaiting
 * one. Any answer for a call that does not wait for it is a 409, and nothing is applied.
 */
export function answered(parts: readonly MessagePart[], { outputs, approvals }: ToolAnswers, limits: { maxOutputBytes: number; maxReplyBytes: number }): MessagePart[] {
  const next = structuredClone(parts) as MessagePart[];
  const calls = new Map(next.filter(isToolCall).map((call) => [call.id, call]));
  for (const answer of outputs) {
    const call = calls.get(answer.toolCallId);
    if (call?.status !== "awaiting_output") throw notWaiting(answer.toolCallId, "awaiting an output");
    Object.assign(call, "output" in answer ? { status: "completed", output: fittedOutput(answer.output, next, limits) } : { status: "error", error: answer.error });
  }
  for (const { toolCallId, approved, reason } of approvals) {
    const call = calls.get(toolCallId);
    if (call?.status !== "awaiting_approval") throw notWaiting(toolCallId, "awaiting an approval");
    Object.assign(call, approved ? { status: "running" } : { status: "denied", error: reason ?? "No reason given." });
  }
  return next;
}

/** The parts with every unanswered call given `error` (a call never stays without a result in the history). */
export const closedCalls = (parts: readonly MessagePart[], error: string): MessagePart[] =>
  parts.map((part) => (isToolCall(part) && !isResolved(part) ? { ...part, status: "error", error } : part));

/** Only the answers to calls that wait for them. */
export function answersToWaiting({ outputs, approvals }: ToolAnswers, message: Pick<Message, "content" | "parts">): ToolAnswers {
  const waiting = new Map(waitingCalls(partsOf(message)).map((call) => [call.id, call.status]));
  return {
    outputs: outputs.filter((answer) => waiting.get(answer.toolCallId) === "awaiting_output"),
    approvals: approvals.filter((answer) => waiting.get(answer.toolCallId) === "awaiting_approval"),
  };
}
