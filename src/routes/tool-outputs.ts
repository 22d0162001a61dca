import { createRoute, z } from "@hono/zod-openapi";
import { createRouter } from "../http/create-router";
import { authenticated } from "../http/middleware";
import { IdParamSchema, jsonBody, jsonResponse } from "../http/schemas";
import { conversationObject } from "../conversation/client/stub";
import { conversationOfMessage, withGenerationSlot } from "../conversation/client/turns";
import { StreamFlagSchema, StreamQuerySchema, turnResponse, turnResponses, TurnSchema, wantsEventStream } from "../conversation/client/turn-responses";
import { IdempotencyHeadersSchema, requestHash } from "../lib/idempotency";
import { pendingCallIds } from "../rules/message-parts";
import { toolAnswersOf, ToolOutputsBodySchema } from "../rules/tool-rules";

const answerTools = createRoute({
  ...authenticated("tools"),
  method: "post",
  path: "/messages/{id}/tool_outputs",
  summary: "Answer a reply waiting for tool outputs or approvals (RequiresAction); once none waits, the same AI message goes on",
  request: {
    params: IdParamSchema,
    query: StreamQuerySchema,
    headers: IdempotencyHeadersSchema,
    body: jsonBody(ToolOutputsBodySchema.extend({ stream: StreamFlagSchema })),
  },
  responses: {
    ...turnResponses,
    200: jsonResponse(
      TurnSchema.extend({ pending: z.array(z.string()).openapi({ description: "The tool calls still waiting for an output or an approval." }) }).openapi("WaitingTurn"),
      "Stored; some calls still wait, so the turn does not go on yet (also when the next step waits again).",
    ),
  },
});

export const toolOutputRoutes = createRouter().openapi(answerTools, async (c) => {
  const { id } = c.req.valid("param");
  const { stream, ...body } = c.req.valid("json");
  const answers = toolAnswersOf(body);
  const conversationId = await conversationOfMessage(c.env, c.get("userId"), id);
  const key = c.req.header("Idempotency-Key");
  const idempotency = key ? { key, requestHash: await requestHash(["tool_outputs", id, body]) } : null;
  const mode = wantsEventStream(c, stream) ? "sse" : "json";
  const outcome = await withGenerationSlot(c, 0, (userId, lease) =>
    conversationObject(c.env, conversationId).answerTools({ userId, conversationId, aiMessageId: id, answers, lease, idempotency }, mode),
  );
  if (outcome.kind === "result" && outcome.result.ai_response.status === "RequiresAction") {
    const { failure: _, ...turn } = outcome.result;
    return c.json({ ...turn, pending: pendingCallIds(outcome.result.ai_message.parts ?? []) }, 200);
  }
  return turnResponse(c, outcome);
});
