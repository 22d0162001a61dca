/* Server-Sent Events framing. Frames are encoded once and the same bytes go to every listener. */

const encoder = new TextEncoder();

export type FrameEvent = "message" | "delta" | "reasoning" | "tool_call" | "tool_result" | "requires_action" | "done" | "error";

export function encodeFrame(event: FrameEvent, id: string, data: unknown): Uint8Array {
  // JSON.stringify never emits a raw newline, so one `data:` line is always enough.
  return encoder.encode(`id: ${id}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
}

export const HEARTBEAT_FRAME = encoder.encode(": ping\n\n");
export const HEARTBEAT_INTERVAL_MS = 15_000;

export const SSE_HEADERS = {
  "Content-Type": "text/event-stream; charset=utf-8",
  "Cache-Control": "no-cache",
  "X-Accel-Buffering": "no",
} as const;

/**
 * Frame ids carry the position in the reply: `<ai message id>:<position>`, and `<ai message
 * id>:end` for the final frame. The position counts characters of text and reasoning and one
 * unit per tool call and per result (`layout` in rules/message-parts.ts); for a reply of text
 * only it is the characters so far. A client resuming with Last-Event-ID thus says exactly how
 * much of the reply it already has, and no per-frame id table is needed.
 */
export const frameId = (aiMessageId: string, offset: number | "end") => `${aiMessageId}:${offset}`;

export function parseFrameId(value: string): { aiMessageId: string; offset: number | "end" } | null {
  const match = /^([0-9a-f-]{36}):(\d{1,9}|end)$/.exec(value.trim());
  if (!match) return null;
  return { aiMessageId: match[1]!, offset: match[2] === "end" ? "end" : Number(match[2]) };
}
