import { getConfig } from "../http/config";
import type { AttachmentRef, Conversation, Message } from "../db/schema";
import { IMAGE_TYPES } from "../rules/file-rules";
import { ACCOUNT_DELETED, ApiError, type ErrorCode, invalid, notFound, type Refusal, toRefusal } from "../http/errors";
import type { Admission } from "../user/user-object";
import { type Branch, selectContext } from "./context-window";
import type { ConversationStore } from "./conversation-store";
import type { ModelEntry } from "../model/registry";
import { checkedAllowance } from "../rules/conversation-rules";
import { checkToolsCapability, NO_TOOLS_ASKED, type ToolSpec, usableSpec } from "../rules/tool-rules";
import type { TurnPlan, TurnSteps } from "./turn-rows";

/** A turn as a route asks for it, before the object resolves the messages it names. */
export type TurnAsk = (
  | /** A new user message after the current leaf (add_message, start_conversation, a chat send). */
  { kind: "send"; content: string; replyTo: string | null; attachments?: AttachmentRef[] }
  /** Edit-and-resend of the user message `messageId`; its files unless `attachments` names others. */
  | { kind: "resend"; messageId: string; content: string; attachments?: AttachmentRef[] }
  /** A new reply beside the AI message `messageId`; null: the current leaf (a chat's regenerate). */
  | { kind: "regenerate"; messageId: string | null; model: string | null }
) & {
  /** A smaller output allowance for this turn than the conversation's or the model's. */
  maxOutputTokens?: number | null;
  /** The tools the turn may use; none named: the server tools, with `auto`. */
  tools?: ToolSpec;
};

/** What a send does when a reply of the conversation is already in flight. */
export type IfBusy = "queue" | "reject" | "interrupt";

function checkActive(conversation: Conversation): void {
  if (conversation.status !== "Active") throw new ApiError("conflict", "This conversation is deleted; restore it to add messages.");
}

/** The stored turn `ask` names, checked against what the object holds; an ApiError says why not. */
export function planTurn(env: Env, store: ConversationStore, conversation: Conversation, ask: TurnAsk): TurnPlan {
  checkActive(conversation);
  const steps = resolve(store, conversation, ask);
  const model = getConfig(env).modelEntry((steps.kind === "regenerate" && steps.model) || conversation.modelVersion);
  // The turn's own ask must fit the model; the conversation's, set for another model perhaps, is capped.
  const maxOutputTokens = ask.maxOutputTokens != null ? checkedAllowance(model, ask.maxOutputTokens) : Math.min(conversation.maxOutputTokens ?? Infinity, model.maxOutputTokens);
  const tools = ask.tools ?? NO_TOOLS_ASKED;
  checkToolsCapability(tools, model);
  const plan = { ...steps, maxOutputTokens, tools: usableSpec(tools, model) };
  checkCapabilities(plan, model);
  checkFitsContext(conversation, plan, model);
  return plan;
}

function resolve(store: ConversationStore, conversation: Conversation, ask: TurnAsk): TurnSteps {
  if (ask.kind === "send") {
    if (ask.replyTo !== null && !store.message(ask.replyTo)) throw invalid({ field: "reply_to", message: "Not a message of this conversation." });
    return { kind: "send", content: ask.content, replyTo: ask.replyTo, attachments: ask.attachments ?? null };
  }
  const messageId = ask.kind === "regenerate" ? (ask.messageId ?? conversation.currentLeafId) : ask.messageId;
  const message = messageId === null ? null : store.message(messageId);
  if (!message) throw notFound(ask.kind === "regenerate" && ask.messageId === null ? "Chat" : "Message");
  if (ask.kind === "resend") {
    if (message.sender !== "user") throw new ApiError("bad_request", "Only user messages can be resent; use regenerate for an AI message.");
    return { kind: "resend", original: message, content: ask.content, attachments: ask.attachments ?? message.attachments };
  }
  if (message.sender !== "ai") throw new ApiError("bad_request", "Only AI messages can be regenerated; use resend for a user message.");
  const parent = message.parentId === null ? null : store.message(message.parentId);
  if (parent?.sender !== "user") throw new ApiError("conflict", "This reply has no user message to answer.");
  if (parent.isDeleted) throw new ApiError("conflict", "The message this reply answers is deleted.");
  return { kind: "regenerate", userMessage: parent, model: ask.model };
}

/**
 * The branch a turn will answer, read before it is committed: a new user message is last, its id
 * and order still to be given (`withCommitted`).
 */
export function branchAhead(store: ConversationStore, conversation: Conversation, plan: TurnPlan): Branch {
  const parent = plan.kind === "regenerate" ? plan.userMessage.id : plan.kind === "resend" ? plan.original.parentId : conversation.currentLeafId;
  const branch = parent ? store.branch(parent) : { messages: [], summary: null };
  if (plan.kind !== "regenerate") branch.messages.push({ id: "", order: Number.MAX_SAFE_INTEGER, role: "user", content: plan.content, tokens: null, attachments: plan.attachments });
  return branch;
}

/** The branch ahead once its new user message is committed as `userMessage`. */
export const withCommitted = (branch: Branch, userMessage: Message): Branch => ({
  ...branch,
  messages: branch.messages.map((message) => (message.id === "" ? { ...message, id: userMessage.id, order: userMessage.order } : message)),
});

/**
 * The most a turn may spend: the prompt its window would hold now (its branch with the new
 * message, as much as fits), plus its output allowance.
 */
export function spendEstimate(branch: Branch, conversation: Conversation, plan: TurnPlan, model: ModelEntry): number {
  const budget = { contextTokens: model.contextWindow, maxOutputTokens: plan.maxOutputTokens };
  const prompt = selectContext(conversation.systemPrompt, branch, budget)?.promptTokens ?? model.contextWindow - plan.maxOutputTokens;
  return prompt + plan.maxOutputTokens;
}

/** A turn that may spend more than the day's budget leaves: refused before anything is stored. */
export function overBudget(spend: number, budget: { reserved: number; headroom: number }): Refusal | null {
  const left = budget.reserved + budget.headroom;
  if (spend <= left) return null;
  return toRefusal(
    new ApiError("budget_exceeded", `This reply may use up to ${spend} tokens, more than the ${Math.max(0, left)} your daily budget has left.`, {
      details: { tokens_needed: spend, tokens_left: Math.max(0, left) },
    }),
  );
}

/** A turn that needs what its model cannot do is refused before anything is stored. */
function checkCapabilities(plan: TurnPlan, model: ModelEntry): void {
  const files = plan.kind === "regenerate" ? plan.userMessage.attachments : plan.attachments;
  if (files?.some((file) => IMAGE_TYPES.has(file.mediaType)) && !model.capabilities.vision) {
    throw new ApiError("model_unsupported", `${model.id} cannot read images.`, { details: { model: model.id, missing: "vision" } });
  }
}

/** A message that cannot fit the model's window even with no history is refused before anything is stored. */
function checkFitsContext(conversation: Conversation, plan: TurnPlan, model: ModelEntry): void {
  const [content, attachments] = plan.kind === "regenerate" ? [plan.userMessage.content, plan.userMessage.attachments] : [plan.content, plan.attachments];
  const alone = { messages: [{ id: "", order: 0, role: "user" as const, content, tokens: null, attachments }], summary: null };
  if (!selectContext(conversation.systemPrompt, alone, { contextTokens: model.contextWindow, maxOutputTokens: plan.maxOutputTokens })) {
    throw new ApiError("context_length_exceeded", `This message${attachments?.length ? " with its files" : ""} is too long for the context window of ${model.id}.`);
  }
}

export const refuse = (code: ErrorCode, message: string, headers?: Record<string, string>): Refusal => ({ kind: "rejected", code, message, headers });

/** Why the user's object refused a turn's slot: all of the user's slots are taken, or the day's budget is spent. */
export function admissionRefusal(
  admission: Exclude<Admission, { ok: true }>,
  limits: { maxConcurrentGenerations: number; userDailyTokens: number; userDailyCostUsd: number },
): Refusal {
  if (admission.reason === "erased") return toRefusal(ACCOUNT_DELETED);
  if (admission.reason === "busy") {
    return refuse("rate_limited", `You already have ${limits.maxConcurrentGenerations} replies waiting or generating; wait for one to finish.`, { "Retry-After": "5" });
  }
  const { used } = admission;
  const outOfDollars = limits.userDailyCostUsd > 0 && used.costUsd >= limits.userDailyCostUsd;
  const outOfTokens = limits.userDailyTokens > 0 && used.tokens >= limits.userDailyTokens;
  const message = outOfDollars
    ? `You have used your $${limits.userDailyCostUsd} budget for today`
    : outOfTokens
      ? `You have used your ${limits.userDailyTokens} tokens for today`
      : `This reply may use more tokens than your daily ${limits.userDailyTokens} leave, with the replies still running`;
  return toRefusal(
    new ApiError("budget_exceeded", `${message}; the budget resets at ${admission.resetsAt}.`, {
      details: {
        daily_limit: limits.userDailyTokens > 0 ? limits.userDailyTokens : null,
        tokens_used: used.tokens,
        daily_cost_limit_usd: limits.userDailyCostUsd > 0 ? limits.userDailyCostUsd : null,
        cost_usd: used.costUsd,
        resets_at: admission.resetsAt,
      },
      headers: { "Retry-After": String(Math.ceil((Date.parse(admission.resetsAt) - Date.now()) / 1000)) },
    }),
  );
}
