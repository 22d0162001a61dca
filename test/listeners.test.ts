import { expect, it, vi } from "vitest";
import { Heartbeat, ListenerSet } from "../src/conversation/listeners";

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

it("sends a comment heartbeat every 15 s while someone listens, and stops when no one does", async () => {
  vi.useFakeTimers();
  try {
    const listeners = new ListenerSet();
    const reader = listeners.add([]).getReader();
    const heartbeat = new Heartbeat(() => [listeners]);
    heartbeat.ensureRunning();
    await vi.advanceTimersByTimeAsync(15_000);
    expect(new TextDecoder().decode((await reader.read()).value)).toBe(": ping\n\n");
    listeners.close(new TextEncoder().encode("id: x:end\nevent: done\ndata: {}\n\n"));
    await vi.advanceTimersByTimeAsync(15_000);
    expect(vi.getTimerCount()).toBe(0);
  } finally {
    vi.useRealTimers();
  }
});
