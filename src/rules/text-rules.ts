import { z } from "@hono/zod-openapi";

/**
 * Every string the API stores or compares (content, titles, prompts, names, passwords) is valid
 * Unicode with no NUL: a lone surrogate would be stored as U+FFFD, so `"\ud800"` and `"\udc00"`
 * would become the same password, and a title would no longer equal what was sent.
 */
export const wellFormedText = () =>
  z
    .string()
    .refine((text) => !text.includes("\0"), "Cannot contain NUL characters.")
    .refine((text) => text.isWellFormed(), "Must be valid Unicode (no lone surrogates).");
