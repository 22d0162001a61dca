import { getConfig } from "../http/config";
import { ApiError } from "../http/errors";
import { wellFormedText } from "./text-rules";

/** Message text: not blank, no NUL characters, no lone UTF-16 surrogates. */
export const MessageContentSchema = wellFormedText()
  .refine((text) => text.trim().length > 0, "Content cannot be empty.")
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
