import { ApiError } from "../errors";
import { PAGE_SIZE } from "./page-size";

export { PAGE_SIZE };

export const pageOffset = (page: number) => (page - 1) * PAGE_SIZE;

/** A DRF-style page: `next`/`previous` are full URLs or null; a page past the end is a 404. */
export function pageBody<T>(requestUrl: string, page: number, count: number, results: T[]) {
  if (page > 1 && pageOffset(page) >= count) throw new ApiError("invalid_page", "Invalid page.");
  const link = (target: number) => {
    const url = new URL(requestUrl);
    url.searchParams.set("page", String(target));
    return url.toString();
  };
  return {
    count,
    next: page * PAGE_SIZE < count ? link(page + 1) : null,
    previous: page > 1 ? link(page - 1) : null,
    results,
  };
}
