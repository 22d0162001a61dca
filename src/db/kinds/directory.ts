// The tables of the directory database: what login needs before a user id is known.
// drizzle.directory.config.ts generates migrations/directory from these.
export { refreshTokens, shareLinks, users } from "../schema";
