import type { Message, MessagePart } from "../db/schema";

/* An AI message's parts: what they say, how they are laid out as frames, which calls still wait. Shared by the engine and the routes. */

export type ToolCallPart = Extract<MessagePart, { type: "tool_call" }>;

export const isToolCall = (part: MessagePart): part is ToolCallPart => part.type === "tool_call";

/** A call with its result: answered, failed or denied. */
export const isResolved = (call: ToolCallPart) => call.status === "completed" || call.status === "error" || call.status === "denied";

/** Calls that wait for the client: its output, or its approval. */
export const isAwaitingClient = (call: ToolCallPart) => call.status === "awaiting_output" || call.status === "awaiting_approval";

/** An AI message's parts: the stored ones, or its text as one part (a reply without tools). */
export const partsOf = (message: Pick<Message, "content" | "parts">): MessagePart[] =>
  message.parts ?? (message.content ? [{ type: "text", step: 0, text: message.content }] : []);

/** The message's `content`: its text parts, joined. */
export const textOf = (parts: readonly MessagePart[]) => parts.map((part) => (part.type === "text" ? part.text : "")).join("");

/** The calls that wait for the client. */
export const waitingCalls = (parts: readonly MessagePart[]): ToolCallPart[] => parts.filter(isToolCall).filter(isAwaitingClient);

/** The ids of the calls that wait for the client. */
export const pendingCallIds = (parts: readonly MessagePart[]) => waitingCalls(parts).map((call) => call.id);

/** The steps the parts hold: one more than the last part's step, 0 for none. */
export const stepsOf = (parts: readonly MessagePart[]) => (parts.length ? parts.at(-1)!.step + 1 : 0);

export const callsOf = (parts: readonly MessagePart[], step?: number) => parts.filter(isToolCall).filter((call) => step === undefined || call.step === step);

/**
 * One frame of a turn, with the position it ends at. A turn's frames are laid out step by step:
 * each step's parts in order (text and reasoning a unit per character, a tool call one unit),
 * then the results of its calls in call order, as far as they run unbroken: a result is sent
 * only once every call before it in its step has one, so that the layout never changes behind a
 * position a client has seen, and `Last-Event-ID` resumes exactly.
 */
export type LaidOutFrame =
  | { kind: "text"; text: string; start: number; end: number }
  | { kind: "reasoning"; text: string; start: number; end: number }
  | { kind: "tool_call"; call: ToolCallPart; end: number }
  | { kind: "tool_result"; call: ToolCallPart; end: number };

export function* layout(parts: readonly MessagePart[]): Generator<LaidOutFrame> {
  let position = 0;
  for (let i = 0; i < parts.length; ) {
    const step = parts[i]!.step;
    const calls: ToolCallPart[] = [];
    for (; i < parts.length && parts[i]!.step === step; i++) {
      const part = parts[i]!;
      if (part.type === "tool_call") {
        calls.push(part);
        yield { kind: "tool_call", call: part, end: ++position };
      } else {
        yield { kind: part.type, text: part.text, start: position, end: (position += part.text.length) };
      }
    }
    for (const call of calls) {
      if (!isResolved(call)) break;
      yield { kind: "tool_result", call, end: ++position };
    }
  }
}

/** Where the laid-out frames of `parts` end. */
export function positionOf(parts: readonly MessagePart[]): number {
  let end = 0;
  for (const frame of layout(parts)) end = frame.end;
  return end;
}

/** The result a model is given for a call. */
export function resultForModel(call: ToolCallPart): string {
  if (call.status === "completed") return call.output ?? "";
  if (call.status === "denied") return `The user denied this tool call. Reason: ${call.error ?? "none given"}`;
  // A call still waiting when a new send arrives is closed with this error; the history read for that send says it already.
  if (!isResolved(call)) return "Error: not answered";
  return `Error: ${call.error ?? "the tool failed"}`;
}
