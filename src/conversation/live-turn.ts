import { ListenerSet } from "./listeners";
import type { TurnFailure } from "../model/model";
import { deltaFrames } from "./frames";
import { type Branch, type ContextSelection, utf8Length } from "./context-window";
import type { TurnResult } from "./frames";
import type { TurnRows } from "./turn-rows";

const encoder = new TextEncoder();

export type TurnPhase = "queued" | "generating" | "finished";

/** A turn the conversation object holds in memory, from its acceptance (committed in the store) until it ends. */
export class LiveTurn {
  #phase: TurnPhase = "queued";
  /** The branch the model answers, read from the store when the turn starts (or at acceptance, if it starts at once). */
  branch: Branch | null = null;
  /** What of the branch the model was given, once chosen. */
  selection: ContextSelection | null = null;
  text = "";
  /** `text`'s size in UTF-8. */
  bytes = 0;
  failure: TurnFailure | null = null;
  readonly listeners = new ListenerSet();
  readonly abort = new AbortController();
  readonly #finished = Promise.withResolvers<{ result: TurnResult; bookmark: string | null }>();
  readonly #streaming = Promise.withResolvers<void>();
  /** The model asked for; the response's `model` becomes the name the upstream answers with. */
  readonly model: string;

  constructor(
    readonly rows: TurnRows,
    readonly systemPrompt: string | null,
    /** The user's generation slot this turn holds. */
    readonly lease: string,
  ) {
    this.model = rows.aiResponse.model;
  }

  get phase(): TurnPhase {
    return this.#phase;
  }

  /** The turn's result once it ended, with the D1 bookmark once D1 has it (null if D1 lagged behind). */
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
    const offset = this.text.length;
    this.text += content;
    for (const frame of deltaFrames(this.rows.aiMessage.id, this.text, offset)) this.listeners.send(frame);
    return fits;
  }

  /** The turn ended: the last frame goes out and the streams end. */
  finished(result: TurnResult, bookmark: string | null, finalFrame: Uint8Array): void {
    this.#phase = "finished";
    this.listeners.close(finalFrame);
    this.#finished.resolve({ result, bookmark });
  }
}
