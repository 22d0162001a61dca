import { z } from "@hono/zod-openapi";
import { getConfig } from "./config";
import { ApiError } from "./errors";

/** Message text: not blank, no NUL characters, no lone UTF-16 surrogates. */
export const MessageContentSchema = z
  .string()
  .refine((text) => text.trim().length > 0, "Content cannot be empty.")
  .refine((text) => !text.includes("\0"), "Content cannot contain NUL characters.")
  .refine((text) => text.isWellFormed(), "Content must be valid Unicode (no lone surrogates).")
  .openapi({ example: "What is the capital of France?" });

/** The length cap is configuration (MAX_MESSAGE_LENGTH), so it is checked here, not in the schema. */
export function checkMessageContent(env: Env, content: string): string {
  const max = getConfig(env).maxMessageLength;
  if (content.length > max) {
    throw new ApiError("payload_too_large", `Content is longer than ${max} characters.`, {
      details: [{ field: "content", message: `At most ${max} characters.` }],
    });
  }
  return content;
}
