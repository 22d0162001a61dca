import type { Context } from "hono";
import type { AppEnv } from "./app-env";
import { getConfig } from "./config";
import { userDb } from "./db/request-session";
import { loadOwnedMessageInContext } from "./db/queries";
import type { Conversation } from "./db/schema";
import { selectContext } from "./engine/context-window";
import type { Attachment, SubmitOutcome, TurnRequest } from "./engine/conversation-object";
import { conversationObject } from "./engine/stub";
import type { TurnPlan } from "./engine/turn-store";
import { ApiError, notFound } from "./errors";
import { newId } from "./lib/ids";
import { enforceRateLimit } from "./lib/rate-limit";
import { usageToday } from "./usage";
import { userObject } from "./user-object";

/* The rules every route that starts a turn applies (the turn routes and the AI SDK chat route). */

/**
 * The checks every new turn passes before anything is written: the per-user turn rate, the
 * user's daily token budget, and what `lookup` finds (the conversation, checked by
 * `checkTarget`). All are asked at once: one wait instead of three. The cap on replies in flight
 * is taken last, in `submitTurn`, so nothing refused here holds a slot.
 */
export async function admitTurn<T>(c: Context<AppEnv>, lookup: Promise<T>, checkTarget: (found: T) => void): Promise<T> {
  const userId = c.get("userId");
  const [, usage, found] = await Promise.all([
    enforceRateLimit(c.env.TURN_RATE_LIMITER, [`user:${userId}`], "messages"),
    usageToday(userDb(c), userId),
    lookup,
  ]);
  checkTarget(found);
  const budget = getConfig(c.env).userDailyTokens;
  if (budget > 0 && usage.tokens >= budget) {
    throw new ApiError("budget_exceeded", `You have used your ${budget} tokens for today; the budget resets at ${usage.resetsAt}.`, {
      details: { daily_limit: budget, tokens_used: usage.tokens, resets_at: usage.resetsAt },
      headers: { "Retry-After": String(Math.ceil((Date.parse(usage.resetsAt) - Date.now()) / 1000)) },
    });
  }
  return found;
}

/** A cap on work in flight is full: worth retrying in a few seconds. */
const tooBusy = (message: string) => new ApiError("rate_limited", message, { headers: { "Retry-After": "5" } });

export function checkActive(conversation: Conversation | undefined): asserts conversation is Conversation {
  if (!conversation) throw notFound("Conversation");
  if (conversation.status !== "Active") throw new ApiError("conflict", "This conversation is deleted; restore it to add messages.");
}

/** A message that cannot fit the model's window even with no history is refused before anything is stored. */
function checkFitsContext(env: Env, conversation: Conversation, plan: TurnPlan): void {
  const model = (plan.kind === "regenerate" && plan.model) || conversation.modelVersion;
  const content = plan.kind === "regenerate" ? plan.userMessage.content : plan.content;
  const alone = { messages: [{ id: "", order: 0, role: "user" as const, content, tokens: null }], summary: null };
  if (!selectContext(conversation.systemPrompt, alone, getConfig(env).modelBudget(model))) {
    throw new ApiError("context_length_exceeded", `This message is too long for the context window of ${model}.`);
  }
}

/** A turn that passed the checks, before its Idempotency-Key and generation slot are added. */
export type TurnAdmission = Omit<TurnRequest, "idempotency" | "lease">;

/**
 * A regenerate of the AI message `messageId`: a new reply to its user message. With
 * `inConversation`, a message of any other conversation is reported as missing.
 */
export async function admitRegenerate(c: Context<AppEnv>, messageId: string, model: string | null, inConversation?: string): Promise<TurnAdmission> {
  const { conversation, parent } = await admitTurn(c, loadOwnedMessageInContext(userDb(c), c.get("userId"), messageId), (found) => {
    if (inConversation !== undefined && found.message.conversationId !== inConversation) throw notFound("Message");
    if (found.message.sender !== "ai") throw new ApiError("bad_request", "Only AI messages can be regenerated; use resend for a user message.");
    checkActive(found.conversation);
  });
  if (parent?.sender !== "user") throw new ApiError("conflict", "This reply has no user message to answer.");
  if (parent.isDeleted) throw new ApiError("conflict", "The message this reply answers is deleted.");
  return { conversation, isNewConversation: false, plan: { kind: "regenerate", userMessage: parent, model } };
}

/** Edit-and-resend of the user message `messageId`: `content` as a new message beside it. */
export async function admitResend(c: Context<AppEnv>, messageId: string, content: string, inConversation?: string): Promise<TurnAdmission> {
  const { message, conversation } = await admitTurn(c, loadOwnedMessageInContext(userDb(c), c.get("userId"), messageId), (found) => {
    if (inConversation !== undefined && found.message.conversationId !== inConversation) throw notFound("Message");
    if (found.message.sender !== "user") throw new ApiError("bad_request", "Only user messages can be resent; use regenerate for an AI message.");
    checkActive(found.conversation);
  });
  return { conversation, isNewConversation: false, plan: { kind: "resend", original: message, content } };
}

/**
 * Checks that the message can fit the model's window, takes one of the user's slots for replies
 * in flight (exact: see UserObject), and hands the turn to the conversation's object, which gives
 * the slot back when the turn ends (or at once, if it starts none).
 */
export async function submitTurn(env: Env, request: TurnAdmission & Pick<TurnRequest, "idempotency">, mode: "json" | "sse"): Promise<SubmitOutcome> {
  checkFitsContext(env, request.conversation, request.plan);
  const { maxConcurrentGenerations: cap, maxQueuedTurns, model } = getConfig(env);
  const lease = newId();
  const slots = userObject(env, request.conversation.userId);
  // A turn may wait behind a full queue before its reply runs: the lease outlasts that, and only
  // matters if the conversation object never gives it back.
  if (!(await slots.acquire("generation", lease, cap, (maxQueuedTurns + 1) * model.timeoutMs))) {
    throw tooBusy(`You already have ${cap} replies waiting or generating; wait for one to finish.`);
  }
  try {
    return await conversationObject(env, request.conversation.id).submitTurn({ ...request, lease }, mode);
  } catch (error) {
    await slots.release([lease]);
    throw error;
  }
}

/** The error of a turn the object refused. */
export const rejection = (outcome: Extract<SubmitOutcome, { kind: "rejected" }>) => new ApiError(outcome.code, outcome.message, { headers: outcome.headers });

/**
 * Attaches a listener to a conversation's reply (GET …/stream/, the chat resume), within the
 * user's listener slots (exact, UserObject) and the reply's own cap (its object counts). A live
 * listener holds its slot until it ends; anything else gives it back at once.
 */
export async function attachListener(env: Env, userId: string, conversationId: string, lastEventId: string | null): Promise<ReadableStream<Uint8Array> | "finished" | null> {
  const { maxListenersPerUser, maxListenersPerTurn, maxQueuedTurns, model } = getConfig(env);
  const lease = newId();
  const slots = userObject(env, userId);
  if (!(await slots.acquire("listener", lease, maxListenersPerUser, (maxQueuedTurns + 1) * model.timeoutMs))) {
    throw tooBusy(`You already have ${maxListenersPerUser} streams open; close one first.`);
  }
  let attachment: Attachment;
  try {
    attachment = await conversationObject(env, conversationId).attach(conversationId, lastEventId, { userId, id: lease });
  } catch (error) {
    await slots.release([lease]);
    throw error;
  }
  if (attachment === null || typeof attachment === "string" || !attachment.holdsLease) await slots.release([lease]);
  if (attachment === "busy") {
    throw tooBusy(`This reply already has ${maxListenersPerTurn} listeners.`);
  }
  return attachment === null || typeof attachment === "string" ? attachment : attachment.stream;
}
