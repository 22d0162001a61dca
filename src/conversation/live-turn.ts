import { ListenerSet } from "./listeners";
import type { TurnFailure } from "../model/model";
import { encodeFrame, frameId } from "../http/sse";
import type { Branch, ContextSelection } from "./context-window";
import type { TurnResult } from "./frames";
import type { TurnRows } from "./turn-rows";

export type TurnPhase = "queued" | "generating" | "finished";

/** A turn the conversation object holds in memory, from its acceptance (committed in the store) until it ends. */
export class LiveTurn {
  #phase: TurnPhase = "queued";
  /** The branch the model answers, read from the store when the turn starts (or at acceptance, if it starts at once). */
  branch: Branch | null = null;
  /** What of the branch the model was given, once chosen. */
  selection: ContextSelection | null = null;
  text = "";
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


  /** Appends a piece of the reply and sends its frame, encoded once, to every listener. */
  addDelta(content: string): void {
    this.text += content;
    const bytes = encodeFrame("delta", frameId(this.rows.aiMessage.id, this.text.length), { content });
    this.listeners.send(bytes);
  }

  /** The turn ended: the last frame goes out and the streams end. */
  finished(result: TurnResult, bookmark: string | null, finalFrame: Uint8Array): void {
    this.#phase = "finished";
    this.listeners.close(finalFrame);
    this.#finished.resolve({ result, bookmark });
  }
}
