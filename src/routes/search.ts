import { createRoute, z } from "@hono/zod-openapi";
import { asc, sql } from "drizzle-orm";
import { createRouter } from "../create-router";
import type { Database } from "../db/client";
import { userDb } from "../db/request-session";
import { idIn, messageWithStatus } from "../db/queries";
import { messages } from "../db/schema";
import { invalid } from "../errors";
import { pageBody, pageOffset, type Paging } from "../lib/pagination";
import { authenticated } from "../middleware";
import { errorResponses, jsonResponse, MessageSchema, PageQuerySchema, pageSchema, renderMessage } from "../schemas";

const QUERY_MAX_LENGTH = 200;
// The trigram index matches runs of at least this many characters.
const MIN_TRIGRAM_LENGTH = 3;
// A word this long also matches the words it begins ("hydro" finds "hydrogen"); shorter ones
// match whole words only (a one-letter prefix would merge thousands of the index's word lists).
const MIN_PREFIX_LENGTH = 3;
const SNIPPET_TOKENS = 16;
/**
 * Scripts written without spaces between words: Thai, Lao, Myanmar, Khmer, Japanese kana, CJK
 * ideographs, Hangul. The same ranges as the GLOB class in migrations/shard/0002_word_search.sql,
 * which puts messages with such text in the trigram index as well.
 */
const NO_SPACE_SCRIPT = /[\u0E00-\u0EFF\u1000-\u109F\u1780-\u17FF\u3040-\u30FF\u3400-\u9FFF\uAC00-\uD7AF\uF900-\uFAFF]/;

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

/** A word as an FTS5 string that cannot be anything else: quoted, quotes doubled. `*`, `NEAR`, `-`, `AND`, parentheses are just text. */
const quoted = (word: string) => `"${word.replaceAll('"', '""')}"`;

/**
 * The word index's query for `words` of `userId`: the user's own rows (the owner column), every
 * word in the text, each longer word also as a prefix.
 */
export function wordMatch(userId: string, words: string[]): string {
  const owner = `owner : "${userId.replaceAll("-", "")}"`;
  return [owner, ...words.map((word) => `content : ${quoted(word)}${[...word].length >= MIN_PREFIX_LENGTH ? "*" : ""}`)].join(" AND ");
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

/**
 * Words in scripts with spaces: the word index alone finds, counts and ranks the caller's matches
 * (it holds only messages search may show, with their owner), and only the page's rows are joined
 * to their messages and made into snippets.
 */
function wordHits(db: Database, userId: string, words: string[], paging: Paging) {
  const match = wordMatch(userId, words);
  return db.all<HitRow>(sql`WITH page AS MATERIALIZED (
      SELECT rowid AS rid, bm25(message_words, 1.0, 0.0) AS rank FROM message_words
      WHERE message_words MATCH ${match} ORDER BY rank, rowid LIMIT ${paging.page_size} OFFSET ${pageOffset(paging)})
    SELECT m.id, m.conversation_id, c.title, page.rank,
           snippet(message_words, 0, ${MARK_START}, ${MARK_END}, '…', ${SNIPPET_TOKENS}) AS snippet,
           (SELECT count(*) FROM message_words WHERE message_words MATCH ${match}) AS total
    FROM page CROSS JOIN message_words ON message_words.rowid = page.rid
      CROSS JOIN messages m ON m.rowid = page.rid CROSS JOIN conversations c ON c.id = m.conversation_id
    WHERE message_words MATCH ${match} AND m.user_id = ${userId}
    ORDER BY page.rank, page.rid`);
}

/**
 * Text in a script without spaces: the trigram index, which holds only messages with such text,
 * so its matches are few enough to check for the caller one by one. Words shorter than a trigram
 * cannot be matched by it: they are looked for in the text of its matches.
 */
function trigramHits(db: Database, userId: string, words: string[], paging: Paging) {
  const long = words.filter((word) => [...word].length >= MIN_TRIGRAM_LENGTH);
  const match = long.map(quoted).join(" ");
  const shortWordsAppear = sql.join(
    words.filter((word) => !long.includes(word)).map((word) => sql` AND instr(lower(m.content), lower(${word})) > 0`),
  );
  // CROSS JOIN fixes the loop order: the index finds the matches, then each is checked for this
  // user. FTS5's functions cannot sit in a window query, so the matches are ranked first and the
  // snippets made for the page's rows only.
  return db.all<HitRow>(sql`WITH matches AS MATERIALIZED (
      SELECT m.rowid AS rid, m.id, m.conversation_id, c.title, bm25(message_trigrams) AS rank
      FROM message_trigrams CROSS JOIN messages m ON m.rowid = message_trigrams.rowid CROSS JOIN conversations c ON c.id = m.conversation_id
      WHERE message_trigrams MATCH ${match} AND m.user_id = ${userId}${shortWordsAppear}),
    page AS MATERIALIZED (SELECT *, count(*) OVER () AS total FROM matches ORDER BY rank, id LIMIT ${paging.page_size} OFFSET ${pageOffset(paging)})
    SELECT page.id, page.conversation_id, page.title, page.rank, page.total,
           snippet(message_trigrams, 0, ${MARK_START}, ${MARK_END}, '…', ${SNIPPET_TOKENS}) AS snippet
    FROM page CROSS JOIN message_trigrams ON message_trigrams.rowid = page.rid
    WHERE message_trigrams MATCH ${match} ORDER BY page.rank, page.id`);
}

/** Only words too short for the trigram index (e.g. a two-character CJK word): a scan of the user's own messages, newest first. */
function scanHits(db: Database, userId: string, text: string, paging: Paging) {
  return db.all<HitRow>(sql`SELECT m.id, m.conversation_id, c.title, m.content AS snippet, 0 AS rank, count(*) OVER () AS total
    FROM messages m JOIN conversations c ON c.id = m.conversation_id
    WHERE m.user_id = ${userId} AND m.is_deleted = 0 AND c.status = 'Active' AND instr(lower(m.content), lower(${text})) > 0
    ORDER BY m.timestamp DESC, m.id DESC LIMIT ${paging.page_size} OFFSET ${pageOffset(paging)}`);
}

/** The hits of `text` and how their snippets are made. */
async function findHits(db: Database, userId: string, text: string, paging: Paging): Promise<{ hits: HitRow[]; snippet: (hit: HitRow) => string }> {
  const words = text.split(/\s+/);
  if (!NO_SPACE_SCRIPT.test(text)) {
    // A word with no letter or digit (e.g. "-") has no token to look for.
    const searchable = words.filter((word) => /[\p{L}\p{N}]/u.test(word));
    return { hits: searchable.length ? await wordHits(db, userId, searchable, paging) : [], snippet: (hit) => htmlSnippet(hit.snippet) };
  }
  if (words.some((word) => [...word].length >= MIN_TRIGRAM_LENGTH)) return { hits: await trigramHits(db, userId, words, paging), snippet: (hit) => htmlSnippet(hit.snippet) };
  return { hits: await scanHits(db, userId, text, paging), snippet: (hit) => plainSnippet(hit.snippet, text) };
}

export const searchRoutes = createRouter().openapi(searchMessages, async (c) => {
  const { q, ...paging } = c.req.valid("query");
  // Whatever was typed is searched as text: NUL and lone surrogates cannot match anything stored.
  const text = q.replaceAll("\0", " ").toWellFormed().trim();
  if (!text) throw invalid({ field: "q", message: "Enter something to search for." });
  const db = userDb(c);
  const { hits, snippet } = await findHits(db, c.get("userId"), text, paging);
  // No row at this offset: it is past the last match (a 404 beyond page 1), or there is none.
  const total = hits[0]?.total ?? 0;
  const rows = hits.length ? await messageWithStatus(db).where(idIn(messages.id, hits.map((h) => h.id))).orderBy(asc(messages.order)) : [];
  const byId = new Map(rows.map((row) => [row.message.id, row]));
  const results = hits.map((hit) => {
    const row = byId.get(hit.id)!;
    return { conversation: { id: hit.conversation_id, title: hit.title }, message: renderMessage(row.message, row), snippet: snippet(hit), rank: hit.rank };
  });
  return c.json(pageBody(c.env, c.req.url, paging, total, results), 200);
});
