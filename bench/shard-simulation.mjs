// `npm run bench -- --shards`: what sharding and the two-write turn buy when D1 is the limit.
//
// A discrete-event simulation, not a measurement of D1: each D1 database is one server that runs
// one query at a time (a SQLite primary has one writer), with a modelled service time per read
// and per write batch. Users (one stream each, back to back, as in a busy deployment) are spread
// over the shard databases by the same virtual-shard hash and SHARD_MAP ranges the Worker uses.
// Each turn makes the D1 calls of the real write path, in order; a call waits for its database.
import { parseShardMap, VIRTUAL_SHARDS, virtualShardOf } from "../src/db/shard-map.ts";

const READ_MS = 2;
const WRITE_MS = 5;
/** How long the model streams one reply (300 tokens at 30 tokens/s). */
const STREAM_MS = 10_000;
const CHECKPOINT_EVERY_MS = 2_000;
const USERS = 4_000;
const WARMUP_MS = 120_000;
const MEASURE_MS = 120_000;

/**
 * The D1 calls of one turn. Admission (Worker): the conversation and the daily usage, read in
 * parallel but on the same database. Accept (object): one write batch that also reads the branch.
 * Then the stream; the old path wrote the text so far every 2 s. Finish: one write batch.
 */
const turnSteps = (checkpoints) => [
  { kind: "read" },
  { kind: "read" },
  { kind: "write" },
  ...(checkpoints
    ? Array.from({ length: Math.floor(STREAM_MS / CHECKPOINT_EVERY_MS) }, () => [{ kind: "wait", ms: CHECKPOINT_EVERY_MS }, { kind: "write" }]).flat()
    : [{ kind: "wait", ms: STREAM_MS }]),
  { kind: "write" },
];

/** A binary heap of events by time. */
class Events {
  #heap = [];
  push(event) {
    const heap = this.#heap;
    heap.push(event);
    for (let i = heap.length - 1; i > 0; ) {
      const parent = (i - 1) >> 1;
      if (heap[parent].at <= heap[i].at) break;
      [heap[parent], heap[i]] = [heap[i], heap[parent]];
      i = parent;
    }
  }
  pop() {
    const heap = this.#heap;
    const top = heap[0];
    const last = heap.pop();
    if (heap.length > 0) {
      heap[0] = last;
      for (let i = 0; ; ) {
        const [l, r] = [2 * i + 1, 2 * i + 2];
        let min = i;
        if (l < heap.length && heap[l].at < heap[min].at) min = l;
        if (r < heap.length && heap[r].at < heap[min].at) min = r;
        if (min === i) break;
        [heap[min], heap[i]] = [heap[i], heap[min]];
        i = min;
      }
    }
    return top;
  }
  get size() {
    return this.#heap.length;
  }
}

function simulate(shardCount, checkpoints) {
  const per = VIRTUAL_SHARDS / shardCount;
  const map = parseShardMap(Array.from({ length: shardCount }, (_, i) => `SHARD_${i}:${i * per}-${(i + 1) * per - 1}`).join(","));
  const databases = new Map(map.bindings.map((name) => [name, { freeAt: 0, busy: 0 }]));
  const steps = turnSteps(checkpoints);
  const events = new Events();
  const end = WARMUP_MS + MEASURE_MS;
  let turns = 0;
  const waits = [];
  for (let u = 0; u < USERS; u++) {
    const database = databases.get(map.bindingOf(virtualShardOf(crypto.randomUUID())));
    // Staggered starts, so the streams are not in lockstep.
    events.push({ at: Math.random() * STREAM_MS, user: { database, step: 0, turnStart: 0, firstWait: 0 } });
  }
  while (events.size > 0) {
    const { at, user } = events.pop();
    if (at > end) break;
    if (user.step === 0) {
      user.turnStart = at;
    }
    const step = steps[user.step];
    let done;
    if (step.kind === "wait") {
      done = at + step.ms;
    } else {
      const service = step.kind === "read" ? READ_MS : WRITE_MS;
      const start = Math.max(at, user.database.freeAt);
      done = start + service;
      user.database.freeAt = done;
      user.database.busy += Math.max(0, Math.min(done, end) - Math.max(start, WARMUP_MS));
    }
    // The wait before the model is called: admission and accept.
    if (user.step === 2 && at >= WARMUP_MS) waits.push(done - user.turnStart);
    user.step++;
    if (user.step === steps.length) {
      if (done >= WARMUP_MS && done <= end) turns++;
      user.step = 0;
    }
    events.push({ at: done, user });
  }
  waits.sort((a, b) => a - b);
  const utilization = Math.max(...[...databases.values()].map((d) => d.busy / MEASURE_MS));
  return { turnsPerSecond: turns / (MEASURE_MS / 1000), beforeModelP50: waits[Math.floor(waits.length / 2)] ?? NaN, utilization };
}

export function shardSimulation() {
  const rows = [];
  for (const checkpoints of [true, false]) {
    for (const shards of [1, 2, 4, 8]) rows.push({ path: checkpoints ? "old: checkpoint every 2 s" : "now: two writes per turn", shards, ...simulate(shards, checkpoints) });
  }
  const fmt = (n) => (n >= 100 ? n.toFixed(0) : n.toFixed(1));
  return [
    `Model: each D1 database serves one query at a time, ${READ_MS} ms per read, ${WRITE_MS} ms per write batch; ${USERS} users each stream replies back to back (${STREAM_MS / 1000} s per reply); users spread over the shards by the Worker's own virtual-shard hash and SHARD_MAP ranges. ${MEASURE_MS / 1000} s measured after ${WARMUP_MS / 1000} s warm-up. The upper bound with no database limit is ${fmt(USERS / (STREAM_MS / 1000))} turns/s.`,
    "",
    "| write path | shard databases | turns/s | busiest database utilization | admission + accept p50 (ms) |",
    "|---|---:|---:|---:|---:|",
    ...rows.map((r) => `| ${r.path} | ${r.shards} | ${fmt(r.turnsPerSecond)} | ${(r.utilization * 100).toFixed(0)}% | ${fmt(r.beforeModelP50)} |`),
  ].join("\n");
}

if (import.meta.url === `file://${process.argv[1]}`) console.log(shardSimulation());
