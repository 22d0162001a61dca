import { expect, it } from "vitest";
import { TurnQueue } from "../src/conversation/turn-queue";

it("runs tasks one at a time in enqueue order, and a failure does not stall the rest", async () => {
  const queue = new TurnQueue();
  const events: string[] = [];
  const task = (name: string, ms: number, fail = false) => async () => {
    events.push(`start ${name}`);
    await new Promise((r) => setTimeout(r, ms));
    events.push(`end ${name}`);
    if (fail) throw new Error(name);
    return name;
  };
  const results = await Promise.allSettled([queue.enqueue(task("a", 30)), queue.enqueue(task("b", 5, true)), queue.enqueue(task("c", 1))]);
  expect(events).toEqual(["start a", "end a", "start b", "end b", "start c", "end c"]);
  expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
});
