import type { AppConfig } from "../http/config";
import { log } from "../lib/log";

interface Circuit {
  failuresInARow: number;
  /** Until then the provider is tried only after every other one; 0: closed. */
  openUntil: number;
}

/**
 * Per isolate, which providers keep failing. A provider whose circuit is open is not skipped but
 * tried last, so users stop paying its timeout while a healthy provider is listed, and a model
 * whose providers are all failing still gets its requests through. After `circuitOpenMs` the
 * provider is tried in its place again: one success closes the circuit, one failure reopens it.
 */
class Circuits {
  readonly #byProvider = new Map<string, Circuit>();

  /** `providers` in order of preference, those with an open circuit last. */
  order(providers: readonly string[], now = Date.now()): string[] {
    const open = (name: string) => (this.#byProvider.get(name)?.openUntil ?? 0) > now;
    return [...providers.filter((name) => !open(name)), ...providers.filter(open)];
  }

  failed(provider: string, config: AppConfig): void {
    const circuit = this.#byProvider.get(provider) ?? { failuresInARow: 0, openUntil: 0 };
    circuit.failuresInARow++;
    if (circuit.failuresInARow >= config.model.circuitFailures) {
      if (circuit.openUntil <= Date.now()) log.warn("provider circuit open", { provider, failures_in_a_row: circuit.failuresInARow, for_ms: config.model.circuitOpenMs });
      circuit.openUntil = Date.now() + config.model.circuitOpenMs;
    }
    this.#byProvider.set(provider, circuit);
  }

  succeeded(provider: string): void {
    if (this.#byProvider.get(provider)?.openUntil) log.info("provider circuit closed", { provider });
    this.#byProvider.delete(provider);
  }
}

export const circuits = new Circuits();
