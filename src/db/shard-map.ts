/**
 * Which D1 database holds a user's rows. A user id hashes to one of VIRTUAL_SHARDS virtual shards
 * for good; SHARD_MAP assigns ranges of virtual shards to shard bindings. Adding a database is
 * moving some virtual shards to it (docs/SCALING.md): a new range in SHARD_MAP, no code change.
 */
export const VIRTUAL_SHARDS = 4096;

/** FNV-1a over the id's UTF-16 code units: stable across runtimes and releases, and cheap. */
export function virtualShardOf(userId: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < userId.length; i++) {
    hash ^= userId.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) % VIRTUAL_SHARDS;
}

/** `7,100-200`: virtual shards listed one by one or as ranges (FROZEN_VIRTUAL_SHARDS). */
export function parseVirtualShardSet(value: string): ReadonlySet<number> {
  const shards = new Set<number>();
  for (const entry of value.split(",").map((part) => part.trim()).filter(Boolean)) {
    const match = entry.match(/^(\d+)(?:-(\d+))?$/);
    const [first, last] = match ? [Number(match[1]), Number(match[2] ?? match[1])] : [NaN, NaN];
    if (!(first <= last && last < VIRTUAL_SHARDS)) throw new Error(`FROZEN_VIRTUAL_SHARDS: "${entry}" is not a virtual shard or a range of them`);
    for (let shard = first; shard <= last; shard++) shards.add(shard);
  }
  return shards;
}

export interface ShardMap {
  /** The binding names, in the order SHARD_MAP first names them. */
  bindings: readonly string[];
  bindingOf(virtualShard: number): string;
}

/**
 * Parses `SHARD_0:0-2047,SHARD_1:2048-4095`. Every virtual shard must be mapped exactly once: a
 * gap or an overlap would send a user's requests to a database that does not hold their rows.
 */
export function parseShardMap(value: string): ShardMap {
  const owner = new Array<string | undefined>(VIRTUAL_SHARDS);
  const bindings: string[] = [];
  for (const entry of value.split(",").map((part) => part.trim()).filter(Boolean)) {
    const match = entry.match(/^([A-Za-z_][A-Za-z0-9_]*):(\d+)-(\d+)$/);
    if (!match) throw new Error(`SHARD_MAP: "${entry}" is not BINDING:first-last`);
    const [, binding, first, last] = match as unknown as [string, string, string, string];
    if (+first > +last || +last >= VIRTUAL_SHARDS) throw new Error(`SHARD_MAP: ${first}-${last} is not a range within 0-${VIRTUAL_SHARDS - 1}`);
    for (let shard = +first; shard <= +last; shard++) {
      if (owner[shard] !== undefined) throw new Error(`SHARD_MAP: virtual shard ${shard} is mapped twice`);
      owner[shard] = binding;
    }
    if (!bindings.includes(binding)) bindings.push(binding);
  }
  const unmapped = owner.findIndex((binding) => binding === undefined);
  if (unmapped !== -1) throw new Error(`SHARD_MAP: virtual shard ${unmapped} is not mapped`);
  return { bindings, bindingOf: (virtualShard) => owner[virtualShard]! };
}
