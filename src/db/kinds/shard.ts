// The tables of each shard database: everything that belongs to one user.
// drizzle.shard.config.ts generates migrations/shard from these.
export { aiResponses, conversations, files, messages, shares, summaries, usageDaily } from "../schema";
