import { getConfig } from "../http/config";
import { ACCOUNT_DELETED, ApiError } from "../http/errors";
import { userObject } from "../user/user-object";

/* The per-user storage quota (USER_STORAGE_BYTES), shared by the routes and the conversation objects. */

/** Counts `bytes` more stored for `userId` (fewer, when negative), or refuses with 413 when the quota cannot hold them. */
export async function chargeStorage(env: Env, userId: string, bytes: number): Promise<void> {
  if (bytes === 0) return;
  const limit = getConfig(env).userStorageBytes;
  const { ok, usedBytes, erased } = await userObject(env, userId).store(bytes, limit);
  if (erased) throw ACCOUNT_DELETED;
  if (!ok) {
    throw new ApiError("storage_quota_exceeded", `This needs ${bytes} bytes more storage; ${Math.max(0, limit - usedBytes)} of your ${limit} are left.`, {
      details: { bytes_needed: bytes, bytes_used: usedBytes, bytes_limit: limit },
    });
  }
}
