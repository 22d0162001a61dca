import { ListenerSet } from "./listeners";
import type { TurnFailure } from "./model";
import { encodeFrame, frameId } from "./sse";
import type { Branch, ContextSelection } from "./context-window";
import type { TurnRows } from "./turn-store";

/**
 * accepting → queued → generating → finished, or accepting → rejected when the accept batch
 * failed (nothing of the turn is stored).
 */
export type TurnPhase = "accepting" | "queued" | "generating" | "finished" | "rejected";

/** A turn the conversation object holds in memory, from acceptance until its reply is stored. */
export class LiveTurn {
  #phase: TurnPhase = "accepting";
  /** The branch read with the accept batch, when no earlier turn could still change it. */
  branch: Branch | null = null;
  /** What of the branch the model was given, once the turn has started. */
  selection: ContextSelection | null = null;
  text = "";
  failure: TurnFailure | null = null;
  /** The D1 bookmark after the reply was stored. */
  bookmark: string | null = null;
  readonly listeners = new ListenerSet();
  readonly abort = new AbortController();
  readonly #accepted = Promise.withResolvers<boolean>();
  readonly #finished = Promise.withResolvers<void>();
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

  /** Its rows are in D1: listeners may attach. */
  get isStored(): boolean {
    return this.#phase !== "accepting" && this.#phase !== "rejected";
  }

  /** Resolves true once the accept batch committed, false if it failed. */
  whenAccepted(): Promise<boolean> {
    return this.#accepted.promise;
  }

  whenFinished(): Promise<void> {
    return this.#finished.promise;
  }

  accepted(branch: Branch | null): void {
    this.branch = branch;
    this.#phase = "queued";
    this.#accepted.resolve(true);
  }

  rejected(): void {
    this.#phase = "rejected";
    this.#accepted.resolve(false);
  }

  generating(): void {
    this.#phase = "generating";
  }

  /** Appends a piece of the reply and sends its frame, encoded once, to every listener. */
  addDelta(content: string): void {
    this.text += content;
    const bytes = encodeFrame("delta", frameId(this.rows.aiMessage.id, this.text.length), { content });
    this.listeners.send(bytes);
  }

  /** The reply is stored: the last frame goes out and the streams end. */
  finished(finalFrame: Uint8Array): void {
    this.#phase = "finished";
    this.listeners.close(finalFrame);
    this.#finished.resolve();
  }
}
