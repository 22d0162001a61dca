import type { Context } from "hono";
import { and, count, eq } from "drizzle-orm";
import type { AppEnv } from "./app-env";
import { getConfig } from "./config";
import { getDb } from "./db/client";
import { loadOwnedMessageInContext } from "./db/queries";
import { aiResponses, type Conversation } from "./db/schema";
import { selectContext } from "./engine/context-window";
import type { SubmitOutcome, TurnRequest } from "./engine/conversation-object";
import { conversationObject } from "./engine/stub";
import type { TurnPlan } from "./engine/turn-store";
import { ApiError, notFound } from "./errors";
import { enforceRateLimit } from "./lib/rate-limit";

/* The rules every route that starts a turn applies (the turn routes and the AI SDK chat route). */

/**
 * The checks every new turn passes before anything is written: the per-user turn rate, what
 * `lookup` finds (the conversation, checked by `checkTarget`), and the cap on one user's turns
 * waiting or generating across conversations. The cap counts Generating responses, the source of
 * truth, so nothing can leak; concurrent sends may overshoot it slightly. All three are asked at
 * once: one wait instead of three.
 */
export async function admitTurn<T>(c: Context<AppEnv>, lookup: Promise<T>, checkTarget: (found: T) => void): Promise<T> {
  const userId = c.get("userId");
  const generatingQuery = getDb(c.env)
    .select({ n: count() })
    .from(aiResponses)
    .where(and(eq(aiResponses.userId, userId), eq(aiResponses.status, "Generating")));
  const [, [counted], found] = await Promise.all([enforceRateLimit(c.env.TURN_RATE_LIMITER, [`user:${userId}`], "messages"), generatingQuery, lookup]);
  checkTarget(found);
  const cap = getConfig(c.env).maxConcurrentGenerations;
  if ((counted?.n ?? 0) >= cap) {
    throw new ApiError("rate_limited", `You already have ${cap} replies waiting or generating; wait for one to finish.`, { headers: { "Retry-After": "5" } });
  }
  return found;
}

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


type TurnAdmission = Omit<TurnRequest, "idempotency">;

/**
 * A regenerate of the AI message `messageId`: a new reply to its user message. With
 * `inConversation`, a message of any other conversation is reported as missing.
 */
export async function admitRegenerate(c: Context<AppEnv>, messageId: string, model: string | null, inConversation?: string): Promise<TurnAdmission> {
  const { conversation, parent } = await admitTurn(c, loadOwnedMessageInContext(getDb(c.env), c.get("userId"), messageId), (found) => {
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
  const { message, conversation } = await admitTurn(c, loadOwnedMessageInContext(getDb(c.env), c.get("userId"), messageId), (found) => {
    if (inConversation !== undefined && found.message.conversationId !== inConversation) throw notFound("Message");
    if (found.message.sender !== "user") throw new ApiError("bad_request", "Only user messages can be resent; use regenerate for an AI message.");
    checkActive(found.conversation);
  });
  return { conversation, isNewConversation: false, plan: { kind: "resend", original: message, content } };
}

/** Checks that the message can fit the model's window, then hands the turn to the conversation's object. */
export async function submitTurn(env: Env, request: TurnRequest, mode: "json" | "sse"): Promise<SubmitOutcome> {
  checkFitsContext(env, request.conversation, request.plan);
  return conversationObject(env, request.conversation.id).submitTurn(request, mode);
}

/** The error of a turn the object refused. */
export const rejection = (outcome: Extract<SubmitOutcome, { kind: "rejected" }>) => new ApiError(outcome.code, outcome.message, { headers: outcome.headers });
