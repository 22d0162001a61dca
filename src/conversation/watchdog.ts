import { TurnFailure } from "../model/model";

/**
 * Turns a model call's two time limits into one abort: `timeoutMs` for the whole reply and
 * `idleTimeoutMs` between two events. The abort reason is the TurnFailure to store.
 */
export class Watchdog {
  #lastActivity = Date.now();
  readonly #overall: ReturnType<typeof setTimeout>;
  #idle: ReturnType<typeof setTimeout>;

  constructor(
    private readonly abort: AbortController,
    private readonly limits: { timeoutMs: number; idleTimeoutMs: number },
  ) {
    this.#overall = setTimeout(
      () => abort.abort(new TurnFailure("upstream_timeout", `The model did not finish within ${limits.timeoutMs / 1000} s.`)),
      limits.timeoutMs,
    );
    this.#idle = setTimeout(() => this.#checkIdle(), limits.idleTimeoutMs);
  }

  /** Something arrived from the model; returns the time it was noticed. */
  touch(): number {
    this.#lastActivity = Date.now();
    return this.#lastActivity;
  }

  stop(): void {
    clearTimeout(this.#overall);
    clearTimeout(this.#idle);
  }

  // One timer, re-armed only when it fires early: cheaper than resetting it on every token.
  #checkIdle(): void {
    const { idleTimeoutMs } = this.limits;
    const idleFor = Date.now() - this.#lastActivity;
    if (idleFor >= idleTimeoutMs) {
      this.abort.abort(new TurnFailure("upstream_timeout", `The model sent nothing for ${idleTimeoutMs / 1000} s.`));
    } else {
      this.#idle = setTimeout(() => this.#checkIdle(), idleTimeoutMs - idleFor);
    }
  }
}
