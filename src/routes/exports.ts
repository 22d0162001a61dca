import { createRoute, z } from "@hono/zod-openapi";
import { and, asc, eq, gt, isNull } from "drizzle-orm";
import { createRouter } from "../http/create-router";
import type { Database } from "../db/client";
import { userDb } from "../db/request-session";
import { withLiveText } from "../conversation/client/overlay";
import { conversationObject } from "../conversation/client/stub";
import { unwrap } from "../http/errors";
import { idIn, messageWithStatus, newerThan } from "../db/queries";
import { type Conversation, conversations, type FileRow, files, messages } from "../db/schema";
import { loadOwnedTree } from "../db/tree";
import { authenticated } from "../http/middleware";
import { errorResponses, IdParamSchema, type MessageJson, renderConversation, renderFile, renderMessage } from "../http/schemas";

// Rows read per query while exporting: memory stays bounded by this, whatever the size of the export.
const CHUNK = 200;
const CONVERSATIONS_PER_PAGE = 50;

const secured = authenticated("export");

const exportConversation = createRoute({
  ...secured,
  method: "get",
  path: "/conversations/{id}/export",
  summary: "Download a conversation as JSON or Markdown: the current branch, or with ?branch=all every message",
  request: {
    params: IdParamSchema,
    query: z.object({
      format: z.enum(["json", "markdown"]).default("json"),
      branch: z.enum(["current", "all"]).default("current"),
    }),
  },
  responses: {
    200: {
      description: "An attachment (Content-Disposition). JSON: {conversation, branch, messages}; soft-deleted messages are left out.",
      content: { "application/json": { schema: z.unknown() }, "text/markdown": { schema: z.string() } },
    },
    ...errorResponses(400, 401, 404),
  },
});

const exportAccount = createRoute({
  ...secured,
  method: "get",
  path: "/users/me/export",
  summary: "Everything you wrote and got back, as NDJSON: a conversation line, then a line per message of every branch",
  responses: {
    200: {
      description:
        'One JSON object per line: `{"type":"conversation",…}` followed by its `{"type":"message",…}` lines (soft-deleted ones too, ' +
        "flagged), conversation after conversation. Streamed page by page, so any size of account exports in bounded memory.",
      content: { "application/x-ndjson": { schema: z.string() } },
    },
    ...errorResponses(401),
  },
});

const encoder = new TextEncoder();

/** A streamed body from an async generator of text, pulled as the client reads. */
function textStream(parts: AsyncGenerator<string>): ReadableStream<Uint8Array> {
  return new ReadableStream({
    async pull(controller) {
      const { value, done } = await parts.next();
      if (done) controller.close();
      else controller.enqueue(encoder.encode(value));
    },
    async cancel() {
      await parts.return(undefined);
    },
  });
}

/** The messages with these ids, rendered, in order: a chunk at a time. */
async function* messagesByIds(env: Env, db: Database, userId: string, ids: string[]): AsyncGenerator<MessageJson> {
  for (let at = 0; at < ids.length; at += CHUNK) {
    const rows = await messageWithStatus(db).where(idIn(messages.id, ids.slice(at, at + CHUNK))).orderBy(asc(messages.order));
    for (const row of await withLiveText(env, userId, rows)) yield renderMessage(row.message, row);
  }
}

async function* jsonExport(conversation: Conversation, branch: string, found: AsyncGenerator<MessageJson>): AsyncGenerator<string> {
  yield `{"conversation":${JSON.stringify(renderConversation(conversation))},"branch":${JSON.stringify(branch)},"messages":[`;
  let first = true;
  for await (const message of found) {
    yield `${first ? "" : ","}${JSON.stringify(message)}`;
    first = false;
  }
  yield "]}\n";
}

/** One line, whatever the title holds: a line break in it must not start a section of its own. */
const oneLine = (text: string) => text.replace(/[\u0000-\u001f\u007f\u2028\u2029]+/g, " ").trim();

/**
 * A message's text as a block quote, with any heading in it escaped: whatever it holds, it stays
 * inside its own message and cannot start a section that looks like another turn.
 */
const quoted = (text: string) =>
  text
    .split(/\r\n|\r|\n/)
    .map((line) => (line ? `> ${line.replace(/^(\s{0,3})(#)/, "$1\\$2")}` : ">"))
    .join("\n");

/** `text` in a code fence longer than any run of backticks inside it: nothing in it can close the block. */
function fenced(info: string, text: string): string {
  const longest = Math.max(0, ...(text.match(/`+/g) ?? []).map((run) => run.length));
  const fence = "`".repeat(Math.max(3, longest + 1));
  return `${fence}${info}\n${text}\n${fence}`;
}

/** A message as Markdown: its text, and each tool call with its arguments and result as fenced blocks (reasoning is left out). */
function messageMarkdown(message: MessageJson): string {
  if (!message.parts?.some((part) => part.type === "tool_call")) return message.content;
  return message.parts
    .flatMap((part) => {
      if (part.type === "text") return [part.text];
      if (part.type !== "tool_call") return [];
      const result = part.status === "completed" ? (part.output ?? "") : (part.error ?? "");
      return [`\n${fenced(` tool call: ${part.name}`, part.arguments)}\n${fenced(` tool ${part.status === "completed" ? "output" : part.status}`, result)}\n`];
    })
    .join("");
}

async function* markdownExport(conversation: Conversation, branch: string, found: AsyncGenerator<MessageJson>): AsyncGenerator<string> {
  yield `# ${oneLine(conversation.title ?? "") || "Untitled conversation"}\n\n`;
  yield `_Model: ${conversation.modelVersion}. ${branch === "all" ? "Every branch, in the order written; each message names the one it follows." : "The current branch."}_\n\n`;
  // With every branch, a message's place in the tree is the order of its parent.
  const orders = new Map<string, number>();
  for await (const message of found) {
    const who = message.sender === "user" ? "You" : "Assistant";
    const parentOrder = message.parent ? orders.get(message.parent) : undefined;
    if (branch === "all") orders.set(message.id, message.order);
    yield `### ${who} · #${message.order}${branch === "all" && parentOrder !== undefined ? ` (after #${parentOrder})` : ""}\n\n${quoted(messageMarkdown(message))}\n\n`;
  }
}

/** All of a user's conversations, oldest first, a page at a time (keyset paging: no offsets). */
async function* accountExport(env: Env, db: Database, userId: string): AsyncGenerator<string> {
  let after: { createdAt: string; id: string } | null = null;
  for (;;) {
    const page: Conversation[] = await db
      .select()
      .from(conversations)
      .where(
        and(
          eq(conversations.userId, userId),
          after ? newerThan(conversations.createdAt, conversations.id, [after.createdAt, after.id]) : undefined,
        ),
      )
      .orderBy(asc(conversations.createdAt), asc(conversations.id))
      .limit(CONVERSATIONS_PER_PAGE);
    for (const conversation of page) {
      yield `${JSON.stringify({ type: "conversation", ...renderConversation(conversation) })}\n`;
      let lastOrder = 0;
      for (;;) {
        const rows = await messageWithStatus(db)
          .where(and(eq(messages.conversationId, conversation.id), gt(messages.order, lastOrder)))
          .orderBy(asc(messages.order))
          .limit(CHUNK);
        for (const row of await withLiveText(env, userId, rows)) yield `${JSON.stringify({ type: "message", ...renderMessage(row.message, row) })}\n`;
        if (rows.length < CHUNK) break;
        lastOrder = rows.at(-1)!.message.order;
      }
    }
    if (page.length < CONVERSATIONS_PER_PAGE) return yield* filesExport(db, userId);
    after = page.at(-1)!;
  }
}

/** Every file of the user, with its metadata (the bytes are at GET /files/{id}/content), oldest first. */
async function* filesExport(db: Database, userId: string): AsyncGenerator<string> {
  let after: { createdAt: string; id: string } | null = null;
  for (;;) {
    const page: FileRow[] = await db
      .select()
      .from(files)
      .where(
        and(
          eq(files.userId, userId),
          isNull(files.deletedAt),
          after ? newerThan(files.createdAt, files.id, [after.createdAt, after.id]) : undefined,
        ),
      )
      .orderBy(asc(files.createdAt), asc(files.id))
      .limit(CHUNK);
    for (const file of page) yield `${JSON.stringify({ type: "file", ...renderFile(file) })}\n`;
    if (page.length < CHUNK) return;
    after = page.at(-1)!;
  }
}

const attachment = (name: string) => `attachment; filename="${name}"`;

export const exportRoutes = createRouter()
  .openapi(exportConversation, async (c) => {
    const { id } = c.req.valid("param");
    const { format, branch } = c.req.valid("query");
    const db = userDb(c);
    // The export reads D1: first the object makes sure D1 has all of the conversation.
    unwrap(await conversationObject(c.env, id).synced(c.get("userId"), id));
    const { conversation, tree } = await loadOwnedTree(db, c.get("userId"), id, false);
    const ids = (branch === "all" ? tree.all() : tree.pathTo(conversation.currentLeafId)).map((node) => node.id);
    const found = messagesByIds(c.env, db, c.get("userId"), ids);
    const [body, type, extension] =
      format === "json"
        ? [jsonExport(conversation, branch, found), "application/json; charset=utf-8", "json"]
        : [markdownExport(conversation, branch, found), "text/markdown; charset=utf-8", "md"];
    return c.body(textStream(body), 200, { "Content-Type": type, "Content-Disposition": attachment(`conversation-${id}.${extension}`) });
  })
  .openapi(exportAccount, async (c) => {
    const body = textStream(accountExport(c.env, userDb(c), c.get("userId")));
    const headers = { "Content-Type": "application/x-ndjson; charset=utf-8", "Content-Disposition": attachment("genai-edge-export.ndjson") };
    // @hono/zod-openapi types no response body for a media type it does not know (NDJSON).
    return c.body(body, 200, headers) as never;
  });
