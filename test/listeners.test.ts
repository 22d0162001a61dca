import { expect, it } from "vitest";
import { ListenerSet } from "../src/engine/listeners";

const frame = (bytes: number) => new Uint8Array(bytes).fill(97);

it("drops a listener that stops reading once 256 KiB are unread, so frames cannot pile up", async () => {
  const listeners = new ListenerSet();
  const stalled = listeners.add([]);
  const reading = listeners.add([]);
  const reader = reading.getReader();
  let received = 0;
  const drain = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      received += value.byteLength;
    }
  })();

  for (let i = 0; i < 100; i++) {
    listeners.send(frame(4096));
    await new Promise((r) => setTimeout(r, 0));
  }
  expect(listeners.size).toBe(1);
  listeners.close(frame(10));
  await drain;
  expect(received).toBe(100 * 4096 + 10);
  // The stalled listener's stream was aborted, not left holding 400 KiB.
  await expect(stalled.getReader().read()).rejects.toBeDefined();
});
