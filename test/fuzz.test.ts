import { env } from "cloudflare:workers";
import fc from "fast-check";
import { beforeAll, expect, it } from "vitest";
import { call, callJson, createUser, rowsInShards, type TestUser } from "./helpers";

// Throws generated bodies, query strings, headers and path ids at every route and checks the
// three promises of the API: never a 5xx, always the one error shape, and a rejected request
// leaves the stored data exactly as it was.

let owner: TestUser;
let stranger: TestUser;
let conversationId: string;
let messageId: string;
let aiMessageId: string;

beforeAll(async () => {
  owner = await createUser("fuzz-owner");
  stranger = await createUser("fuzz-stranger");
  const turn = await callJson("/start_conversation/", { token: owner.access, body: { content: "[stub: tokens=3] seed" }, status: 201 });
  conversationId = turn.conversation.id;
  messageId = turn.user_message.id;
  aiMessageId = turn.ai_message.id;
});

async function snapshot(): Promise<string> {
  const directory = await env.DIRECTORY.batch(["users", "refresh_tokens"].map((table) => env.DIRECTORY.prepare(`SELECT * FROM ${table} ORDER BY id`)));
  const shards = await Promise.all(
    ["conversations", "messages", "ai_responses"].map((table) => rowsInShards(`SELECT * FROM ${table} ORDER BY id`)),
  );
  return JSON.stringify([...directory.map((r) => r.results), ...shards]);
}

/** What an HTTP client can put in a header: Latin-1 without CR, LF or NUL. */
const headerSafe = (value: string) => value.replace(/[^\x20-\xff\t]/g, "?");

const routes: [string, string][] = [
  ["POST", "/auth/register/"],
  ["POST", "/auth/token/"],
  ["POST", "/auth/token/refresh/"],
  ["POST", "/auth/logout/"],
  ["GET", "/users/me/"],
  ["GET", "/users/me/usage/"],
  ["POST", "/conversations/:cid/stream_ticket/"],
  ["POST", "/chat/"],
  ["POST", "/users/me/password/"],
  ["GET", "/conversations/"],
  ["POST", "/conversations/"],
  ["GET", "/conversations/:cid/"],
  ["PUT", "/conversations/:cid/"],
  ["PATCH", "/conversations/:cid/"],
  ["DELETE", "/conversations/:cid/"],
  ["GET", "/conversations/:cid/messages/"],
  ["GET", "/messages/"],
  ["PATCH", "/messages/:mid/mark_deleted/"],
  ["PATCH", "/messages/:mid/edit_message/"],
  ["POST", "/start_conversation/"],
  ["POST", "/conversations/:cid/add_message/"],
  ["GET", "/conversations/:cid/stream/"],
  ["POST", "/conversations/:cid/cancel/"],
  ["POST", "/conversations/:cid/fork/"],
  ["POST", "/messages/:mid/regenerate/"],
  ["POST", "/messages/:mid/resend/"],
  ["GET", "/openapi.json"],
  ["GET", "/health"],
];

const weirdString = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.constantFrom("", " ", "\u0000", "\ud800", "%", "_", "%_%", "null", "0", "-1", "9".repeat(30), "../../etc", "' OR 1=1 --", "<script>"),
);

const pathId = () =>
  fc.oneof(
    fc.constant("own"),
    fc.constant("ai"),
    fc.constant("random-uuid"),
    weirdString.filter((s) => s.length > 0),
  );

const jsonValue = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.record(
    {
      email: fc.oneof(fc.emailAddress(), weirdString),
      password: weirdString,
      content: fc.oneof(weirdString, fc.integer(), fc.constant(null)),
      title: fc.oneof(weirdString, fc.constant(null), fc.integer()),
      status: fc.oneof(fc.constantFrom("Active", "Deleted", "active", ""), weirdString),
      model_version: fc.oneof(fc.constantFrom("gpt-4", "gpt-99"), weirdString),
      reply_to: fc.oneof(weirdString, fc.constant(null)),
      refresh: weirdString,
      old_password: weirdString,
      new_password: weirdString,
      order: fc.integer(),
      user: weirdString,
      sender: fc.constantFrom("user", "ai"),
      message: fc.oneof(weirdString, fc.constant("ai")),
      name: weirdString,
      system_prompt: fc.oneof(weirdString, fc.constant(null)),
      current_leaf: fc.oneof(weirdString, fc.constant(null)),
    },
    { requiredKeys: [] },
  ),
);

const body = fc.oneof(
  fc.constant(undefined),
  jsonValue.map((v) => JSON.stringify(v)),
  weirdString,
  fc.constant("{not json"),
  fc.constant("x".repeat(140 * 1024)),
);

const request = fc.record({
  route: fc.constantFrom(...routes),
  id: pathId(),
  body,
  contentType: fc.oneof(
    { arbitrary: fc.constant("application/json"), weight: 4 },
    fc.constantFrom("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", undefined),
  ),
  auth: fc.oneof({ arbitrary: fc.constant("owner"), weight: 4 }, fc.constantFrom("stranger", "refresh", "garbage", "none")),
  query: fc.array(fc.tuple(fc.constantFrom("page", "search", "status", "include_deleted", "conversation", "stream", "branch", "x"), weirdString), { maxLength: 3 }),
  accept: fc.constantFrom(undefined, "text/event-stream", "application/json", "*/*"),
  idempotencyKey: fc.option(weirdString, { nil: undefined }),
  lastEventId: fc.option(fc.oneof(weirdString, fc.constant(`${crypto.randomUUID()}:3`)), { nil: undefined }),
});

it("never answers 5xx, always uses the error shape, and leaves stored data unchanged on rejection", { timeout: 120_000 }, async () => {
  const seen = new Map<number, number>();
  await fc.assert(
    fc.asyncProperty(request, async (r) => {
      const [method, template] = r.route;
      const named = (own: string) => new Map([["own", own], ["ai", aiMessageId], ["random-uuid", crypto.randomUUID()]]).get(r.id) ?? r.id;
      const id = named(conversationId);
      const messageIdFor = named(messageId);
      const path = template.replace(":cid", encodeURIComponent(id.toWellFormed())).replace(":mid", encodeURIComponent(messageIdFor.toWellFormed()));
      const query = new URLSearchParams(r.query.map(([k, v]) => [k, v.toWellFormed()])).toString();
      const headers: Record<string, string> = {};
      const token = { owner: owner.access, stranger: stranger.access, refresh: owner.refresh, garbage: "abc.def.ghi", none: undefined }[r.auth];
      if (r.contentType) headers["Content-Type"] = r.contentType;
      if (r.accept) headers.Accept = r.accept;
      if (r.idempotencyKey !== undefined) headers["Idempotency-Key"] = headerSafe(r.idempotencyKey);
      if (r.lastEventId !== undefined) headers["Last-Event-ID"] = headerSafe(r.lastEventId);

      const before = await snapshot();
      const response = await call(`${path}${query ? `?${query}` : ""}`, { method, token, headers, body: method === "GET" ? undefined : r.body });
      const text = await response.text();
      seen.set(response.status, (seen.get(response.status) ?? 0) + 1);
      expect(response.status, `${method} ${path} → ${text.slice(0, 300)}`).toBeLessThan(500);
      if (response.status >= 400) {
        const parsed = JSON.parse(text);
        expect(parsed.error).toEqual(expect.objectContaining({ code: expect.any(String), message: expect.any(String), request_id: response.headers.get("X-Request-Id") }));
        expect(await snapshot(), `${method} ${path} ${response.status} changed stored data`).toBe(before);
      }
    }),
    { numRuns: 400 },
  );
  // The generator must reach past authentication and validation, not only bounce off them.
  const statuses = [...seen.keys()];
  console.info("fuzz statuses", Object.fromEntries(seen));
  expect(statuses.filter((s) => s >= 200 && s < 300).length).toBeGreaterThan(0);
  expect(statuses.filter((s) => s >= 400).length).toBeGreaterThanOrEqual(5);
  console.info("fuzz statuses", Object.fromEntries(seen));
});
