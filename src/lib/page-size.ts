/** Items per page of every list; shared with the playground. */
export const PAGE_SIZE = 10;
