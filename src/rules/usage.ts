import { and, eq } from "drizzle-orm";
import type { Database } from "../db/client";
import { usageDaily } from "../db/schema";

/* The daily token budget (USER_DAILY_TOKENS): what each user spent today, as providers counted it. */

const dayOf = (at: Date) => at.toISOString().slice(0, 10);

const nextMidnight = (at: Date) => new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), at.getUTCDate() + 1)).toISOString();

export async function usageToday(db: Database, userId: string): Promise<{ day: string; tokens: number; costUsd: number; resetsAt: string }> {
  const now = new Date();
  const day = dayOf(now);
  const [row] = await db
    .select({ tokens: usageDaily.tokens, costUsd: usageDaily.costUsd })
    .from(usageDaily)
    .where(and(eq(usageDaily.userId, userId), eq(usageDaily.day, day)));
  return { day, tokens: row?.tokens ?? 0, costUsd: row?.costUsd ?? 0, resetsAt: nextMidnight(now) };
}

