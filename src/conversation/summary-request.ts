import type { ModelBudget } from "../http/config";
import { type BranchMessage, type BranchSummary, estimateTokens, MESSAGE_OVERHEAD_TOKENS, REPLY_PRIMING_TOKENS } from "./context-window";
import type { ChatMessage } from "../model/model";

const INSTRUCTION =
  "You keep a running summary of a conversation between a user and an assistant, for the assistant to read " +
  "instead of the messages it summarises. Rewrite the summary so far to also cover the new messages. Keep " +
  "names, facts, numbers, decisions, the user's preferences and open questions; drop pleasantries. Answer " +
  "with the summary only, in the language of the conversation.";

export interface SummaryRequest {
  /** Text only: files are not summarised. */
  prompt: (ChatMessage & { content: string })[];
  maxTokens: number;
  /** The last message the new summary covers. */
  through: BranchMessage;
}

/** A summary may take an eighth of the window, at most 512 tokens. */
export const summaryTokenLimit = (budget: ModelBudget) => Math.min(512, Math.floor(budget.contextTokens / 8));

/**
 * The request that folds `dropped` (oldest first) into `previous`. When they do not all fit in
 * one request, it covers as many of the oldest as fit: the rest is folded in by a later one.
 * Null when not even the first fits.
 */
export function summaryRequest(previous: BranchSummary | null, dropped: BranchMessage[], budget: ModelBudget): SummaryRequest | null {
  const maxTokens = summaryTokenLimit(budget);
  let room =
    budget.contextTokens - maxTokens - REPLY_PRIMING_TOKENS - 2 * MESSAGE_OVERHEAD_TOKENS - estimateTokens(INSTRUCTION) - (previous ? estimateTokens(previous.content) : 0) - 20;
  const lines: string[] = [];
  let through: BranchMessage | null = null;
  for (const message of dropped) {
    const line = `${message.role}: ${message.content}`;
    const size = estimateTokens(line) + 1;
    if (size > room) break;
    room -= size;
    lines.push(line);
    through = message;
  }
  if (!through) return null;
  const body = `${previous ? `Summary so far:\n${previous.content}\n\n` : ""}New messages:\n${lines.join("\n")}`;
  return {
    prompt: [
      { role: "system", content: INSTRUCTION },
      { role: "user", content: body },
    ],
    maxTokens,
    through,
  };
}
