import type { AttachmentRef } from "../db/schema";
import { fileKey, textKey } from "../rules/file-rules";
import type { ChatMessage, ContentPart } from "../model/model";

/* A turn's files, read from R2 into the messages that carry them, as OpenAI content parts. */

function base64(bytes: Uint8Array): string {
  let binary = "";
  // In slices: String.fromCharCode takes its arguments on the stack.
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

/**
 * What the model gets of one file: an image as a data URL, text inline under its name, a PDF's
 * text (read at upload) the same way, and a deleted file or a PDF with no text as a line saying so.
 */
async function partOf(bucket: R2Bucket, userId: string, file: AttachmentRef): Promise<ContentPart> {
  const isPdf = file.mediaType === "application/pdf";
  if (isPdf && !file.deleted && !file.textBytes) return { type: "text", text: `[A PDF, ${file.filename}, is attached; no text could be read from it.]` };
  const object = file.deleted ? null : await bucket.get(isPdf ? textKey(userId, file.sha256) : fileKey(userId, file.sha256));
  if (!object) return { type: "text", text: `[The file ${file.filename} was attached here and has since been deleted.]` };
  const bytes = new Uint8Array(await object.arrayBuffer());
  if (file.mediaType.startsWith("image/")) return { type: "image_url", image_url: { url: `data:${file.mediaType};base64,${base64(bytes)}` } };
  return { type: "text", text: `File ${file.filename}:\n${new TextDecoder().decode(bytes)}` };
}

/** The prompt with every message's files read into it, each after a line with its name; messages without files are unchanged. */
export async function withFileParts(prompt: ChatMessage[], bucket: R2Bucket, userId: string): Promise<ChatMessage[]> {
  return Promise.all(
    prompt.map(async ({ attachments, ...message }) => {
      if (!attachments?.length) return message;
      const files = await Promise.all(attachments.map(async (file): Promise<ContentPart[]> => [{ type: "text", text: `[${file.filename}]` }, await partOf(bucket, userId, file)]));
      return { ...message, content: [{ type: "text", text: String(message.content) }, ...files.flat()] };
    }),
  );
}
