import { SSE_HEADERS } from "./sse";

/*
 * The AI SDK's UI message stream protocol (`ai` 7: `uiMessageChunkSchema`), made from a turn's own
 * SSE frames. `message` → start; each step → start-step … finish-step; text and reasoning →
 * text-start/-delta/-end and reasoning-start/-delta/-end; a call → tool-input-start, one
 * tool-input-delta and tool-input-available (and tool-approval-request when it needs approval); its result →
 * tool-output-available, -error or -denied; `done` → finish, `requires_action` → finish
 * (tool-calls), `error` → error (or abort when cancelled); then `[DONE]`. Heartbeat comments pass
 * through (the SDK's parser skips them).
 */

export const UI_MESSAGE_STREAM_HEADERS = { ...SSE_HEADERS, "x-vercel-ai-ui-message-stream": "v1" } as const;

type FinishReason = "stop" | "length" | "content-filter" | "tool-calls" | "error" | "interrupted" | "other";

const finishReasons: Record<string, FinishReason> = { stop: "stop", length: "length", content_filter: "content-filter", tool_calls: "tool-calls" };

const encoder = new TextEncoder();
const chunk = (value: object | "[DONE]") => encoder.encode(`data: ${value === "[DONE]" ? value : JSON.stringify(value)}\n\n`);

/** A call's arguments as the SDK's `input`: the JSON they hold, or the text itself when it is not JSON. */
function inputOf(args: string): unknown {
  try {
    return JSON.parse(args || "{}");
  } catch {
    return args;
  }
}

/**
 * The translation of one run's frames: it opens a step at the first content after a tool
 * result (or at the start), and keeps text and reasoning parts open until something else comes.
 */
class UiChunks {
  #inStep = false;
  #afterResults = false;
  /** The text or reasoning part open now, and how many parts came before it. */
  #open: { kind: "text" | "reasoning"; id: string } | null = null;
  #parts = 0;
  /** Which calls the server runs (their chunks say providerExecuted). */
  #serverCalls = new Set<string>();

  constructor(private aiMessageId: string) {}

  /** A continuation (tool outputs answered) has no message frame: it starts the same message. */
  start(aiMessageId: string): Uint8Array[] {
    this.aiMessageId = aiMessageId;
    return [chunk({ type: "start", messageId: aiMessageId })];
  }

  translate(event: string, data: any): Uint8Array[] {
    switch (event) {
      case "message":
        this.aiMessageId = data.ai_message.id;
        return [chunk({ type: "start", messageId: data.ai_message.id, messageMetadata: { conversation: data.conversation.id, user_message: data.user_message.id } })];
      case "delta":
        return [...this.#content("text"), chunk({ type: "text-delta", id: this.#open!.id, delta: data.content })];
      case "reasoning":
        return [...this.#content("reasoning"), chunk({ type: "reasoning-delta", id: this.#open!.id, delta: data.content })];
      case "tool_call":
        return [...this.#content(null), ...this.#call(data)];
      case "tool_result":
        this.#afterResults = true;
        return [...this.#close(), this.#result(data)];
      case "done":
      case "requires_action":
        return [...this.#endStep(), chunk({ type: "finish", finishReason: event === "done" ? (finishReasons[data.ai_response.finish_reason] ?? "other") : "tool-calls" }), chunk("[DONE]")];
      case "error":
        return [...this.#endStep(), chunk(data.code === "cancelled" ? { type: "abort", reason: "cancelled" } : { type: "error", errorText: data.message }), chunk("[DONE]")];
      default:
        return [];
    }
  }

  #call(call: { id: string; name: string; arguments: string; executor: "server" | "client"; status: string }): Uint8Array[] {
    const server = call.executor === "server";
    if (server) this.#serverCalls.add(call.id);
    const who = server ? { providerExecuted: true, dynamic: true } : {};
    return [
      chunk({ type: "tool-input-start", toolCallId: call.id, toolName: call.name, ...who }),
      // Our frame carries the arguments whole: they arrive as one delta.
      chunk({ type: "tool-input-delta", toolCallId: call.id, inputTextDelta: call.arguments }),
      chunk({ type: "tool-input-available", toolCallId: call.id, toolName: call.name, input: inputOf(call.arguments), ...who }),
      ...(call.status === "awaiting_approval" ? [chunk({ type: "tool-approval-request", approvalId: call.id, toolCallId: call.id })] : []),
    ];
  }

  #result(result: { id: string; status: string; output?: string; error?: string }): Uint8Array {
    const server = this.#serverCalls.has(result.id) ? { providerExecuted: true, dynamic: true } : {};
    if (result.status === "completed") return chunk({ type: "tool-output-available", toolCallId: result.id, output: result.output, ...server });
    if (result.status === "denied") return chunk({ type: "tool-output-denied", toolCallId: result.id });
    return chunk({ type: "tool-output-error", toolCallId: result.id, errorText: result.error ?? "", ...server });
  }

  /** Before a piece of `kind` (null: a call): a new step after results, and the right part open. */
  #content(kind: "text" | "reasoning" | null): Uint8Array[] {
    const out: Uint8Array[] = [];
    if (this.#afterResults) out.push(...this.#endStep());
    this.#afterResults = false;
    if (!this.#inStep) {
      this.#inStep = true;
      out.push(chunk({ type: "start-step" }));
    }
    if (this.#open?.kind !== kind) {
      out.push(...this.#close());
      if (kind) {
        this.#open = { kind, id: `${this.aiMessageId}:${this.#parts++}` };
        out.push(chunk({ type: `${kind}-start`, id: this.#open.id }));
      }
    }
    return out;
  }

  #close(): Uint8Array[] {
    if (!this.#open) return [];
    const end = chunk({ type: `${this.#open.kind}-end`, id: this.#open.id });
    this.#open = null;
    return [end];
  }

  #endStep(): Uint8Array[] {
    const out = this.#close();
    if (this.#inStep) out.push(chunk({ type: "finish-step" }));
    this.#inStep = false;
    return out;
  }
}

/**
 * Re-frames a turn's SSE stream (frames as `encodeFrame` writes them) as a UI message stream;
 * `continuing`: the AI message a continuation's frames (with no message frame) belong to.
 */
export function toUiMessageStream(frames: ReadableStream<Uint8Array>, continuing?: string): ReadableStream<Uint8Array> {
  const decoder = new TextDecoder();
  const chunks = new UiChunks(continuing ?? "");
  let buffer = "";
  return frames.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      start(controller) {
        if (continuing) for (const out of chunks.start(continuing)) controller.enqueue(out);
      },
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
          }
          for (const out of chunks.translate(event, JSON.parse(data))) controller.enqueue(out);
        }
      },
    }),
  );
}
