import type { MessagePart } from "../db/schema";
import { ListenerSet } from "./listeners";
import type { TurnFailure } from "../model/model";
import { type ToolCallPart, callsOf, isResolved, partsOf, positionOf, stepsOf, waitingCalls } from "../rules/message-parts";
import { textFrames, toolCallFrame, toolResultFrame } from "./frames";
import { type Branch, type ContextSelection, utf8Length } from "./context-window";
import type { TurnResult } from "./frames";
import type { TurnRows } from "./turn-rows";
import type { ToolSpec } from "../rules/tool-rules";

const encoder = new TextEncoder();

export type TurnPhase = "queued" | "generating" | "finished";

/** A tool call as the model streams it: its id and name, its arguments in pieces. */
export type StreamedCall = { id: string; name: string; arguments: string };

/**
 * A turn the conversation object holds in memory, from its acceptance (committed in the store),
 * or from the answer that lets a waiting turn go on, until its run ends. It owns the reply's
 * parts as they grow and sends each piece's frame, with the position it ends at, to every listener.
 */
export class LiveTurn {
  #phase: TurnPhase = "queued";
  /** The branch the model answers, read from the store when the turn starts (or at acceptance, if it starts at once). */
  branch: Branch | null = null;
  /** What of the branch the model was given for the current step, once chosen. */
  selection: ContextSelection | null = null;
  readonly parts: MessagePart[];
  /** The reply's text: its text parts, joined. */
  text: string;
  /** `text`'s size in UTF-8. */
  bytes: number;
  /** Where the frames sent so far end (`layout`). */
  position: number;
  /** The model call in progress (or last made); -1 before the first. */
  step: number;
  /** The calls the current step's model call streams, by index. */
  streamedCalls: StreamedCall[] = [];
  /** The turn stops to wait for the client (tool outputs, approvals). */
  parked = false;
  failure: TurnFailure | null = null;
  readonly listeners = new ListenerSet();
  readonly abort = new AbortController();
  readonly #finished = Promise.withResolvers<{ result: TurnResult; bookmark: string | null }>();
  readonly #streaming = Promise.withResolvers<void>();
  /** The model asked for; the response's `model` becomes the name the upstream answers with. */
  readonly model: string;
  /** Of the current step's calls, how many have had their result frame. */
  #resultsSent: number;
  /** The response's tokens and cost before this run: a run settles only its own. */
  readonly spentBefore: { tokens: number; costUsd: number };

  constructor(
    readonly rows: TurnRows,
    readonly systemPrompt: string | null,
    /** The user's generation slot this turn holds. */
    readonly lease: string,
    /** The tools the turn may use. */
    readonly tools: ToolSpec,
  ) {
    this.model = rows.aiResponse.model;
    // A copy: the parts grow here, and the stored row must not change with them before a commit.
    this.parts = structuredClone(partsOf(rows.aiMessage));
    this.text = rows.aiMessage.content;
    this.bytes = utf8Length(this.text);
    this.position = positionOf(this.parts);
    this.step = stepsOf(this.parts) - 1;
    const calls = callsOf(this.parts, this.step);
    const firstOpen = calls.findIndex((call) => !isResolved(call));
    this.#resultsSent = firstOpen < 0 ? calls.length : firstOpen;
    this.spentBefore = { tokens: rows.aiResponse.totalTokens ?? 0, costUsd: rows.aiResponse.costUsd ?? 0 };
  }

  get phase(): TurnPhase {
    return this.#phase;
  }

  /** The turn's result once its run ended, with the D1 bookmark once D1 has it (null if D1 lagged behind). */
  whenFinished(): Promise<{ result: TurnResult; bookmark: string | null }> {
    return this.#finished.promise;
  }

  /** Resolves once the model's stream is open, or the turn ended without one. */
  whenStreaming(): Promise<void> {
    return this.#streaming.promise;
  }

  generating(): void {
    this.#phase = "generating";
  }

  streaming(): void {
    this.#streaming.resolve();
  }

  /** The next model call begins. */
  beginStep(): number {
    this.streamedCalls = [];
    this.#resultsSent = 0;
    return ++this.step;
  }

  /** The current step's calls. */
  calls(): ToolCallPart[] {
    return callsOf(this.parts, this.step);
  }

  awaitingClient(): boolean {
    return waitingCalls(this.calls()).length > 0;
  }

  /**
   * Appends as much of a piece of the reply as fits in `maxBytes` and sends its frames, encoded
   * once, to every listener; false once the reply is full.
   */
  addDelta(content: string, maxBytes: number): boolean {
    const room = maxBytes - this.bytes;
    // Per token: counted without encoding while it surely fits (3 bytes at most per UTF-16 unit).
    let fits = content.length * 3 <= room;
    if (fits) this.bytes += utf8Length(content);
    else {
      const { read, written } = encoder.encodeInto(content, new Uint8Array(Math.max(0, room)));
      fits = read === content.length;
      content = content.slice(0, read);
      this.bytes += written;
    }
    this.text += content;
    this.#append("text", content);
    return fits;
  }

  addReasoning(content: string): void {
    this.#append("reasoning", content);
  }

  /** The step's calls, complete: their frames, and the results of those already resolved (arguments that failed their checks). */
  addCalls(calls: ToolCallPart[]): void {
    for (const call of calls) {
      this.parts.push(call);
      this.listeners.send(toolCallFrame(this.rows.aiMessage.id, call, ++this.position));
    }
    this.#sendResults();
  }

  /** A call of the current step has its result. */
  resolve(id: string, result: Pick<ToolCallPart, "status" | "output" | "error">): void {
    const call = this.calls().find((c) => c.id === id);
    if (!call) return;
    Object.assign(call, result);
    this.#sendResults();
  }

  /** The turn's run ended: the last frame goes out and the streams end. */
  finished(result: TurnResult, bookmark: string | null, finalFrame: Uint8Array): void {
    this.#phase = "finished";
    this.listeners.close(finalFrame);
    this.#finished.resolve({ result, bookmark });
  }

  /** Text or reasoning onto the step's last part of that kind (a new part after anything else). */
  #append(type: "text" | "reasoning", content: string): void {
    if (!content) return;
    const last = this.parts.at(-1);
    let part: Extract<MessagePart, { type: "text" | "reasoning" }>;
    if (last?.type === type && last.step === this.step) part = last;
    else this.parts.push((part = { type, step: this.step, text: "" }));
    const start = this.position - part.text.length;
    const offset = part.text.length;
    part.text += content;
    this.position += content.length;
    for (const frame of textFrames(this.rows.aiMessage.id, type === "text" ? "delta" : "reasoning", part.text, start, offset)) this.listeners.send(frame);
  }

  /** Result frames in call order, as far as the results run unbroken: the layout a resume relies on. */
  #sendResults(): void {
    const calls = this.calls();
    while (this.#resultsSent < calls.length && isResolved(calls[this.#resultsSent]!)) {
      this.listeners.send(toolResultFrame(this.rows.aiMessage.id, calls[this.#resultsSent++]!, ++this.position));
    }
  }
}
