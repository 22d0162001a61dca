/** A client of the public API: bearer tokens kept in sessionStorage, refreshed once on a 401. */

interface Tokens {
  access: string;
  refresh: string;
}

import type { Page } from "../src/http/schemas";

export type { AiResponseJson as AiResponse, ConversationJson as Conversation, MessageJson as Message, ModelsJson as Models, Page, SharedConversation } from "../src/http/schemas";
export { PAGE_SIZE } from "../src/lib/page-size";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const TOKENS_KEY = "genai-edge.tokens";

export function loadTokens(): Tokens | null {
  const saved = sessionStorage.getItem(TOKENS_KEY);
  return saved ? (JSON.parse(saved) as Tokens) : null;
}

export function saveTokens(tokens: Tokens | null): void {
  if (tokens) sessionStorage.setItem(TOKENS_KEY, JSON.stringify(tokens));
  else sessionStorage.removeItem(TOKENS_KEY);
}

async function errorOf(response: Response): Promise<ApiError> {
  const body = (await response.json().catch(() => null)) as { error?: { message?: string; details?: { field: string; message: string }[] } } | null;
  const details = body?.error?.details?.map((d) => `${d.field}: ${d.message}`).join("; ");
  return new ApiError(response.status, [body?.error?.message ?? response.statusText, details].filter(Boolean).join(" — "));
}

// One refresh at a time: refresh tokens rotate, and presenting the same one twice (two requests
// that got a 401 together) would look like theft and revoke the session.
let refreshing: Promise<boolean> | null = null;

function refreshTokens(): Promise<boolean> {
  refreshing ??= exchangeRefreshToken().finally(() => (refreshing = null));
  return refreshing;
}

async function exchangeRefreshToken(): Promise<boolean> {
  const tokens = loadTokens();
  if (!tokens) return false;
  const response = await fetch("/auth/token/refresh/", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ refresh: tokens.refresh }),
  });
  if (!response.ok) {
    saveTokens(null);
    return false;
  }
  saveTokens((await response.json()) as Tokens);
  return true;
}

// The newest D1 bookmark the API answered with: sent back, reads see this page's own writes even
// when they are served by a read replica.
let bookmark: string | null = null;

/** Keeps `latest` (from a response header or a turn's final SSE frame) if it is newer. */
export function rememberBookmark(latest: string | null | undefined): void {
  if (latest && (!bookmark || latest > bookmark)) bookmark = latest;
}

/** Calls the API with the access token; on a 401 it refreshes once and retries. Returns the raw response. */
export async function request(path: string, init: RequestInit & { json?: unknown } = {}): Promise<Response> {
  const send = () => {
    const headers = new Headers(init.headers);
    const tokens = loadTokens();
    if (tokens) headers.set("Authorization", `Bearer ${tokens.access}`);
    if (bookmark) headers.set("X-D1-Bookmark", bookmark);
    if (init.json !== undefined) headers.set("Content-Type", "application/json");
    return fetch(path, { ...init, headers, body: init.json !== undefined ? JSON.stringify(init.json) : init.body });
  };
  let response = await send();
  if (response.status === 401 && (await refreshTokens())) response = await send();
  rememberBookmark(response.headers.get("X-D1-Bookmark"));
  if (!response.ok) throw await errorOf(response);
  return response;
}

export async function json<T>(path: string, init: RequestInit & { json?: unknown } = {}): Promise<T> {
  const response = await request(path, init);
  return (response.status === 204 ? undefined : await response.json()) as T;
}

export async function logIn(email: string, password: string): Promise<void> {
  const response = await fetch("/auth/token/", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ email, password }),
  });
  if (!response.ok) throw await errorOf(response);
  saveTokens((await response.json()) as Tokens);
}

export async function signUp(email: string, password: string, name: string): Promise<void> {
  const response = await fetch("/auth/register/", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(name ? { email, password, name } : { email, password }),
  });
  if (!response.ok) throw await errorOf(response);
  await logIn(email, password);
}

/** Every page of a paginated list. */
export async function allPages<T>(path: string): Promise<T[]> {
  const items: T[] = [];
  let next: string | null = path;
  while (next) {
    const page: Page<T> = await json<Page<T>>(next);
    items.push(...page.results);
    next = page.next && new URL(page.next).pathname + new URL(page.next).search;
  }
  return items;
}
