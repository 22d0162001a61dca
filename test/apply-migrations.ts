import { applyD1Migrations } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { shardDatabases } from "./helpers";

// Storage is isolated per test file; applying is idempotent, so every file starts migrated.
await applyD1Migrations(env.DIRECTORY, env.TEST_DIRECTORY_MIGRATIONS);
for (const shard of shardDatabases()) await applyD1Migrations(shard, env.TEST_SHARD_MIGRATIONS);
