import { createRoute, z } from "@hono/zod-openapi";
import { and, eq, isNull } from "drizzle-orm";
import { createRouter } from "../http/create-router";
import { conversationObject } from "../conversation/client/stub";
import { virtualShardSession } from "../db/client";
import { userDb } from "../db/request-session";
import { VIRTUAL_SHARDS, virtualShardOf } from "../db/shard-map";
import { idIn, loadOwnedConversation } from "../db/queries";
import { conversations, messages, shares } from "../db/schema";
import { ConversationTree, treeQuery } from "../db/tree";
import { notFound, unwrap } from "../http/errors";
import { nowIso, sha256Hex, toBase64Url } from "../lib/ids";
import { publicRequestUrl } from "../lib/pagination";
import { authenticated } from "../http/middleware";
import { errorResponses, IdParamSchema, jsonResponse, SharedConversationSchema } from "../http/schemas";

const TOKEN_BYTES = 16;

/**
 * A token is its owner's virtual shard (3 hex digits) and 128 random bits: a link is served
 * without auth, so the token alone must say which database holds the conversation.
 */
const newShareToken = (userId: string) =>
  virtualShardOf(userId).toString(16).padStart(3, "0") + toBase64Url(crypto.getRandomValues(new Uint8Array(TOKEN_BYTES)));

/** The virtual shard a token names, or null for a string that is no token. */
function tokenShard(token: string): number | null {
  const match = token.match(/^([0-9a-f]{3})[A-Za-z0-9_-]{22}$/);
  const shard = match ? Number.parseInt(match[1]!, 16) : NaN;
  return shard < VIRTUAL_SHARDS ? shard : null;
}

const secured = authenticated("share");

const createShare = createRoute({
  ...secured,
  method: "post",
  path: "/conversations/{id}/share",
  summary: "A read-only link to the current branch as it is now; an earlier link of this conversation stops working",
  request: { params: IdParamSchema },
  responses: {
    201: jsonResponse(z.object({ url: z.string(), token: z.string() }).openapi("ShareLink"), "The link"),
    ...errorResponses(401, 404),
  },
});

const revokeShare = createRoute({
  ...secured,
  method: "delete",
  path: "/conversations/{id}/share",
  summary: "Revoke the conversation's share link at once",
  request: { params: IdParamSchema },
  responses: { 204: { description: "Revoked (also when there was none)" }, ...errorResponses(401, 404) },
});

const readShare = createRoute({
  method: "get",
  path: "/shared/{token}",
  tags: ["share"],
  summary: "A shared conversation, without auth: JSON when asked for (Accept: application/json), else a page showing it",
  request: { params: z.object({ token: z.string().min(1).max(64).openapi({ param: { name: "token", in: "path" } }) }) },
  responses: {
    200: {
      description: "The snapshot",
      content: { "application/json": { schema: SharedConversationSchema }, "text/html": { schema: z.string() } },
    },
    ...errorResponses(404),
  },
});

/** Only this is stored: a leaked table does not hand out working links. */
const tokenHash = sha256Hex;

export const shareRoutes = createRouter()
  .openapi(createShare, async (c) => {
    const { id } = c.req.valid("param");
    const userId = c.get("userId");
    const db = userDb(c);
    // The snapshot is read from D1: first the object makes sure D1 has all of the conversation.
    const conversation = unwrap(await conversationObject(c.env, id).synced(userId, id));
    const token = newShareToken(userId);
    await db.batch([
      db.update(shares).set({ revokedAt: nowIso() }).where(and(eq(shares.conversationId, id), isNull(shares.revokedAt))),
      db.insert(shares).values({ tokenHash: await tokenHash(token), conversationId: id, userId, leafMessageId: conversation.currentLeafId, createdAt: nowIso() }),
    ]);
    return c.json({ url: publicRequestUrl(c.env, new URL(`/shared/${token}/`, c.req.url).toString()).toString(), token }, 201);
  })
  .openapi(revokeShare, async (c) => {
    const { id } = c.req.valid("param");
    const db = userDb(c);
    await loadOwnedConversation(db, c.get("userId"), id);
    await db.update(shares).set({ revokedAt: nowIso() }).where(and(eq(shares.conversationId, id), isNull(shares.revokedAt)));
    return c.body(null, 204);
  })
  .openapi(readShare, async (c) => {
    const { token } = c.req.valid("param");
    const shard = tokenShard(token);
    if (shard === null) throw notFound("Shared conversation");
    // At the primary: a revoked link stops working at once, not when a replica catches up.
    const { db } = virtualShardSession(c.env, shard, "first-primary");
    const [share] = await db
      .select({ conversationId: shares.conversationId, leafMessageId: shares.leafMessageId, title: conversations.title })
      .from(shares)
      .innerJoin(conversations, eq(conversations.id, shares.conversationId))
      .where(and(eq(shares.tokenHash, await tokenHash(token)), isNull(shares.revokedAt), eq(conversations.status, "Active")));
    // Unknown, revoked, or its conversation deleted: the same 404.
    if (!share) throw notFound("Shared conversation");
    if (!(c.req.header("Accept") ?? "").includes("application/json")) {
      return c.env.ASSETS.fetch(new URL("/shared.html", c.req.url)) as never;
    }
    const tree = new ConversationTree(await treeQuery(db, share.conversationId), false);
    const ids = tree.pathTo(share.leafMessageId).map((node) => node.id);
    const rows = ids.length
      ? await db
          .select({ sender: messages.sender, content: messages.content, timestamp: messages.timestamp, order: messages.order })
          .from(messages)
          .where(idIn(messages.id, ids))
      : [];
    rows.sort((a, b) => a.order - b.order);
    return c.json({ title: share.title, messages: rows.map(({ sender, content, timestamp }) => ({ sender, content, timestamp })) }, 200);
  });
