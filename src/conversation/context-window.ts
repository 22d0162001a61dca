import type { ModelBudget } from "../http/config";
import type { AttachmentRef, MessagePart } from "../db/schema";
import type { ChatMessage } from "../model/model";
import { replyMessages } from "./reply-messages";

/* What of a branch fits the model's context window. Pure functions: the engine and the routes share them. */

// Chat formats wrap every message in a few tokens of their own (OpenAI's: about 4) and prime
// the reply with 3; counted on top of each message's content.
export const MESSAGE_OVERHEAD_TOKENS = 4;
export const REPLY_PRIMING_TOKENS = 3;
/** The share of the window a retry may use after the provider said the prompt was too long. */
export const RETRY_TIGHTENING = 0.75;

/** A message of the branch a turn answers, root first; the last one is the turn's own user message. */
export interface BranchMessage {
  id: string;
  order: number;
  role: "user" | "assistant";
  content: string;
  /** The size of its content as the provider counted it; null where it has not (yet). */
  tokens: number | null;
  /** A user message's files: the model gets them with it, on every turn of the branch. */
  attachments?: AttachmentRef[] | null;
  /** An AI message's parts when it has tool calls: it goes to the model as its steps, calls and results. */
  parts?: MessagePart[] | null;
}

/** A rolling summary of the branch from its root through `throughOrder`. */
export interface BranchSummary {
  throughOrder: number;
  content: string;
  tokens: number;
}

export interface Branch {
  messages: BranchMessage[];
  summary: BranchSummary | null;
}

/** What the model is given for a turn, as recorded on its AI response. */
export interface ContextWindow {
  firstOrder: number;
  messages: number;
  summaryThroughOrder: number | null;
}

export interface ContextSelection {
  /** The prompt to send: system prompt, summary, then the newest messages that fit. */
  prompt: ChatMessage[];
  window: ContextWindow;
  /** Our count of the prompt: the provider's numbers where it has given them, estimates elsewhere. */
  promptTokens: number;
  /** Messages that fell out of the window and no summary covers yet, oldest first. */
  unsummarized: BranchMessage[];
}

export function utf8Length(text: string): number {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code >= 0x800) bytes += code >= 0xd800 && code <= 0xdbff ? 1 : 2;
    else if (code >= 0x80) bytes += 1;
  }
  return bytes;
}

/**
 * A conservative count for text the provider has not counted: one token per 3 UTF-8 bytes.
 * English runs at about 4 bytes a token and CJK at about 3, so this errs on the large side; a
 * provider that still counts more is handled by one retry with a tighter budget.
 */
export const estimateTokens = (text: string) => Math.ceil(utf8Length(text) / 3);

/**
 * What a file costs in the prompt. An image as OpenAI counts it at high detail: scaled to fit
 * 2048×2048, then its shorter side to 768, 170 tokens per 512-pixel tile plus 85. Text inline, by
 * its size; a PDF, its text.
 */
export function attachmentTokens(file: AttachmentRef): number {
  if (file.deleted) return 20;
  if (file.mediaType.startsWith("image/")) {
    let [width, height] = [file.width ?? 2048, file.height ?? 2048];
    const fit = Math.min(1, 2048 / Math.max(width, height));
    [width, height] = [width * fit, height * fit];
    const shorter = Math.min(1, 768 / Math.min(width, height));
    [width, height] = [width * shorter, height * shorter];
    return 85 + 170 * Math.ceil(width / 512) * Math.ceil(height / 512);
  }
  // A PDF's text as stored at upload (3 bytes a token, like `estimateTokens`), or a line.
  if (file.mediaType === "application/pdf") return file.textBytes ? Math.ceil(file.textBytes / 3) + 10 : 20;
  return Math.ceil(file.size / 3) + 10;
}

const hasToolCalls = (message: BranchMessage) => Boolean(message.parts?.some((part) => part.type === "tool_call"));

/** The chat messages of a message of the branch: an AI message with tool calls becomes several (`shorten`: its outputs as their size only). */
function chatMessagesOf(message: BranchMessage, shorten = false): ChatMessage[] {
  if (hasToolCalls(message)) return replyMessages(message.parts!, estimateTokens, shorten);
  return [{ role: message.role, content: message.content, ...(message.attachments?.length ? { attachments: message.attachments } : {}) }];
}

/** Our count of chat messages: their text, calls and files, each with its overhead. */
const chatTokens = (messages: ChatMessage[]) =>
  messages.reduce(
    (sum, m) =>
      sum +
      estimateTokens(typeof m.content === "string" ? m.content : "") +
      (m.toolCalls ?? []).reduce((n, call) => n + estimateTokens(call.name + call.arguments), 0) +
      (m.attachments ?? []).reduce((n, file) => n + attachmentTokens(file), 0) +
      MESSAGE_OVERHEAD_TOKENS,
    0,
  );

// A provider's count of a message with files includes them; one with tool calls is counted afresh
// (its count is of its last step only). Most messages take the arithmetic: every turn sizes the branch.
function sizeOf(message: BranchMessage, shorten = false): number {
  if (hasToolCalls(message)) return chatTokens(chatMessagesOf(message, shorten));
  const files = (message.attachments ?? []).reduce((sum, file) => sum + attachmentTokens(file), 0);
  return (message.tokens ?? estimateTokens(message.content) + files) + MESSAGE_OVERHEAD_TOKENS;
}

/**
 * Fills the window newest message first, never splitting one: the turn's own message (and the
 * steps of its reply so far, `reply`) always, then the summary, then earlier messages until the
 * next one would not fit. An earlier message with tool calls that does not fit goes in with its
 * outputs omitted, and so do those before it: old outputs give way before whole messages, and a
 * call never loses its result. Null when the turn's own message, its reply so far and the system
 * prompt alone do not fit (`tighten` < 1 shrinks the budget).
 */
export function selectContext(systemPrompt: string | null, branch: Branch, budget: ModelBudget, tighten = 1, reply: MessagePart[] = []): ContextSelection | null {
  const limit = Math.floor((budget.contextTokens - budget.maxOutputTokens) * tighten) - REPLY_PRIMING_TOKENS;
  const own = branch.messages.at(-1);
  if (!own) return null;
  const replySoFar = replyMessages(reply, estimateTokens);
  let used = sizeOf(own) + chatTokens(replySoFar) + (systemPrompt ? estimateTokens(systemPrompt) + MESSAGE_OVERHEAD_TOKENS : 0);
  if (used > limit) return null;

  const summary = branch.summary && used + branch.summary.tokens + MESSAGE_OVERHEAD_TOKENS <= limit ? branch.summary : null;
  if (summary) used += summary.tokens + MESSAGE_OVERHEAD_TOKENS;
  const coveredThrough = branch.summary?.throughOrder ?? 0;

  let first = branch.messages.length - 1;
  /** From this index back, tool outputs are omitted. */
  let shortenFrom = -1;
  while (first > 0) {
    const earlier = branch.messages[first - 1]!;
    if (earlier.order <= coveredThrough) break;
    let size = sizeOf(earlier, shortenFrom >= 0);
    if (shortenFrom < 0 && used + size > limit && hasToolCalls(earlier)) {
      shortenFrom = first - 1;
      size = sizeOf(earlier, true);
    }
    if (used + size > limit) break;
    used += size;
    first--;
  }
  const window = branch.messages.slice(first);
  const prompt: ChatMessage[] = [];
  if (systemPrompt) prompt.push({ role: "system", content: systemPrompt });
  if (summary) prompt.push({ role: "system", content: `Summary of the earlier conversation:\n${summary.content}` });
  window.forEach((message, i) => prompt.push(...chatMessagesOf(message, first + i <= shortenFrom)));
  prompt.push(...replySoFar);
  return {
    prompt,
    window: { firstOrder: window[0]!.order, messages: window.length, summaryThroughOrder: summary?.throughOrder ?? null },
    promptTokens: used + REPLY_PRIMING_TOKENS,
    unsummarized: branch.messages.slice(0, first).filter((m) => m.order > coveredThrough),
  };
}

/**
 * The turn's own message's share of the provider's prompt count: what it counted minus our count
 * of everything else in the prompt. Stored, it makes later counts of this branch add up to the
 * provider's own numbers instead of estimates.
 */
export function ownMessageTokens(selection: ContextSelection, own: BranchMessage, providerPromptTokens: number): number {
  const rest = selection.promptTokens - sizeOf(own);
  return Math.max(1, providerPromptTokens - rest - MESSAGE_OVERHEAD_TOKENS);
}
