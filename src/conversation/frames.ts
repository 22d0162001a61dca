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

/** The largest delta frame: a provider's single huge delta goes out as several, each a point to resume from. */
export const MAX_DELTA_FRAME_CHARS = 16 * 1024;

/** `text` from `offset` on as delta frames of at most MAX_DELTA_FRAME_CHARS, each named by where it ends. */
export function deltaFrames(aiMessageId: string, text: string, offset: number): Uint8Array[] {
  const frames = [];
  for (let start = offset; start < text.length; start += MAX_DELTA_FRAME_CHARS) {
    const end = Math.min(text.length, start + MAX_DELTA_FRAME_CHARS);
    frames.push(encodeFrame("delta", frameId(aiMessageId, end), { content: text.slice(start, end) }));
  }
  return frames;
}

/**
 * What a listener joining at `after` has missed of `text`: the message frame (from the start)
 * and the rest of the text in as few deltas as the frame size allows, not the deltas as they
 * were sent: a long reply's backlog in hundreds of small frames would cost far more to send.
 */
export function catchUpFrames(rows: TurnRows, text: string, after: number | "start"): Uint8Array[] {
  const offset = after === "start" ? 0 : after;
  return [...(after === "start" ? [messageFrame(rows)] : []), ...deltaFrames(rows.aiMessage.id, text, offset)];
}

/**
 * The last frame of a reply; `bookmark`, the D1 bookmark once D1 has the whole turn, lets a
 * client read it back from a replica. The reply's text is in it once, as `ai_message.content`:
 * `ai_response.response_content` would double a long reply's last frame.
 */
export function finalFrame({ ai_message, ai_response: { response_content: _, ...ai_response }, failure }: TurnResult, bookmark: string | null): Uint8Array {
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
