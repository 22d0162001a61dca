import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
import type { AppEnv } from "../http/app-env";
import { getConfig } from "../http/config";
import { ApiError } from "../http/errors";
import { type Database, shardSession } from "./client";
import { virtualShardOf } from "./shard-map";

export const BOOKMARK_HEADER = "X-D1-Bookmark";

// D1 bookmarks are hex fields joined by dashes (lexicographically ordered); anything else would
// make the session's first query fail, so it is ignored instead.
const BOOKMARK_PATTERN = /^[0-9a-f]{1,64}(-[0-9a-f]{1,64}){1,7}$/i;

/**
 * Where the request's session on the caller's shard starts. A request that writes or admits a
 * turn reads from the primary; a read follows the bookmark the client sent back (so it sees the
 * client's own latest writes), or any replica without one.
 */
const isWrite = (c: Context<AppEnv>) => c.req.method !== "GET" && c.req.method !== "HEAD";

function sessionConstraint(c: Context<AppEnv>): string {
  if (isWrite(c)) return "first-primary";
  const bookmark = c.req.header(BOOKMARK_HEADER);
  return bookmark && BOOKMARK_PATTERN.test(bookmark) ? bookmark : "first-unconstrained";
}

/**
 * The caller's shard, in the request's one session: every query of a request on user data goes
 * through it. While the caller's virtual shard is being moved (FROZEN_VIRTUAL_SHARDS), requests
 * that write are refused, so nothing lands in the database the rows are being copied from.
 */
export function userDb(c: Context<AppEnv>): Database {
  let connection = c.get("shard");
  if (!connection) {
    if (isWrite(c)) refuseWhileMoving(c);
    connection = shardSession(c.env, c.get("userId"), sessionConstraint(c));
    c.set("shard", connection);
  }
  return connection.db;
}

/**
 * While the caller's virtual shard is being moved (FROZEN_VIRTUAL_SHARDS), requests that write are
 * refused, so nothing lands in the database the rows are being copied from (the conversation
 * objects' outboxes hold their writes meanwhile too).
 */
export function refuseWhileMoving(c: Context<AppEnv>): void {
  if (getConfig(c.env).frozenVirtualShards.has(virtualShardOf(c.get("userId")))) {
    throw new ApiError("moving", "Your conversations are being moved to another database; try again in a minute.", { headers: { "Retry-After": "60" } });
  }
}

/** A bookmark from a write made elsewhere for this request (the conversation object's). */
export function noteBookmark(c: Context<AppEnv>, bookmark: string | null | undefined): void {
  const known = c.get("bookmark");
  if (bookmark && (!known || bookmark > known)) c.set("bookmark", bookmark);
}

/** Every response of a request that touched the caller's shard carries the newest bookmark it saw. */
export const bookmarkHeader = createMiddleware<AppEnv>(async (c, next) => {
  await next();
  noteBookmark(c, c.get("shard")?.bookmark);
  const bookmark = c.get("bookmark");
  if (!bookmark) return;
  try {
    c.res.headers.set(BOOKMARK_HEADER, bookmark);
  } catch {
    // A response with immutable headers (a fetched asset): copy it.
    c.res = new Response(c.res.body, c.res);
    c.res.headers.set(BOOKMARK_HEADER, bookmark);
  }
});
