import type { Context } from "hono";
import { and, eq } from "drizzle-orm";
import type { AppEnv } from "../../http/app-env";
import { getConfig } from "../../http/config";
import { shardSession } from "../../db/client";
import { refuseWhileMoving } from "../../db/request-session";
import { messages } from "../../db/schema";
import type { Attachment, SubmitOutcome, TurnSubmission } from "../contract";
import { conversationObject } from "./stub";
import { notFound, unwrap } from "../../http/errors";
import { enforceRateLimit } from "../../lib/rate-limit";

/* What the routes that start a turn or attach to one do before the conversation's object takes over. */

/**
 * The checks a turn passes in the Worker: the per-user turn rate (the rate limiting binding) and
 * the shard not being moved. Ownership, status, the budget and the slots are the objects' (no D1
 * read before the model call).
 */
export async function admitTurn(c: Context<AppEnv>): Promise<void> {
  refuseWhileMoving(c);
  await enforceRateLimit(c.env.TURN_RATE_LIMITER, [`user:${c.get("userId")}`], "messages");
}

/** Hands the turn to the conversation's object, which checks and commits it. */
export async function submitTurn(env: Env, submission: Omit<TurnSubmission, "limits">, mode: "json" | "sse"): Promise<Exclude<SubmitOutcome, { kind: "rejected" }>> {
  const { maxConcurrentGenerations, userDailyTokens } = getConfig(env);
  const limits = { maxConcurrentGenerations, userDailyTokens };
  return unwrap(await conversationObject(env, submission.conversationId).submitTurn({ ...submission, limits }, mode));
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
