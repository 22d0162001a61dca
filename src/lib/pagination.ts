import { getConfig } from "../config";
import { ApiError } from "../errors";

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
