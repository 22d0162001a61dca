import { createRoute, z } from "@hono/zod-openapi";
import { fileKey, IMAGE_TYPES } from "../rules/file-rules";
import type { Context } from "hono";
import type { AppEnv } from "../http/app-env";
import { and, eq, isNull } from "drizzle-orm";
import { createRouter } from "../http/create-router";
import { conversationObject } from "../conversation/client/stub";
import { directoryDb, virtualShardSession } from "../db/client";
import { userDb } from "../db/request-session";
import { VIRTUAL_SHARDS, virtualShardOf } from "../db/shard-map";
import { idIn, loadOwnedConversation, revokeShareOf } from "../db/queries";
import { conversations, messages, shareLinks, shares } from "../db/schema";
import { ConversationTree, treeQuery } from "../db/tree";
import { notFound, unwrap } from "../http/errors";
import { nowIso, sha256Hex, toBase64Url } from "../lib/ids";
import { publicRequestUrl } from "../lib/pagination";
import { authenticated } from "../http/middleware";
import { errorResponses, IdParamSchema, jsonResponse, SharedConversationSchema } from "../http/schemas";

const TOKEN_BYTES = 16;

/** 128 random bits, and nothing else: not even which shard holds the conversation. */
const newShareToken = () => toBase64Url(crypto.getRandomValues(new Uint8Array(TOKEN_BYTES)));

/** Links made before share_links existed start with their owner's virtual shard (3 hex digits). */
function legacyTokenShard(token: string): number | null {
  const match = token.match(/^([0-9a-f]{3})[A-Za-z0-9_-]{22}$/);
  const shard = match ? Number.parseInt(match[1]!, 16) : NaN;
  return shard < VIRTUAL_SHARDS ? shard : null;
}

/** The virtual shard of a link's conversation, or null for a string that is no link. */
async function shardOfToken(env: Env, token: string): Promise<number | null> {
  if (!/^[A-Za-z0-9_-]{22,25}$/.test(token)) return null;
  const legacy = legacyTokenShard(token);
  if (legacy !== null) return legacy;
  const [link] = await directoryDb(env).select({ shard: shareLinks.virtualShard }).from(shareLinks).where(eq(shareLinks.tokenHash, await tokenHash(token)));
  return link?.shard ?? null;
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
  path: "/shared",
  tags: ["share"],
  summary: "A shared conversation, without auth: JSON for the token in X-Share-Token, else the page (links are /shared/#<token>)",
  request: {
    headers: z.object({ "x-share-token": z.string().min(1).max(64).optional().openapi({ description: "The token from the link's fragment." }) }),
  },
  responses: {
    200: {
      description: "The snapshot, or the page that shows it",
      content: { "application/json": { schema: SharedConversationSchema }, "text/html": { schema: z.string() } },
    },
    ...errorResponses(404),
  },
});

const readSharedImage = createRoute({
  method: "get",
  path: "/shared/images/{message}/{image}",
  tags: ["share"],
  summary: "An image of a shared message, by its place in the snapshot, for the token in X-Share-Token: file ids are never needed or shown",
  request: {
    params: z.object({
      message: z.coerce.number().int().min(0).max(100_000).openapi({ param: { name: "message", in: "path" } }),
      image: z.coerce.number().int().min(0).max(10).openapi({ param: { name: "image", in: "path" } }),
    }),
    headers: z.object({ "x-share-token": z.string().min(1).max(64) }),
  },
  responses: { 200: { description: "The image's bytes" }, ...errorResponses(404) },
});

const readLegacyShare = createRoute({
  method: "get",
  path: "/shared/{token}",
  tags: ["share"],
  summary: "A link made before tokens moved to the fragment: JSON when asked for (Accept: application/json), else the page",
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

export const shareRoutes = createRouter();

// A revoked link must not live on in a cache, and the page and its JSON share a URL.
shareRoutes.use("/shared/*", async (c, next) => {
  await next();
  c.res = new Response(c.res.body, c.res);
  c.res.headers.set("Cache-Control", "no-store");
  c.res.headers.append("Vary", "Accept, X-Share-Token");
});

shareRoutes
  .openapi(createShare, async (c) => {
    const { id } = c.req.valid("param");
    const userId = c.get("userId");
    const db = userDb(c);
    // The snapshot is read from D1: first the object makes sure D1 has all of the conversation.
    const conversation = unwrap(await conversationObject(c.env, id).synced(userId, id));
    const token = newShareToken();
    const hash = await tokenHash(token);
    // The directory first: a link it knows whose share row never landed is only a 404.
    await directoryDb(c.env).insert(shareLinks).values({ tokenHash: hash, virtualShard: virtualShardOf(userId) });
    await db.batch([
      revokeShareOf(db, id),
      db.insert(shares).values({ tokenHash: hash, conversationId: id, userId, leafMessageId: conversation.currentLeafId, createdAt: nowIso() }),
    ]);
    // In the fragment, the token never reaches a server: not ours, not our logs and traces.
    return c.json({ url: `${publicRequestUrl(c.env, new URL("/shared/", c.req.url).toString())}#${token}`, token }, 201);
  })
  .openapi(revokeShare, async (c) => {
    const { id } = c.req.valid("param");
    const db = userDb(c);
    await loadOwnedConversation(db, c.get("userId"), id);
    await revokeShareOf(db, id);
    return c.body(null, 204);
  })
  .openapi(readShare, async (c) => {
    const token = c.req.valid("header")["x-share-token"];
    if (token === undefined) return sharePage(c);
    return c.json(await snapshot(c.env, token), 200);
  })
  .openapi(readSharedImage, async (c) => {
    const { message, image } = c.req.valid("param");
    const { share, rows, images } = await sharedMessages(c.env, c.req.valid("header")["x-share-token"]);
    const row = rows[message];
    const file = row ? images(row)[image] : undefined;
    const object = file ? await c.env.FILES.get(fileKey(share.userId, file.sha256)) : null;
    if (!file || !object) throw notFound("Image");
    return new Response(object.body, {
      headers: { "Content-Type": file.mediaType, "X-Content-Type-Options": "nosniff", "Content-Security-Policy": "default-src 'none'; sandbox", "Cache-Control": "no-store" },
    });
  })
  .openapi(readLegacyShare, async (c) => {
    const { token } = c.req.valid("param");
    const shared = await snapshot(c.env, token);
    if (!(c.req.header("Accept") ?? "").includes("application/json")) return sharePage(c);
    return c.json(shared, 200);
  });

const sharePage = (c: Context<AppEnv>) => c.env.ASSETS.fetch(new URL("/shared.html", c.req.url)) as never;

/** The shared branch's messages, root first, with what each carries. Unknown, revoked, or its conversation deleted: the same 404. */
async function sharedMessages(env: Env, token: string) {
  const shard = await shardOfToken(env, token);
  if (shard === null) throw notFound("Shared conversation");
  // At the primary: a revoked link stops working at once, not when a replica catches up.
  const { db } = virtualShardSession(env, shard, "first-primary");
  const [share] = await db
    .select({ conversationId: shares.conversationId, leafMessageId: shares.leafMessageId, title: conversations.title, userId: shares.userId })
    .from(shares)
    .innerJoin(conversations, eq(conversations.id, shares.conversationId))
    .where(and(eq(shares.tokenHash, await tokenHash(token)), isNull(shares.revokedAt), eq(conversations.status, "Active")));
  if (!share) throw notFound("Shared conversation");
  const tree = new ConversationTree(await treeQuery(db, share.conversationId), false);
  const ids = tree.pathTo(share.leafMessageId).map((node) => node.id);
  const rows = ids.length
    ? await db
        .select({ sender: messages.sender, content: messages.content, timestamp: messages.timestamp, order: messages.order, attachments: messages.attachments, parts: messages.parts })
        .from(messages)
        .where(idIn(messages.id, ids))
    : [];
  rows.sort((a, b) => a.order - b.order);
  const images = (row: (typeof rows)[number]) => (row.attachments ?? []).filter((file) => !file.deleted && IMAGE_TYPES.has(file.mediaType));
  return { share, rows, images };
}

/** What a link shows: the branch as it was shared; images by their place, never their file ids. */
async function snapshot(env: Env, token: string): Promise<z.infer<typeof SharedConversationSchema>> {
  const { share, rows, images } = await sharedMessages(env, token);
  return {
    title: share.title,
    messages: rows.map((row) => {
      const shown = images(row).map(({ filename, width, height }) => ({ filename, width, height }));
      // Tool calls with their results; reasoning stays the owner's.
      const parts = row.parts?.filter((part) => part.type !== "reasoning");
      return { sender: row.sender, content: row.content, timestamp: row.timestamp, ...(shown.length ? { images: shown } : {}), ...(parts?.length ? { parts } : {}) };
    }),
  };
}
