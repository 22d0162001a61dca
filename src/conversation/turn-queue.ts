/**
 * Runs tasks one at a time in the order they were enqueued: a promise chain, as in
 * cloudflare/agents' TurnQueue. A Durable Object interleaves requests whenever it awaits D1 or
 * fetch, so "one model call at a time" must be enforced explicitly, not assumed from the DO.
 */
export class TurnQueue {
  #tail: Promise<unknown> = Promise.resolve();

  enqueue<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(task);
    // A failed task must not stall the tasks behind it.
    this.#tail = run.catch(() => undefined);
    return run;
  }
}
