import { z } from "@hono/zod-openapi";
import { formatUuid, sha256Hex } from "./ids";
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
export const requestHash = (request: unknown): Promise<string> => sha256Hex(JSON.stringify(request));

/**
 * A conversation id derived from the user and a client-chosen name, so every retry reaches the
 * same conversation object. An HMAC under the server secret keeps it unguessable; formatted as a
 * UUID version 8. `purpose` keeps the name spaces apart.
 */
async function derivedConversationId(env: Env, purpose: string, userId: string, name: string): Promise<string> {
  return formatUuid((await hmacSha256(env, `${purpose}\0${userId}\0${name}`)).slice(0, 16), 8);
}

/** The conversation a keyed start_conversation creates: its retries replay the original. */
export const conversationIdForKey = (env: Env, userId: string, key: string) => derivedConversationId(env, "start_conversation", userId, key);

/** The conversation behind an AI SDK client's chat id. */
export const conversationIdForChat = (env: Env, userId: string, chatId: string) => derivedConversationId(env, "chat", userId, chatId);
