/** Items per page of every list unless `?page_size=` asks otherwise; shared with the playground. */
export const PAGE_SIZE = 10;
export const MAX_PAGE_SIZE = 100;
