import { fileTypeFromBuffer } from "file-type";
import { imageSize } from "image-size";
import { ApiError } from "../http/errors";

/* What an upload is, decided by its bytes: the rules the files routes and the engine share. */

/** Where a user's bytes are in R2: once per user, by their SHA-256. */
export const fileKey = (userId: string, sha256: string) => `users/${userId}/${sha256}`;

/** Where a PDF's text lives, beside its bytes. */
export const textKey = (userId: string, sha256: string) => `${fileKey(userId, sha256)}.txt`;

/** The most of a PDF's text kept (about 16,000 tokens); a longer text ends with a note. */
export const PDF_TEXT_MAX_CHARS = 48_000;

export const IMAGE_TYPES = new Set(["image/png", "image/jpeg", "image/gif", "image/webp"]);
const BINARY_TYPES = new Set([...IMAGE_TYPES, "application/pdf"]);

/** Text types by file extension; any other well-formed UTF-8 text is text/plain. */
const TEXT_BY_EXTENSION: Record<string, string> = { md: "text/markdown", markdown: "text/markdown", csv: "text/csv", json: "application/json" };

export interface Sniffed {
  mediaType: string;
  width: number | null;
  height: number | null;
}

const unsupported = (message: string) => new ApiError("unsupported_media_type", message);

/** UTF-8 that decodes without error and holds no NUL or other binary control bytes. */
function textOf(bytes: Uint8Array): string | null {
  try {
    const text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
    return /[\u0000-\u0008\u000e-\u001a\u001c-\u001f]/.test(text) ? null : text;
  } catch {
    return null;
  }
}

/**
 * The type the bytes show, with an image's dimensions. The client's Content-Type is only checked
 * against it: bytes that contradict it (HTML sent as image/png), or that are none of the accepted
 * kinds, are refused with 415.
 */
export async function sniff(bytes: Uint8Array, declared: string | null, filename: string): Promise<Sniffed> {
  const found = await fileTypeFromBuffer(bytes);
  const claimed = declared?.split(";")[0]?.trim().toLowerCase() || null;
  if (found && BINARY_TYPES.has(found.mime)) {
    if (claimed && claimed !== "application/octet-stream" && claimed !== found.mime) {
      throw unsupported(`The file is ${found.mime}, not the ${claimed} it was sent as.`);
    }
    if (!IMAGE_TYPES.has(found.mime)) return { mediaType: found.mime, width: null, height: null };
    try {
      const { width, height } = imageSize(bytes);
      return { mediaType: found.mime, width: width ?? null, height: height ?? null };
    } catch {
      throw unsupported("The image could not be read.");
    }
  }
  const text = found ? null : textOf(bytes);
  if (text === null) throw unsupported(`Files of type ${found?.mime ?? "unknown binary data"} are not accepted: images (PNG, JPEG, GIF, WebP), PDF and UTF-8 text are.`);
  if (claimed && (claimed.startsWith("image/") || claimed === "application/pdf")) {
    throw unsupported(`The file is text, not the ${claimed} it was sent as.`);
  }
  const extension = filename.toLowerCase().split(".").at(-1) ?? "";
  const mediaType = TEXT_BY_EXTENSION[extension] ?? "text/plain";
  if (mediaType === "application/json") {
    try {
      JSON.parse(text);
    } catch {
      return { mediaType: "text/plain", width: null, height: null };
    }
  }
  return { mediaType, width: null, height: null };
}

/** A name for display: its last path part, without control characters, at most 200 characters. */
export function displayName(filename: string | null | undefined): string {
  const last = (filename ?? "").split(/[/\\]/).at(-1) ?? "";
  const clean = last.replace(/[\u0000-\u001f\u007f\u2028\u2029]/g, "").trim().slice(0, 200);
  return clean && clean !== "." && clean !== ".." ? clean : "file";
}
