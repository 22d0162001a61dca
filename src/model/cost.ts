import type { Price } from "./registry";

/** What `promptTokens` in and `completionTokens` out cost at `price` (USD per million tokens); null without a price. */
export function costUsd(price: Price | null, promptTokens: number, completionTokens: number): number | null {
  if (!price) return null;
  // Rounded to a millionth of a cent: sums of many replies stay exact enough and readable.
  return Math.round((promptTokens * price.input + completionTokens * price.output) * 1e2) / 1e8;
}
