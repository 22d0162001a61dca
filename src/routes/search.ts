import { createRoute, z } from "@hono/zod-openapi";
import { asc, sql } from "drizzle-orm";
import { createRouter } from "../create-router";
import { userDb } from "../db/request-session";
import { idIn, messageWithStatus } from "../db/queries";
import { messages } from "../db/schema";
import { invalid } from "../errors";
import { pageBody, pageOffset } from "../lib/pagination";
import { authenticated } from "../middleware";
import { errorResponses, jsonResponse, MessageSchema, PageQuerySchema, pageSchema, renderMessage } from "../schemas";

const QUERY_MAX_LENGTH = 200;
// The trigram index matches runs of at least this many characters.
const MIN_TERM_LENGTH = 3;
const SNIPPET_TOKENS = 16;

const SearchHitSchema = z
  .object({
    conversation: z.object({ id: z.string(), title: z.string().nullable() }),
    message: MessageSchema,
    snippet: z.string().openapi({ description: "HTML-safe text around the match, with each hit in <mark>…</mark>." }),
    rank: z.number().openapi({ description: "bm25 relevance: lower is better; results are best first." }),
  })
  .openapi("SearchHit");

const searchMessages = createRoute({
  ...authenticated("search"),
  method: "get",
  path: "/search",
  summary: "Full-text search of your messages (not soft-deleted ones, not in Deleted conversations), best match first",
  request: {
    query: PageQuerySchema.extend({
      q: z.string().max(QUERY_MAX_LENGTH).openapi({ description: "Plain words, never query syntax: every word must appear." }),
    }),
  },
  responses: { 200: jsonResponse(pageSchema(SearchHitSchema, "SearchPage"), "A page of hits"), ...errorResponses(400, 401, 404) },
});

/**
 * The user's words as an FTS5 query that cannot be anything else: each word a quoted string
 * (quotes doubled), all of them required. `*`, `NEAR`, `-`, `AND`, parentheses are just text.
 */
export function matchExpression(words: string[]): string {
  return words.map((word) => `"${word.replaceAll('"', '""')}"`).join(" ");
}

const MARK_START = "\u0002";
const MARK_END = "\u0003";
const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
/** snippet()'s text, escaped for HTML, with its hit markers turned into <mark> elements. */
const htmlSnippet = (text: string) => escapeHtml(text).replaceAll(MARK_START, "<mark>").replaceAll(MARK_END, "</mark>");

/** The same for a message found without the index (words shorter than the trigram): the first hit, in context. */
function plainSnippet(content: string, needle: string): string {
  const at = content.toLowerCase().indexOf(needle.toLowerCase());
  const from = Math.max(0, at - 40);
  const before = (from > 0 ? "…" : "") + content.slice(from, at);
  const after = content.slice(at + needle.length, at + needle.length + 60) + (at + needle.length + 60 < content.length ? "…" : "");
  return `${escapeHtml(before)}<mark>${escapeHtml(content.slice(at, at + needle.length))}</mark>${escapeHtml(after)}`;
}

interface HitRow {
  id: string;
  conversation_id: string;
  title: string | null;
  snippet: string;
  rank: number;
  total: number;
}

export const searchRoutes = createRouter().openapi(searchMessages, async (c) => {
  const { q, ...paging } = c.req.valid("query");
  // Whatever was typed is searched as text: NUL and lone surrogates cannot match anything stored.
  const text = q.replaceAll("\0", " ").toWellFormed().trim();
  if (!text) throw invalid({ field: "q", message: "Enter something to search for." });
  const words = text.split(/\s+/);
  const indexed = words.filter((word) => [...word].length >= MIN_TERM_LENGTH);
  const db = userDb(c);
  const userId = c.get("userId");
  const visible = sql`m.user_id = ${userId} AND m.is_deleted = 0 AND c.status = 'Active'`;
  const limit = sql`LIMIT ${paging.page_size} OFFSET ${pageOffset(paging)}`;
  // The count comes with the page (`count(*) OVER ()`): ranking visits every match anyway, so
  // counting them in the same pass saves a second one over the index.
  const hits = await db.all<HitRow>(
    indexed.length
      ? // Indexed words: the FTS5 match, ranked by bm25. FTS5's functions cannot sit in a window
        // query, so the matches are ranked first and the snippets made for the page's rows only.
        // CROSS JOIN fixes the loop order: the index finds the matches, then each is checked for
        // this user (otherwise SQLite may walk every message of the user and probe the index per message).
        sql`WITH matches AS MATERIALIZED (
              SELECT m.rowid AS rid, m.id, m.conversation_id, c.title, bm25(messages_fts) AS rank
              FROM messages_fts CROSS JOIN messages m ON m.rowid = messages_fts.rowid CROSS JOIN conversations c ON c.id = m.conversation_id
              WHERE messages_fts MATCH ${matchExpression(indexed)} AND ${visible}),
            page AS MATERIALIZED (SELECT *, count(*) OVER () AS total FROM matches ORDER BY rank, id ${limit})
            SELECT page.id, page.conversation_id, page.title, page.rank, page.total,
                   snippet(messages_fts, 0, ${MARK_START}, ${MARK_END}, '…', ${SNIPPET_TOKENS}) AS snippet
            FROM page CROSS JOIN messages_fts ON messages_fts.rowid = page.rid
            WHERE messages_fts MATCH ${matchExpression(indexed)} ORDER BY page.rank, page.id`
      : // Only words too short for the trigram index (e.g. a two-character CJK word): a scan of
        // this user's own messages, newest first.
        sql`SELECT m.id, m.conversation_id, c.title, m.content AS snippet, 0 AS rank, count(*) OVER () AS total
            FROM messages m JOIN conversations c ON c.id = m.conversation_id
            WHERE ${visible} AND instr(lower(m.content), lower(${text})) > 0
            ORDER BY m.timestamp DESC, m.id DESC ${limit}`,
  );
  // No row at this offset: it is past the last match (a 404 beyond page 1), or there is none.
  const total = hits[0]?.total ?? 0;
  const rows = hits.length ? await messageWithStatus(db).where(idIn(messages.id, hits.map((h) => h.id))).orderBy(asc(messages.order)) : [];
  const byId = new Map(rows.map((row) => [row.message.id, row]));
  const results = hits.map((hit) => {
    const row = byId.get(hit.id)!;
    return {
      conversation: { id: hit.conversation_id, title: hit.title },
      message: renderMessage(row.message, row),
      snippet: indexed.length ? htmlSnippet(hit.snippet) : plainSnippet(hit.snippet, text),
      rank: hit.rank,
    };
  });
  return c.json(pageBody(c.env, c.req.url, paging, total, results), 200);
});
