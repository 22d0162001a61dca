import { z } from "@hono/zod-openapi";
import { formatUuid, toHex } from "./ids";
import { hmacSha256 } from "./tokens";

export const IdempotencyHeadersSchema = z.object({
  "idempotency-key": z
    .string()
    .min(1)
    .max(255)
    .regex(/^[\x20-\x7e]+$/, "Must be 1–255 printable ASCII characters.")
    .optional()
    .openapi({ description: "Retries with the same key within 24 h return the original result instead of sending again." }),
});

/** Identifies what was sent with a key, so the same key with another body can be refused. */
export async function requestHash(request: unknown): Promise<string> {
  return toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(JSON.stringify(request)))));
}

/**
 * The id of the conversation a keyed start_conversation creates: derived from the user and the
 * key, so every retry reaches the same conversation object, which then replays the original.
 * An HMAC under the server secret keeps it unguessable; formatted as a UUID version 8.
 */
export async function conversationIdForKey(env: Env, userId: string, key: string): Promise<string> {
  return formatUuid((await hmacSha256(env, `start_conversation\0${userId}\0${key}`)).slice(0, 16), 8);
}
