import { log } from "../lib/log";

/**
 * Writes a reply's text so far to D1 at most every `intervalMs`, one write at a time, in the
 * background: the token loop never waits on it.
 */
export class Checkpointer {
  #lastWrite = Date.now();
  #inFlight: Promise<void> | null = null;

  constructor(
    private readonly intervalMs: number,
    private readonly write: (text: string) => Promise<void>,
    private readonly label: Record<string, unknown>,
  ) {}

  /** Called with the text after each delta; starts a write when one is due and none is running. */
  offer(text: string, now: number): void {
    if (this.#inFlight || now - this.#lastWrite < this.intervalMs) return;
    this.#lastWrite = now;
    this.#inFlight = this.write(text)
      .catch((error) => log.error("checkpoint failed", error, this.label))
      .finally(() => (this.#inFlight = null));
  }

  /** Resolves once no write is running: a checkpoint landing after the final write would put back older text. */
  async settled(): Promise<void> {
    await this.#inFlight;
  }
}
