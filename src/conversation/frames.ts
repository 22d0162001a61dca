import { renderAiResponse, renderContext, renderConversation, renderMessage } from "../http/schemas";
import { TurnFailure } from "../model/model";
import { encodeFrame, frameId } from "../http/sse";
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

/**
 * What a listener joining at `after` has missed of `text`: the message frame (from the start)
 * and the rest of the text as one delta. One frame, not the deltas as they were sent: a long
 * reply's backlog would otherwise fill a new listener's buffer before it read anything.
 */
export function catchUpFrames(rows: TurnRows, text: string, after: number | "start"): Uint8Array[] {
  const offset = after === "start" ? 0 : after;
  const frames = after === "start" ? [messageFrame(rows)] : [];
  if (offset < text.length) frames.push(encodeFrame("delta", frameId(rows.aiMessage.id, text.length), { content: text.slice(offset) }));
  return frames;
}

/** The last frame of a reply; `bookmark`, the D1 bookmark once D1 has the whole turn, lets a client read it back from a replica. */
export function finalFrame({ ai_message, ai_response, failure }: TurnResult, bookmark: string | null): Uint8Array {
  const id = frameId(ai_message.id, "end");
  const stored = bookmark ? { bookmark } : {};
  return failure ? encodeFrame("error", id, { ...failure, ai_message, ai_response, ...stored }) : encodeFrame("done", id, { ai_message, ai_response, ...stored });
}

/** Every frame of a finished reply after `from` (a character offset, or from its message frame). */
export const storedFrames = (rows: TurnRows, from: number | "start", bookmark: string | null): Uint8Array[] => [
  ...catchUpFrames(rows, rows.aiMessage.content, from),
  finalFrame(turnResult(rows, storedFailure(rows)), bookmark),
];

export const framesStream = (frames: Uint8Array[]) =>
  new ReadableStream<Uint8Array>({
    start(controller) {
      for (const frame of frames) controller.enqueue(frame);
      controller.close();
    },
  });
