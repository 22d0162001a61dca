import { z } from "@hono/zod-openapi";
import { getConfig } from "../http/config";
import { ApiError, invalid } from "../http/errors";
import { fromBase64Url, toBase64Url } from "./ids";

/** `?page=` (1-based) and `?page_size=` of a list request, validated by `PageQuerySchema`. */
export interface Paging {
  page: number;
  page_size: number;
}

export const pageOffset = ({ page, page_size }: Paging) => (page - 1) * page_size;

/**
 * The request's URL as clients should see it: on PUBLIC_URL's origin when that is set. Under
 * `wrangler dev` (or any proxy that passes Host through) the request's host is whatever the
 * client sent, so links built from it alone could point anywhere.
 */
export function publicRequestUrl(env: Env, requestUrl: string): URL {
  const url = new URL(requestUrl);
  const base = getConfig(env).publicUrl;
  return base ? new URL(`${url.pathname}${url.search}`, base) : url;
}

/** A DRF-style page: `next`/`previous` are full URLs or null; a page past the end is a 404. */
export function pageBody<T>(env: Env, requestUrl: string, paging: Paging, count: number, results: T[]) {
  const { page, page_size } = paging;
  if (page > 1 && pageOffset(paging) >= count) throw new ApiError("invalid_page", "Invalid page.");
  const link = (target: number) => {
    const url = publicRequestUrl(env, requestUrl);
    url.searchParams.set("page", String(target));
    return url.toString();
  };
  return {
    count,
    next: page * page_size < count ? link(page + 1) : null,
    previous: page > 1 ? link(page - 1) : null,
    results,
  };
}

/** `?cursor=`: keyset paging, for lists long enough that deep page numbers would cost a scan. */
export const CursorQuerySchema = z.object({
  cursor: z
    .string()
    .max(400)
    .optional()
    .openapi({ description: "Keyset paging: empty for the first page, then follow `next`. Every page costs the same, however deep; `page` is ignored." }),
});

/**
 * The position a `?cursor=` names: the sort key of the last row of the page before. `undefined`
 * without a cursor (page numbers), null for the first keyset page.
 */
export function readCursor<K>(cursor: string | undefined, key: z.ZodType<K>): K | null | undefined {
  if (cursor === undefined) return undefined;
  if (cursor === "") return null;
  try {
    return key.parse(JSON.parse(new TextDecoder().decode(fromBase64Url(cursor))));
  } catch {
    throw invalid({ field: "cursor", message: "Not a cursor from a `next` link." });
  }
}

/** LIMIT and OFFSET of a page: by number, or after a cursor's position with one row more (is there a next page?). */
export const pageRows = (paging: Paging, after: unknown) =>
  after === undefined ? { limit: paging.page_size, offset: pageOffset(paging) } : { limit: paging.page_size + 1, offset: 0 };

/**
 * A DRF-style page in keyset mode: `rows` is the page plus one more row if there is one, and
 * `next` carries the sort key of the page's last row. Forward only: `previous` is null.
 */
export function keysetPageBody<R, T>(env: Env, requestUrl: string, pageSize: number, count: number, rows: R[], keyOf: (row: R) => unknown, render: (row: R) => T) {
  const page = rows.slice(0, pageSize);
  let next: string | null = null;
  if (rows.length > pageSize) {
    const url = publicRequestUrl(env, requestUrl);
    url.searchParams.delete("page");
    url.searchParams.set("cursor", toBase64Url(new TextEncoder().encode(JSON.stringify(keyOf(page.at(-1)!)))));
    next = url.toString();
  }
  return { count, next, previous: null, results: page.map(render) };
}
