import type { Context } from "hono";
import type { AppEnv } from "../http/app-env";
import { userDb } from "../db/request-session";
import { and, eq, isNull, ne, sql } from "drizzle-orm";
import { type AttachmentRef, type FileRow, files, messages } from "../db/schema";
import type { Database } from "../db/client";
import { getConfig } from "../http/config";
import { ApiError } from "../http/errors";
import { newId, nowIso, toHex } from "../lib/ids";
import { displayName, fileKey, PDF_TEXT_MAX_CHARS, sniff, textKey } from "../rules/file-rules";
import { log } from "../lib/log";
import { chargeStorage } from "../rules/storage";

/* Storing a user's files: what an upload and a chat message's file parts share. */

/** Marks the file `fileId` deleted in every message of the user that carries it. */
const markAttachmentDeleted = (db: Database, userId: string, fileId: string) =>
  db
    .update(messages)
    .set({
      attachments: sql`(SELECT json_group_array(CASE WHEN json_extract(value, '$.id') = ${fileId} THEN json_set(value, '$.deleted', json('true')) ELSE json(value) END)
        FROM json_each(${messages.attachments}))`,
    })
    .where(and(eq(messages.userId, userId), sql`EXISTS (SELECT 1 FROM json_each(${messages.attachments}) WHERE json_extract(value, '$.id') = ${fileId})`));

export const attachmentRef = ({ id, filename, mediaType, size, sha256, width, height, textBytes }: FileRow): AttachmentRef => ({
  id,
  filename,
  mediaType,
  size,
  sha256,
  width,
  height,
  ...(mediaType === "application/pdf" ? { textBytes } : {}),
});

/** Whether another live file of the owner holds the same bytes. */
async function bytesShared(db: Database, file: Pick<FileRow, "id" | "userId" | "sha256">): Promise<boolean> {
  const [other] = await db
    .select({ id: files.id })
    .from(files)
    .where(and(eq(files.userId, file.userId), eq(files.sha256, file.sha256), isNull(files.deletedAt), ne(files.id, file.id)))
    .limit(1);
  return other !== undefined;
}

/**
 * Deletes a file: it is marked deleted, the messages that carried it keep a stub (its id and
 * name, marked deleted), and its bytes go, with their room in the owner's quota, unless another
 * of the owner's files holds them.
 */
export async function deleteFile(env: Env, db: Database, file: FileRow): Promise<void> {
  await db.batch([db.update(files).set({ deletedAt: nowIso() }).where(eq(files.id, file.id)), markAttachmentDeleted(db, file.userId, file.id)]);
  if (await bytesShared(db, file)) return;
  await env.FILES.delete([fileKey(file.userId, file.sha256), textKey(file.userId, file.sha256)]);
  await chargeStorage(env, file.userId, -file.size);
}

/**
 * Stores an upload: its type decided by its bytes (415 otherwise), at most MAX_FILE_BYTES (413),
 * its bytes once per user and counted against the storage quota.
 */
export async function storeFile(c: Context<AppEnv>, { bytes, declared, name }: { bytes: Uint8Array; declared: string | null; name: string | undefined }): Promise<FileRow> {
  const userId = c.get("userId");
  const { maxFileBytes } = getConfig(c.env);
  if (bytes.byteLength === 0) throw new ApiError("bad_request", "The file is empty.");
  if (bytes.byteLength > maxFileBytes) throw new ApiError("payload_too_large", `A file may hold at most ${maxFileBytes} bytes.`);
  const filename = displayName(name);
  const { mediaType, width, height } = await sniff(bytes, declared, filename);
  const sha256 = toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)));
  const file: FileRow = { id: newId(), userId, filename, mediaType, size: bytes.byteLength, sha256, width, height, textBytes: null, createdAt: nowIso(), deletedAt: null };
  // The same bytes are stored, and counted against the quota, once per user.
  if (!(await bytesShared(userDb(c), file))) {
    await chargeStorage(c.env, userId, bytes.byteLength);
    await c.env.FILES.put(fileKey(userId, sha256), bytes, { httpMetadata: { contentType: mediaType }, sha256 });
  }
  if (mediaType === "application/pdf") file.textBytes = await storePdfText(c.env, userId, sha256, bytes);
  await userDb(c).insert(files).values(file);
  return file;
}

/**
 * A PDF's text, read once at upload by the PDF_TEXT Worker and kept in R2 beside its bytes, so a
 * turn reads it like a text file (and its window counts it) without parsing the PDF again. Its
 * size in UTF-8, or null when the PDF has no text that can be read or the extractor is not reachable.
 */
async function storePdfText(env: Env, userId: string, sha256: string, bytes: Uint8Array): Promise<number | null> {
  let text: string;
  try {
    const response = await env.PDF_TEXT.fetch("https://pdf-text/", { method: "POST", body: bytes });
    if (!response.ok) return null;
    text = ((await response.json()) as { text: string }).text.trim();
  } catch (error) {
    log.warn("the PDF text extractor could not be reached", { error: String(error) });
    return null;
  }
  if (!text) return null;
  if (text.length > PDF_TEXT_MAX_CHARS) text = `${text.slice(0, PDF_TEXT_MAX_CHARS)}\n[The PDF's text goes on for ${text.length - PDF_TEXT_MAX_CHARS} more characters, left out here.]`;
  const stored = new TextEncoder().encode(text);
  await env.FILES.put(textKey(userId, sha256), stored, { httpMetadata: { contentType: "text/plain; charset=utf-8" } });
  return stored.length;
}
