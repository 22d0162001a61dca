import type { MessagePart } from "../db/schema";
import { renderAiResponse, renderContext, renderConversation, renderMessage } from "../http/schemas";
import { TurnFailure } from "../model/model";
import { encodeFrame, type FrameEvent, frameId } from "../http/sse";
import { layout, partsOf, type ToolCallPart } from "../rules/message-parts";
import type { TurnRows } from "./turn-rows";

/* What a turn looks like to clients: its JSON result and its SSE frames, live or from the store. */

export type TurnResult = {
  conversation: ReturnType<typeof renderConversation>;
  user_message: ReturnType<typeof renderMessage>;
  ai_message: ReturnType<typeof renderMessage>;
  ai_response: ReturnType<typeof renderAiResponse>;
  /** `retry_after`: seconds, when the provider rate limited the turn and said how long to wait. */
  failure: { code: TurnFailure["code"]; message: string; retry_after?: number } | null;
};

/** The failure of a stored Error response, as the live turn reported it. */
export const storedFailure = ({ aiResponse }: TurnRows) =>
  aiResponse.status === "Error" ? new TurnFailure((aiResponse.errorCode ?? "upstream_error") as TurnFailure["code"], aiResponse.errorMessage ?? "") : null;

export function turnResult(rows: TurnRows, failure: TurnFailure | null): TurnResult {
  return {
    conversation: renderConversation(rows.conversation),
    user_message: renderMessage(rows.userMessage, { aiResponseStatus: rows.aiResponse.status }),
    ai_message: renderMessage(rows.aiMessage, { reply: rows.aiResponse }),
    ai_response: renderAiResponse(rows.aiResponse, rows.aiMessage.content),
    failure: failure ? { code: failure.code, message: failure.message, ...(failure.retryAfterSeconds ? { retry_after: failure.retryAfterSeconds } : {}) } : null,
  };
}

function messageFrame(rows: TurnRows): Uint8Array {
  return encodeFrame("message", frameId(rows.aiMessage.id, 0), {
    conversation: renderConversation(rows.conversation),
    user_message: renderMessage(rows.userMessage, { aiResponseStatus: rows.aiResponse.status }),
    ai_message: renderMessage(rows.aiMessage, { reply: rows.aiResponse }),
    // Null while the turn waits behind another one: its window is chosen when it starts.
    context: renderContext(rows.aiResponse),
  });
}

/** The largest delta frame: a provider's single huge delta goes out as several, each a point to resume from. */
export const MAX_DELTA_FRAME_CHARS = 16 * 1024;

/**
 * A text or reasoning part from its character `offset` on, as frames of at most
 * MAX_DELTA_FRAME_CHARS, each named by the position it ends at (the part starts at `start`).
 */
export function textFrames(aiMessageId: string, event: "delta" | "reasoning", text: string, start: number, offset: number): Uint8Array[] {
  const frames = [];
  for (let from = offset; from < text.length; from += MAX_DELTA_FRAME_CHARS) {
    const end = Math.min(text.length, from + MAX_DELTA_FRAME_CHARS);
    frames.push(encodeFrame(event, frameId(aiMessageId, start + end), { content: text.slice(from, end) }));
  }
  return frames;
}

/** A call's frame, sent once its arguments are complete. */
export const toolCallFrame = (aiMessageId: string, call: ToolCallPart, end: number) =>
  encodeFrame("tool_call", frameId(aiMessageId, end), { id: call.id, name: call.name, arguments: call.arguments, executor: call.executor, status: call.status });

/** A call's result: its output, or its error (a denial's reason). */
export const toolResultFrame = (aiMessageId: string, call: ToolCallPart, end: number) =>
  encodeFrame("tool_result", frameId(aiMessageId, end), { id: call.id, status: call.status, ...(call.status === "completed" ? { output: call.output ?? "" } : { error: call.error ?? "" }) });

/** Every frame of `parts` after position `after`, a text part's rest in as few deltas as the frame size allows. */
export function partFrames(aiMessageId: string, parts: readonly MessagePart[], after: number): Uint8Array[] {
  const frames: Uint8Array[] = [];
  for (const frame of layout(parts)) {
    if (frame.end <= after) continue;
    if (frame.kind === "text" || frame.kind === "reasoning") {
      frames.push(...textFrames(aiMessageId, frame.kind === "text" ? "delta" : "reasoning", frame.text, frame.start, Math.max(0, after - frame.start)));
    } else {
      frames.push((frame.kind === "tool_call" ? toolCallFrame : toolResultFrame)(aiMessageId, frame.call, frame.end));
    }
  }
  return frames;
}

/**
 * What a listener joining at `after` has missed of the reply's `parts`: the message frame (from
 * the start) and the rest, not the deltas as they were sent: a long reply's backlog in hundreds
 * of small frames would cost far more to send.
 */
export function catchUpFrames(rows: TurnRows, parts: readonly MessagePart[], after: number | "start"): Uint8Array[] {
  return [...(after === "start" ? [messageFrame(rows)] : []), ...partFrames(rows.aiMessage.id, parts, after === "start" ? 0 : after)];
}

/**
 * The last frame of a run: `done`, `error`, or `requires_action` when the turn waits for tool
 * outputs or approvals. `bookmark`, the D1 bookmark once D1 has the whole turn, lets a client
 * read it back from a replica. The reply's text is in it once, as `ai_message.content`:
 * `ai_response.response_content`, or parts that are only the text, would double a long reply's
 * last frame.
 */
export function finalFrame({ ai_message: message, ai_response: { response_content: _, ...ai_response }, failure }: TurnResult, bookmark: string | null): Uint8Array {
  const id = frameId(message.id, "end");
  // Parts that are only the text would double it: they go along when there is more (tool calls, reasoning).
  const { parts, ...withoutParts } = message;
  const ai_message = parts?.some((part) => part.type !== "text") ? message : withoutParts;
  const stored = bookmark ? { bookmark } : {};
  if (failure) return encodeFrame("error", id, { ...failure, ai_message, ai_response, ...stored });
  const event: FrameEvent = ai_response.status === "RequiresAction" ? "requires_action" : "done";
  return encodeFrame(event, id, { ai_message, ai_response, ...stored });
}

/** Every frame of a finished (or waiting) reply after `from` (a position, or from its message frame). */
export const storedFrames = (rows: TurnRows, from: number | "start", bookmark: string | null): Uint8Array[] => [
  ...catchUpFrames(rows, partsOf(rows.aiMessage), from),
  finalFrame(turnResult(rows, storedFailure(rows)), bookmark),
];

export const framesStream = (frames: Uint8Array[]) =>
  new ReadableStream<Uint8Array>({
    start(controller) {
      for (const frame of frames) controller.enqueue(frame);
      controller.close();
    },
  });
