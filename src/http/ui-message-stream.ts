import { SSE_HEADERS } from "./sse";

/*
 * The AI SDK's UI message stream protocol (`ai` 7: `uiMessageChunkSchema`), made from a turn's own
 * SSE frames: `message` → start + text-start, `delta` → text-delta, `done` → text-end + finish,
 * `error` → text-end + error (or abort when cancelled), then `[DONE]`. Heartbeat comments pass
 * through (the SDK's parser skips them).
 */

export const UI_MESSAGE_STREAM_HEADERS = { ...SSE_HEADERS, "x-vercel-ai-ui-message-stream": "v1" } as const;

type FinishReason = "stop" | "length" | "content-filter" | "tool-calls" | "error" | "interrupted" | "other";

const finishReasons: Record<string, FinishReason> = { stop: "stop", length: "length", content_filter: "content-filter", tool_calls: "tool-calls" };

const encoder = new TextEncoder();
const chunk = (value: object | "[DONE]") => encoder.encode(`data: ${value === "[DONE]" ? value : JSON.stringify(value)}\n\n`);

/** The UI chunks for one of our frames. */
function translate(event: string, data: any): Uint8Array[] {
  switch (event) {
    case "message":
      return [
        chunk({
          type: "start",
          messageId: data.ai_message.id,
          messageMetadata: { conversation: data.conversation.id, user_message: data.user_message.id },
        }),
        chunk({ type: "text-start", id: data.ai_message.id }),
      ];
    case "delta":
      return [chunk({ type: "text-delta", id: data.ai_message_id, delta: data.content })];
    case "done":
      return [
        chunk({ type: "text-end", id: data.ai_message.id }),
        chunk({ type: "finish", finishReason: finishReasons[data.ai_response.finish_reason] ?? "other" }),
        chunk("[DONE]"),
      ];
    case "error":
      return [
        chunk({ type: "text-end", id: data.ai_message.id }),
        chunk(data.code === "cancelled" ? { type: "abort", reason: "cancelled" } : { type: "error", errorText: data.message }),
        chunk("[DONE]"),
      ];
    default:
      return [];
  }
}

/** Re-frames a turn's SSE stream (frames as `encodeFrame` writes them) as a UI message stream. */
export function toUiMessageStream(frames: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
  const decoder = new TextDecoder();
  let buffer = "";
  // Our delta frames carry no message id; their frame id starts with it.
  let aiMessageId = "";
  return frames.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(bytes, controller) {
        buffer += decoder.decode(bytes, { stream: true });
        let end: number;
        while ((end = buffer.indexOf("\n\n")) !== -1) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          if (block.startsWith(":")) {
            controller.enqueue(encoder.encode(`${block}\n\n`));
            continue;
          }
          let event = "";
          let data = "";
          for (const line of block.split("\n")) {
            if (line.startsWith("event: ")) event = line.slice(7);
            else if (line.startsWith("data: ")) data = line.slice(6);
            else if (line.startsWith("id: ")) aiMessageId = line.slice(4, line.lastIndexOf(":"));
          }
          const parsed = JSON.parse(data);
          for (const out of translate(event, event === "delta" ? { ...parsed, ai_message_id: aiMessageId } : parsed)) controller.enqueue(out);
        }
      },
    }),
  );
}
