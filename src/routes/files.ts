import { createRoute, z } from "@hono/zod-openapi";
import { and, count, desc, eq, isNull } from "drizzle-orm";
import type { Context } from "hono";
import type { AppEnv } from "../http/app-env";
import { createRouter } from "../http/create-router";
import { refuseWhileMoving, userDb } from "../db/request-session";
import { type FileRow, files } from "../db/schema";
import { ApiError, notFound } from "../http/errors";
import { authenticated } from "../http/middleware";
import { errorResponses, FileSchema, IdParamSchema, jsonResponse, PageQuerySchema, pageSchema, renderFile } from "../http/schemas";
import { pageBody, pageOffset } from "../lib/pagination";
import { fileKey, IMAGE_TYPES } from "../rules/file-rules";
import { deleteFile, storeFile } from "../files/file-store";

const secured = authenticated("files");

const uploadFile = createRoute({
  ...secured,
  method: "post",
  path: "/files",
  summary: "Upload a file: the raw bytes with their Content-Type and ?filename=, or multipart/form-data with a `file` field",
  request: { query: z.object({ filename: z.string().max(1_000).optional().openapi({ description: "For display; path parts and control characters are removed." }) }) },
  responses: { 201: jsonResponse(FileSchema, "The stored file"), ...errorResponses(400, 401, 413, 415, 429) },
});

const listFiles = createRoute({
  ...secured,
  method: "get",
  path: "/files",
  summary: "Your files, newest first",
  request: { query: PageQuerySchema },
  responses: { 200: jsonResponse(pageSchema(FileSchema, "FilePage"), "A page of files"), ...errorResponses(401, 404) },
});

const getFile = createRoute({
  ...secured,
  method: "get",
  path: "/files/{id}",
  summary: "A file's metadata",
  request: { params: IdParamSchema },
  responses: { 200: jsonResponse(FileSchema, "The file"), ...errorResponses(401, 404) },
});

const getFileContent = createRoute({
  ...secured,
  method: "get",
  path: "/files/{id}/content",
  summary: "A file's bytes: images inline, anything else as a download; never a page that runs in this origin",
  request: { params: IdParamSchema },
  responses: { 200: { description: "The bytes, with the sniffed Content-Type" }, ...errorResponses(401, 404) },
});

const deleteFileRoute = createRoute({
  ...secured,
  method: "delete",
  path: "/files/{id}",
  summary: "Delete a file: its bytes go unless another of your files holds the same ones",
  request: { params: IdParamSchema },
  responses: { 204: { description: "Deleted" }, ...errorResponses(401, 404) },
});

/** The upload's bytes, declared type and name: a raw body, or a multipart form's `file` field. */
async function receivedFile(c: Context<AppEnv>, filename: string | undefined) {
  const contentType = c.req.header("Content-Type") ?? null;
  if (contentType?.toLowerCase().startsWith("multipart/form-data")) {
    const form = await c.req.formData().catch(() => null);
    const file = form?.get("file");
    if (!(file instanceof File)) throw new ApiError("bad_request", "A multipart upload needs its bytes in a `file` field.");
    return { bytes: new Uint8Array(await file.arrayBuffer()), declared: file.type || null, name: filename ?? file.name };
  }
  return { bytes: new Uint8Array(await c.req.arrayBuffer()), declared: contentType, name: filename };
}

async function ownedFile(c: Context<AppEnv>, id: string): Promise<FileRow> {
  const [file] = await userDb(c)
    .select()
    .from(files)
    .where(and(eq(files.id, id), eq(files.userId, c.get("userId")), isNull(files.deletedAt)));
  if (!file) throw notFound("File");
  return file;
}

export const fileRoutes = createRouter()
  .openapi(uploadFile, async (c) => {
    refuseWhileMoving(c);
    const file = await storeFile(c, await receivedFile(c, c.req.valid("query").filename));
    return c.json(renderFile(file), 201);
  })
  .openapi(listFiles, async (c) => {
    const paging = c.req.valid("query");
    const db = userDb(c);
    const mine = and(eq(files.userId, c.get("userId")), isNull(files.deletedAt));
    const [[total], rows] = await db.batch([
      db.select({ n: count() }).from(files).where(mine),
      db.select().from(files).where(mine).orderBy(desc(files.createdAt), desc(files.id)).limit(paging.page_size).offset(pageOffset(paging)),
    ]);
    return c.json(pageBody(c.env, c.req.url, paging, total?.n ?? 0, rows.map(renderFile)), 200);
  })
  .openapi(getFile, async (c) => c.json(renderFile(await ownedFile(c, c.req.valid("param").id)), 200))
  .openapi(getFileContent, async (c) => {
    const file = await ownedFile(c, c.req.valid("param").id);
    const object = await c.env.FILES.get(fileKey(file.userId, file.sha256));
    if (!object) throw notFound("File");
    const inline = IMAGE_TYPES.has(file.mediaType);
    const type = file.mediaType.startsWith("text/") || file.mediaType === "application/json" ? `${file.mediaType}; charset=utf-8` : file.mediaType;
    return new Response(object.body, {
      headers: {
        "Content-Type": type,
        "Content-Length": String(file.size),
        "Content-Disposition": `${inline ? "inline" : "attachment"}; filename*=UTF-8''${encodeURIComponent(file.filename)}`,
        // A user's upload must never become a page of this origin: no sniffing, no scripts, no framing.
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox",
        "Cache-Control": "private, max-age=3600",
      },
    });
  })
  .openapi(deleteFileRoute, async (c) => {
    refuseWhileMoving(c);
    await deleteFile(c.env, userDb(c), await ownedFile(c, c.req.valid("param").id));
    return c.body(null, 204);
  });
