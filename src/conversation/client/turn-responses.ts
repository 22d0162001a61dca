import { z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { AppEnv } from "../../http/app-env";
import { noteBookmark } from "../../db/request-session";
import { ApiError } from "../../http/errors";
import { AiResponseSchema, ConversationSchema, ErrorSchema, errorResponses, MessageSchema } from "../../http/schemas";
import { SSE_HEADERS } from "../../http/sse";
import type { SubmitOutcome, TurnResult } from "../contract";

/* How every route that runs a turn answers: its OpenAPI shapes, and JSON or SSE as the client asked. */

export const TurnSchema = z
  .object({ conversation: ConversationSchema, user_message: MessageSchema, ai_message: MessageSchema, ai_response: AiResponseSchema })
  .openapi("Turn");

/** OpenAI-style callers ask for a stream in the body. */
export const StreamFlagSchema = z.boolean().optional().openapi({ description: "`true` answers with Server-Sent Events, like `Accept: text/event-stream`." });

export const StreamQuerySchema = z.object({
  stream: z.enum(["true", "false"]).optional().openapi({ description: "`true` answers with Server-Sent Events, like `Accept: text/event-stream`." }),
});

export const SSE_DESCRIPTION =
  "With `Accept: text/event-stream` or `?stream=true`: `event: message` ({conversation, user_message, ai_message}), " +
  "then `event: delta` ({content}) per token (and `reasoning`, `tool_call`, `tool_result` in a turn with tools), then " +
  "`event: done` ({ai_message, ai_response}), `event: requires_action` (the turn waits for tool outputs) or `event: error` " +
  "({code, message, ai_message, ai_response}). Frame ids are `<ai message id>:<position>`; resume with " +
  "GET /conversations/{id}/stream/ and `Last-Event-ID`.";

export const turnResponses = {
  201: {
    description: `The stored turn (JSON mode). ${SSE_DESCRIPTION}`,
    content: { "application/json": { schema: TurnSchema }, "text/event-stream": { schema: z.string() } },
  },
  502: {
    description: "The model failed: the error plus the stored user message and the AI response with status Error.",
    content: { "application/json": { schema: ErrorSchema.extend(TurnSchema.shape) } },
  },
  ...errorResponses(400, 401, 404, 409, 413, 415, 422, 429, 503),
};

export const wantsEventStream = (c: Context<AppEnv>, bodyFlag: boolean | undefined) =>
  bodyFlag ?? (c.req.query("stream") === "true" || (c.req.header("Accept") ?? "").includes("text/event-stream"));

export function turnResponse(c: Context<AppEnv>, outcome: Exclude<SubmitOutcome, { kind: "rejected" }>): Response {
  if (outcome.kind === "stream") return c.body(outcome.stream, 200, SSE_HEADERS);
  noteBookmark(c, outcome.bookmark);
  const { failure, ...turn }: TurnResult = outcome.result;
  // Only a model failure is a 502: a cancelled or interrupted reply is a stored turn like any other.
  if (failure && failure.code !== "cancelled" && failure.code !== "interrupted") {
    const retryAfter = failure.retry_after ? { "Retry-After": String(failure.retry_after) } : undefined;
    const error = new ApiError("upstream_error", failure.message, { details: { code: failure.code }, headers: retryAfter });
    return c.json({ ...error.body(c.get("requestId")), ...turn }, 502, error.headers);
  }
  return c.json(turn, 201);
}
