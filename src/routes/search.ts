import { createRoute, z } from "@hono/zod-openapi";
import { eq, type SQL, sql } from "drizzle-orm";
import { createRouter } from "../http/create-router";
import type { Database } from "../db/client";
import { userDb } from "../db/request-session";
import { messageStatusColumns, replyResponseJoin } from "../db/queries";
import { conversations, messages } from "../db/schema";
import { invalid } from "../http/errors";
import { enforceRateLimit } from "../lib/rate-limit";
import { pageBody, pageOffset, type Paging } from "../lib/pagination";
import { authenticated } from "../http/middleware";
import { errorResponses, jsonResponse, MessageSchema, PageQuerySchema, pageSchema, renderMessage } from "../http/schemas";

const QUERY_MAX_LENGTH = 200;
// The trigram index matches runs of at least this many characters.
const MIN_TRIGRAM_LENGTH = 3;
// A word this long also matches the words it begins ("hydro" finds "hydrogen"); shorter ones
// match whole words only (a one-letter prefix would merge thousands of the index's word lists).
const MIN_PREFIX_LENGTH = 3;
// What one search may cost: distinct words, and of them prefixes (each merges many word lists).
const MAX_WORDS = 8;
const MAX_PREFIXES = 4;
// The newest matches scored for relevance; older ones follow, newest first.
const SCORED_MATCHES = 1_000;
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
    rank: z.number().openapi({
      description:
        "Lower is better; results are best first. Relevance (negative) from your own message alone: how often the words occur, for its length; never other users' messages. " +
        "Beyond the newest 1,000 matches, and for a query of only one- or two-character CJK words (found by a scan), the position, newest first.",
    }),
  })
  .openapi("SearchHit");

const searchMessages = createRoute({
  ...authenticated("search"),
  method: "get",
  path: "/search",
  summary: "Full-text search of your messages (not soft-deleted ones, not in Deleted conversations), best match first",
  request: {
    query: PageQuerySchema.extend({
      q: z.string().max(QUERY_MAX_LENGTH).openapi({ description: "Plain words, never query syntax: every word must appear; a word of three or more letters also finds the words it begins." }),
    }),
  },
  responses: { 200: jsonResponse(pageSchema(SearchHitSchema, "SearchPage"), "A page of hits"), ...errorResponses(400, 401, 404) },
});

/** A word as an FTS5 string that cannot be anything else: quoted, quotes doubled. `*`, `NEAR`, `-`, `AND`, parentheses are just text. */
const quoted = (word: string) => `"${word.replaceAll('"', '""')}"`;

/** The word index's query for `words`: every word in the text, the first MAX_PREFIXES longer words also as prefixes. */
function contentMatch(words: string[]): string {
  let prefixes = 0;
  return words
    .map((word) => {
      const prefix = [...word].length >= MIN_PREFIX_LENGTH && prefixes++ < MAX_PREFIXES;
      return `content : ${quoted(word)}${prefix ? "*" : ""}`;
    })
    .join(" AND ");
}

/**
 * A message's relevance from its own text alone (BM25's shape, with a fixed average length and
 * no document frequencies): FTS5's bm25() weighs words by every row of the shard's index, other
 * users' rows included, so its ranks and order told one user about another's messages.
 */
function ownRelevance(content: SQL, words: string[]): SQL {
  const lowered = sql`lower(${content})`;
  const terms = words.map((word) => {
    const w = word.toLowerCase();
    const tf = sql`max(1, (length(${lowered}) - length(replace(${lowered}, ${w}, ''))) / length(${w}))`;
    return sql`(${tf} * 2.2 / (${tf} + 1.2 * (0.25 + 0.75 * length(${content}) / 500.0)))`;
  });
  return sql`-round(${sql.join(terms, sql` + `)}, 6)`;
}

/** The same, limited to `userId`'s own rows (the owner column). */
const ownContentMatch = (userId: string, words: string[]) => `owner : "${userId.replaceAll("-", "")}" AND ${contentMatch(words)}`;

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

/**
 * One statement per search: `hits` (raw SQL, shaped by the index it reads) yields the page's
 * message rowids with their rank, snippet text and the total number of matches; the page's
 * messages are then joined with what their rendering needs.
 */
function pageOfHits(db: Database, userId: string, hits: SQL) {
  const page = db
    .$with("hits", {
      rid: sql<number>`rid`.as("rid"),
      rank: sql<number>`rank`.as("rank"),
      snippet: sql<string>`snippet`.as("snippet"),
      total: sql<number>`total`.as("total"),
    })
    .as(hits);
  return db
    .with(page)
    .select({ ...messageStatusColumns, title: conversations.title, rank: page.rank, snippet: page.snippet, total: page.total })
    .from(page)
    .innerJoin(messages, eq(sql`${messages}.rowid`, page.rid))
    .innerJoin(conversations, eq(conversations.id, messages.conversationId))
    .leftJoin(...replyResponseJoin)
    .where(eq(messages.userId, userId))
    .orderBy(sql`${page.rank}`, sql`${page.rid}`);
}

/**
 * Words in scripts with spaces: the word index alone finds and counts the caller's matches (it
 * holds only messages search may show, with their owner), in one evaluation of the query; the
 * newest SCORED_MATCHES are ranked by their own text, and snippets are made for the page's rows only.
 */
function wordHits(userId: string, words: string[], paging: Paging): SQL {
  const own = ownContentMatch(userId, words);
  return sql`WITH matched AS MATERIALIZED (SELECT rowid AS rid FROM message_words WHERE message_words MATCH ${own}),
    counted AS MATERIALIZED (SELECT count(*) AS n FROM matched),
    ranked AS (
      SELECT rid, CASE WHEN position <= ${SCORED_MATCHES}
          THEN (SELECT ${ownRelevance(sql`m.content`, words)} FROM messages m WHERE m.rowid = rid) ELSE position END AS rank
      FROM (SELECT rid, row_number() OVER (ORDER BY rid DESC) AS position FROM matched)),
    page AS MATERIALIZED (SELECT * FROM ranked ORDER BY rank, rid LIMIT ${paging.page_size} OFFSET ${pageOffset(paging)})
    SELECT page.rid, page.rank, snippet(message_words, 0, ${MARK_START}, ${MARK_END}, '…', ${SNIPPET_TOKENS}) AS snippet, (SELECT n FROM counted) AS total
    FROM page CROSS JOIN message_words ON message_words.rowid = page.rid
    WHERE message_words MATCH ${contentMatch(words)}`;
}

/**
 * Text in a script without spaces: the trigram index, which holds only messages with such text,
 * so its matches are few enough to check for the caller one by one. Words shorter than a trigram
 * cannot be matched by it: they are looked for in the text of its matches.
 */
function trigramHits(userId: string, words: string[], paging: Paging): SQL {
  const long = words.filter((word) => [...word].length >= MIN_TRIGRAM_LENGTH);
  const match = long.map(quoted).join(" ");
  const shortWordsAppear = sql.join(
    words.filter((word) => !long.includes(word)).map((word) => sql` AND instr(lower(m.content), lower(${word})) > 0`),
  );
  // CROSS JOIN fixes the loop order: the index finds the matches, then each is checked for this
  // user. FTS5's functions cannot sit in a window query, so the matches are ranked first and the
  // snippets made for the page's rows only.
  return sql`WITH matches AS MATERIALIZED (
      SELECT m.rowid AS rid, ${ownRelevance(sql`m.content`, long)} AS rank
      FROM message_trigrams CROSS JOIN messages m ON m.rowid = message_trigrams.rowid
      WHERE message_trigrams MATCH ${match} AND m.user_id = ${userId}${shortWordsAppear}),
    page AS MATERIALIZED (SELECT *, count(*) OVER () AS total FROM matches ORDER BY rank, rid LIMIT ${paging.page_size} OFFSET ${pageOffset(paging)})
    SELECT page.rid, page.rank, page.total, snippet(message_trigrams, 0, ${MARK_START}, ${MARK_END}, '…', ${SNIPPET_TOKENS}) AS snippet
    FROM page CROSS JOIN message_trigrams ON message_trigrams.rowid = page.rid
    WHERE message_trigrams MATCH ${match}`;
}

/**
 * Only words too short for the trigram index (e.g. a two-character CJK word): a scan of the
 * user's own visible messages, newest first (its rank is its position: 1 for the newest).
 */
function scanHits(userId: string, text: string, paging: Paging): SQL {
  return sql`SELECT m.rowid AS rid, row_number() OVER (ORDER BY m.timestamp DESC, m.id DESC) AS rank, m.content AS snippet, count(*) OVER () AS total
    FROM messages m JOIN conversations c ON c.id = m.conversation_id
    WHERE m.user_id = ${userId} AND m.is_deleted = 0 AND c.status = 'Active' AND instr(lower(m.content), lower(${text})) > 0
    ORDER BY m.timestamp DESC, m.id DESC LIMIT ${paging.page_size} OFFSET ${pageOffset(paging)}`;
}

/** The statement that finds the hits of `text`, and how their snippets are made. */
function searchPlan(userId: string, text: string, paging: Paging): { hits: SQL; snippet: (text: string) => string } | null {
  // The same word twice costs twice and finds nothing more.
  const words = [...new Map(text.split(/\s+/).map((word) => [word.toLowerCase(), word])).values()];
  if (words.length > MAX_WORDS) throw invalid({ field: "q", message: `Search for at most ${MAX_WORDS} different words.` });
  if (!NO_SPACE_SCRIPT.test(text)) {
    // A word with no letter or digit (e.g. "-") has no token to look for.
    const searchable = words.filter((word) => /[\p{L}\p{N}]/u.test(word));
    return searchable.length ? { hits: wordHits(userId, searchable, paging), snippet: htmlSnippet } : null;
  }
  if (words.some((word) => [...word].length >= MIN_TRIGRAM_LENGTH)) return { hits: trigramHits(userId, words, paging), snippet: htmlSnippet };
  return { hits: scanHits(userId, text, paging), snippet: (content) => plainSnippet(content, text) };
}

export const searchRoutes = createRouter().openapi(searchMessages, async (c) => {
  const { q, ...paging } = c.req.valid("query");
  // Whatever was typed is searched as text: NUL and lone surrogates cannot match anything stored.
  const text = q.replaceAll("\0", " ").toWellFormed().trim();
  if (!text) throw invalid({ field: "q", message: "Enter something to search for." });
  const userId = c.get("userId");
  // One D1 database answers every user of a shard one query at a time: search is bounded per user.
  await enforceRateLimit(c.env.SEARCH_RATE_LIMITER, [`user:${userId}`], "searches");
  const plan = searchPlan(userId, text, paging);
  if (!plan) return c.json(pageBody(c.env, c.req.url, paging, 0, []), 200);
  const rows = await pageOfHits(userDb(c), userId, plan.hits);
  // No row at this offset: it is past the last match (a 404 beyond page 1), or there is none.
  const total = rows[0]?.total ?? 0;
  const results = rows.map((row) => ({
    conversation: { id: row.message.conversationId, title: row.title },
    message: renderMessage(row.message, row),
    snippet: plan.snippet(row.snippet),
    rank: row.rank,
  }));
  return c.json(pageBody(c.env, c.req.url, paging, total, results), 200);
});
