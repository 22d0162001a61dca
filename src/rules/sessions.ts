import type { z } from "@hono/zod-openapi";
import { and, eq, isNull, sql } from "drizzle-orm";
import { type Database, directoryDb } from "../db/client";
import { refreshTokens, users } from "../db/schema";
import { ApiError } from "../http/errors";
import type { TokenPairSchema } from "../http/schemas";
import { newId, nowIso } from "../lib/ids";
import { log } from "../lib/log";
import { ACCESS_TOKEN_TTL_SECONDS, REFRESH_TOKEN_TTL_SECONDS, signToken, verifyToken } from "../lib/tokens";

export type TokenPair = z.infer<typeof TokenPairSchema>;

const INVALID_REFRESH = "Not a valid refresh token.";

async function signPair(env: Env, userId: string, familyId: string, refreshId: string): Promise<TokenPair> {
  const [access, refresh] = await Promise.all([
    signToken(env, { userId, type: "access", tokenId: newId(), familyId }),
    signToken(env, { userId, type: "refresh", tokenId: refreshId, familyId }),
  ]);
  return { access, refresh, token_type: "Bearer", expires_in: ACCESS_TOKEN_TTL_SECONDS };
}

const expiresAt = () => new Date(Date.now() + REFRESH_TOKEN_TTL_SECONDS * 1000).toISOString();

/** A login: a new token family with its first refresh token. */
export async function startSession(env: Env, userId: string): Promise<TokenPair> {
  const familyId = newId();
  const refreshId = newId();
  await directoryDb(env).insert(refreshTokens).values({ id: refreshId, familyId, userId, createdAt: nowIso(), expiresAt: expiresAt() });
  return signPair(env, userId, familyId, refreshId);
}

/**
 * Exchanges a refresh token for a new pair in the same family. The token is marked used and its
 * successor inserted in one atomic batch, so two concurrent uses cannot both succeed; a token
 * presented after it was used revokes its whole family.
 */
export async function rotateSession(env: Env, refreshJwt: string): Promise<TokenPair> {
  const claims = await verifyToken(env, refreshJwt, "refresh");
  const db = directoryDb(env);
  const now = nowIso();
  const nextId = newId();
  const [marked, , [user]] = await db.batch([
    db
      .update(refreshTokens)
      .set({ usedAt: now, replacedBy: nextId })
      .where(
        and(
          eq(refreshTokens.id, claims.tokenId),
          eq(refreshTokens.userId, claims.userId),
          isNull(refreshTokens.usedAt),
          isNull(refreshTokens.revokedAt),
          sql`${refreshTokens.expiresAt} > ${now}`,
        ),
      )
      .returning({ familyId: refreshTokens.familyId }),
    // Inserts the successor only if the update above marked this token with it.
    db.insert(refreshTokens).select(
      db
        .select({
          id: sql<string>`${nextId}`.as("id"),
          familyId: refreshTokens.familyId,
          userId: refreshTokens.userId,
          createdAt: sql<string>`${now}`.as("created_at"),
          expiresAt: sql<string>`${expiresAt()}`.as("expires_at"),
          usedAt: sql<null>`NULL`.as("used_at"),
          replacedBy: sql<null>`NULL`.as("replaced_by"),
          revokedAt: sql<null>`NULL`.as("revoked_at"),
        })
        .from(refreshTokens)
        .where(and(eq(refreshTokens.id, claims.tokenId), eq(refreshTokens.replacedBy, nextId))),
    ),
    db.select({ isActive: users.isActive }).from(users).where(eq(users.id, claims.userId)),
  ]);
  if (marked.length === 1 && user?.isActive) return signPair(env, claims.userId, claims.familyId, nextId);
  if (marked.length === 1) await revokeSessions(db, { familyId: claims.familyId });
  else {
    const [previous] = await db.select().from(refreshTokens).where(eq(refreshTokens.id, claims.tokenId));
    if (previous?.usedAt && !previous.revokedAt) {
      log.warn("refresh token reused: family revoked", { user_id: claims.userId, family_id: claims.familyId });
      await revokeSessions(db, { familyId: claims.familyId });
    }
  }
  throw new ApiError("unauthorized", INVALID_REFRESH);
}

/** Revokes the live refresh tokens of one family, or with `{ userId }` of every family of a user; a statement, so it can join a batch. */
export const revokeSessions = (db: Database, which: { familyId: string } | { userId: string }) =>
  db
    .update(refreshTokens)
    .set({ revokedAt: nowIso() })
    .where(
      and("familyId" in which ? eq(refreshTokens.familyId, which.familyId) : eq(refreshTokens.userId, which.userId), isNull(refreshTokens.revokedAt)),
    );
