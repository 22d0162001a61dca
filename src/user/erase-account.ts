import { eq } from "drizzle-orm";
import { directoryDb, shardSession } from "../db/client";
import { idIn } from "../db/queries";
import { aiResponses, conversations, files, messages, refreshTokens, shareLinks, shares, summaries, usageDaily, users } from "../db/schema";
import { conversationObject } from "../conversation/client/stub";
import { userObject } from "./user-object";

/** Conversation objects erased at once. */
const ERASE_CONCURRENCY = 10;
const R2_DELETE_BATCH = 1_000;

/**
 * Deletes everything a user has: first the user's object refuses any new turn or upload (an
 * access token stays valid for up to 15 minutes), then each conversation's object stops its
 * turns and empties its storage, then the rows of the user's shard, the bytes under the user's
 * prefix in R2, the share links, the sessions and the user. Returns how many conversations went.
 */
export async function eraseAccount(env: Env, userId: string): Promise<{ conversations: number }> {
  await userObject(env, userId).erase();
  const { db } = shardSession(env, userId, "first-primary");
  const owned = await db.select({ id: conversations.id }).from(conversations).where(eq(conversations.userId, userId));
  for (let i = 0; i < owned.length; i += ERASE_CONCURRENCY) {
    await Promise.all(owned.slice(i, i + ERASE_CONCURRENCY).map(({ id }) => conversationObject(env, id).erase(userId, id)));
  }
  const links = await db.select({ tokenHash: shares.tokenHash }).from(shares).where(eq(shares.userId, userId));
  // Children before parents: the shard's foreign keys hold at every statement's end.
  await db.batch([
    db.delete(shares).where(eq(shares.userId, userId)),
    db.delete(aiResponses).where(eq(aiResponses.userId, userId)),
    db.delete(summaries).where(idIn(summaries.conversationId, owned.map(({ id }) => id))),
    db.delete(messages).where(eq(messages.userId, userId)),
    db.delete(conversations).where(eq(conversations.userId, userId)),
    db.delete(files).where(eq(files.userId, userId)),
    db.delete(usageDaily).where(eq(usageDaily.userId, userId)),
  ]);
  await deleteStoredBytes(env.FILES, `users/${userId}/`);
  const directory = directoryDb(env);
  await directory.batch([
    directory.delete(shareLinks).where(idIn(shareLinks.tokenHash, links.map(({ tokenHash }) => tokenHash))),
    directory.delete(refreshTokens).where(eq(refreshTokens.userId, userId)),
    directory.delete(users).where(eq(users.id, userId)),
  ]);
  return { conversations: owned.length };
}

async function deleteStoredBytes(bucket: R2Bucket, prefix: string): Promise<void> {
  for (let cursor: string | undefined; ; ) {
    const page = await bucket.list({ prefix, cursor, limit: R2_DELETE_BATCH });
    if (page.objects.length) await bucket.delete(page.objects.map((object) => object.key));
    if (!page.truncated) return;
    cursor = page.cursor;
  }
}
