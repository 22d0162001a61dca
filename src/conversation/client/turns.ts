import type { Context } from "hono";
import { and, eq } from "drizzle-orm";
import type { AppEnv } from "../../http/app-env";
import { type AppConfig, getConfig } from "../../http/config";
import { estimateTokens } from "../context-window";
import { shardSession } from "../../db/client";
import { refuseWhileMoving } from "../../db/request-session";
import { messages } from "../../db/schema";
import type { Attachment, SubmitOutcome, TurnSubmission } from "../contract";
import { conversationObject } from "./stub";
import { fromRefusal, notFound, unwrap } from "../../http/errors";
import { newId } from "../../lib/ids";
import { userObject } from "../../user/user-object";
import { admissionRefusal } from "../turn-checks";
import { createMiddleware } from "hono/factory";
import { enforceRateLimit } from "../../lib/rate-limit";

/* What the routes that start a turn or attach to one do before the conversation's object takes over. */

const chargeTurnRate = (c: Context<AppEnv>) => enforceRateLimit(c.env.TURN_RATE_LIMITER, [`user:${c.get("userId")}`], "messages");

/**
 * Charges the turn rate limit before the body is read, for a route whose body may be large: a
 * flood of bodies that fail validation costs their sender its turns, not our CPU for nothing.
 */
export const chargeTurnFirst = createMiddleware<AppEnv>(async (c, next) => {
  await chargeTurnRate(c);
  c.set("turnRateCharged", true);
  await next();
});

/**
 * Hands a turn to the conversation's object with a generation slot. Ownership, status, leaf and
 * branch are the object's: no D1 read before the model call.
 */
export async function submitTurn(
  c: Context<AppEnv>,
  submission: Omit<TurnSubmission, "userId" | "lease" | "budget">,
  mode: "json" | "sse",
): Promise<Exclude<SubmitOutcome, { kind: "rejected" }>> {
  const reserved = provisionalSpend(getConfig(c.env), submission);
  return withGenerationSlot(c, reserved, (userId, lease, budget) => conversationObject(c.env, submission.conversationId).submitTurn({ ...submission, userId, lease, budget }, mode));
}

/**
 * Takes a generation slot (with the day's budget, `reserved` tokens held) from the user's object
 * while the rate limiter answers, both at once, then lets `hand` give the turn (and the slot) to
 * its conversation's object, which gives the slot back if it refuses the turn, and after a restart.
 */
export async function withGenerationSlot(
  c: Context<AppEnv>,
  reserved: number,
  hand: (userId: string, lease: string, budget: TurnSubmission["budget"]) => Promise<SubmitOutcome>,
): Promise<Exclude<SubmitOutcome, { kind: "rejected" }>> {
  refuseWhileMoving(c);
  const userId = c.get("userId");
  const { maxConcurrentGenerations, maxQueuedTurns, model, userDailyTokens, userDailyCostUsd } = getConfig(c.env);
  const lease = newId();
  const slots = userObject(c.env, userId);
  const [limited, admission] = await Promise.allSettled([
    c.get("turnRateCharged") ? undefined : chargeTurnRate(c),
    // The lease outlasts the longest a turn may wait in a full queue and run; its object gives it back sooner.
    slots.admit({ userId, kind: "generation", leaseId: lease, limit: maxConcurrentGenerations, ttlMs: (maxQueuedTurns + 1) * model.timeoutMs, dailyTokens: userDailyTokens, dailyCostUsd: userDailyCostUsd, reserveTokens: reserved }),
  ]);
  const giveBack = () => c.executionCtx.waitUntil(slots.settle([{ id: lease, tokens: 0, costUsd: 0 }]).catch(() => undefined));
  if (limited.status === "rejected" || admission.status === "rejected") {
    if (admission.status === "fulfilled" && admission.value.ok) giveBack();
    throw limited.status === "rejected" ? limited.reason : (admission as PromiseRejectedResult).reason;
  }
  if (!admission.value.ok) throw fromRefusal(admissionRefusal(admission.value, { maxConcurrentGenerations, userDailyTokens, userDailyCostUsd }));
  let answer: SubmitOutcome;
  try {
    const { headroomTokens } = admission.value;
    answer = await hand(userId, lease, headroomTokens === null ? null : { reserved, headroom: headroomTokens });
  } catch (error) {
    // The object never answered, so it may never have taken the slot (a refusal gives it back itself).
    giveBack();
    throw error;
  }
  return unwrap(answer);
}

/**
 * What the Worker can tell a turn may spend before its object knows better: the new message and
 * the output allowance of the turn, or of its model as far as the Worker knows it (the object
 * checks the whole prompt, and raises the reservation if it is more).
 */
function provisionalSpend(config: AppConfig, { ask, create }: Pick<TurnSubmission, "ask" | "create">): number {
  const model = config.modelEntry(create?.row.modelVersion ?? (ask.kind === "regenerate" ? ask.model : null) ?? config.defaultModel);
  const allowance = Math.min(ask.maxOutputTokens ?? create?.row.maxOutputTokens ?? model.maxOutputTokens, model.maxOutputTokens);
  return (ask.kind === "regenerate" ? 0 : estimateTokens(ask.content)) + allowance;
}

/**
 * The conversation a message of the caller belongs to, for the routes that name only a message.
 * Which conversation a message is in never changes, so any replica that has the message will do;
 * only a message too new for the nearest replica costs a trip to the primary.
 */
export async function conversationOfMessage(env: Env, userId: string, messageId: string): Promise<string> {
  for (const constraint of ["first-unconstrained", "first-primary"]) {
    const db = shardSession(env, userId, constraint).db;
    const [row] = await db
      .select({ conversationId: messages.conversationId })
      .from(messages)
      .where(and(eq(messages.id, messageId), eq(messages.userId, userId)));
    if (row) return row.conversationId;
  }
  throw notFound("Message");
}

/**
 * Attaches a listener to a conversation's reply (GET …/stream/, the chat resume), within the
 * user's listener slots and the reply's own cap, both counted by the conversation's object.
 */
export async function attachListener(env: Env, userId: string, conversationId: string, lastEventId: string | null): Promise<Attachment> {
  return unwrap(await conversationObject(env, conversationId).attach(userId, conversationId, lastEventId));
}
