import { ApiError } from "../http/errors";

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

/**
 * The client's address as Cloudflare reports it (the header cannot be set by the client there), as
 * a rate-limit key: an IPv6 client is keyed by its /64, the block one subscriber gets, so rotating
 * through its addresses does not give it fresh limits.
 */
export function clientKey(request: Request): string {
  const ip = request.headers.get("CF-Connecting-IP") ?? "unknown";
  if (!ip.includes(":")) return ip;
  const [head = "", tail = ""] = ip.toLowerCase().split("::", 2);
  const headGroups = head ? head.split(":") : [];
  const tailGroups = ip.includes("::") && tail ? tail.split(":") : [];
  const groups = ip.includes("::") ? [...headGroups, ...Array(8 - headGroups.length - tailGroups.length).fill("0"), ...tailGroups] : headGroups;
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, "")).join(":")}::/64`;
}
