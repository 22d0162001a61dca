import { inArray, isNotNull, lte, or } from "drizzle-orm";
import { directoryDb } from "./client";
import { refreshTokens } from "./schema";
import { nowIso } from "../lib/ids";
import { log } from "../lib/log";

// Bounded work per run: each batch is one short write, so the directory's writer is never held long.
const ROWS_PER_BATCH = 500;
const MAX_BATCHES = 20;

/**
 * Deletes refresh tokens that can never be accepted again: expired ones (used or not) and revoked
 * ones. A used token that has not expired stays: presenting it again is how a stolen token is
 * detected (the family is revoked). Returns how many rows went.
 */
export async function deleteDeadRefreshTokens(env: Env, now = nowIso()): Promise<number> {
  const db = directoryDb(env);
  const dead = or(lte(refreshTokens.expiresAt, now), isNotNull(refreshTokens.revokedAt));
  let deleted = 0;
  for (let batch = 0; batch < MAX_BATCHES; batch++) {
    const ids = db.select({ id: refreshTokens.id }).from(refreshTokens).where(dead).limit(ROWS_PER_BATCH);
    const { meta } = await db.delete(refreshTokens).where(inArray(refreshTokens.id, ids)).run();
    deleted += meta.changes;
    if (meta.changes < ROWS_PER_BATCH) break;
  }
  return deleted;
}

/** The cron trigger (wrangler.toml `[triggers]`). Idempotency records live in each conversation object's SQLite, which prunes them itself. */
export async function housekeeping(env: Env): Promise<void> {
  const refreshTokensDeleted = await deleteDeadRefreshTokens(env);
  log.info("housekeeping", { refresh_tokens_deleted: refreshTokensDeleted });
}
