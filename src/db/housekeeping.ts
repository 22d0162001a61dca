import { and, inArray, isNotNull, isNull, lt, lte, or, sql } from "drizzle-orm";
import { getConfig } from "../http/config";
import { deleteFile } from "../files/file-store";
import { Connection, directoryDb } from "./client";
import { files, messages, refreshTokens } from "./schema";
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

/** How long an upload may wait for a message to carry it before housekeeping removes it. */
export const UNUSED_FILE_GRACE_MS = 24 * 60 * 60 * 1000;

/**
 * Removes uploads older than the grace period that no message carries, in each shard: the file is
 * marked deleted, and its bytes go (with their room in the owner's quota) unless another of the
 * owner's files holds them. Returns how many files went.
 */
export async function deleteUnusedFiles(env: Env, now = Date.now()): Promise<number> {
  let removed = 0;
  for (const name of getConfig(env).shardMap.bindings) {
    const db = new Connection((env as unknown as Record<string, D1Database>)[name]!.withSession("first-primary")).db;
    const unused = await db
      .select()
      .from(files)
      .where(
        and(
          isNull(files.deletedAt),
          lt(files.createdAt, new Date(now - UNUSED_FILE_GRACE_MS).toISOString()),
          sql`NOT EXISTS (SELECT 1 FROM ${messages} m WHERE m.user_id = ${files.userId} AND m.attachments IS NOT NULL
            AND EXISTS (SELECT 1 FROM json_each(m.attachments) WHERE json_extract(value, '$.id') = ${files.id}))`,
        ),
      )
      .limit(ROWS_PER_BATCH);
    for (const file of unused) await deleteFile(env, db, file);
    removed += unused.length;
  }
  return removed;
}

/** The cron trigger (wrangler.toml `[triggers]`). Idempotency records live in each conversation object's SQLite, which prunes them itself. */
export async function housekeeping(env: Env): Promise<void> {
  const refreshTokensDeleted = await deleteDeadRefreshTokens(env);
  const unusedFilesDeleted = await deleteUnusedFiles(env);
  log.info("housekeeping", { refresh_tokens_deleted: refreshTokensDeleted, unused_files_deleted: unusedFilesDeleted });
}
