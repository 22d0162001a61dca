import { ApiError } from "../errors";

// The binding's window (wrangler.toml `period`); it does not report the time left, so clients
// are told to wait one window.
const WINDOW_SECONDS = 60;

/** Counts one request against every key; over the limit on any of them is a 429. */
export async function enforceRateLimit(limiter: RateLimit, keys: string[], what: string): Promise<void> {
  const outcomes = await Promise.all(keys.map((key) => limiter.limit({ key })));
  if (outcomes.some((outcome) => !outcome.success)) {
    throw new ApiError("rate_limited", `Too many ${what}; try again later.`, { headers: { "Retry-After": String(WINDOW_SECONDS) } });
  }
}

/** The client's address as Cloudflare reports it (the header cannot be set by the client there). */
export const clientIp = (request: Request) => request.headers.get("CF-Connecting-IP") ?? "unknown";
