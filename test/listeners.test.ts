import { expect, it, vi } from "vitest";
import { Heartbeat, ListenerSet } from "../src/conversation/listeners";

const frame = (bytes: number) => new Uint8Array(bytes).fill(97);

it("drops a listener that stops reading once 256 KiB stay unread past the grace period, so frames cannot pile up", async () => {
  vi.useFakeTimers({ toFake: ["Date"] });
  try {
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
    // Over the limit, but only just now: it may still catch up.
    expect(listeners.size).toBe(2);
    vi.setSystemTime(Date.now() + 5_001);
    listeners.send(frame(4096));
    expect(listeners.size).toBe(1);
    listeners.close(frame(10));
    await drain;
    expect(received).toBe(101 * 4096 + 10);
    // The stalled listener's stream was aborted, not left holding 400 KiB.
    await expect(stalled.getReader().read()).rejects.toBeDefined();
  } finally {
    vi.useRealTimers();
  }
});

it("keeps a listener that is handed one huge frame at once while it drains, up to the burst limit", async () => {
  const listeners = new ListenerSet();
  const reader = listeners.add([]).getReader();
  const stalled = listeners.add([]);
  let received = 0;
  const drain = (async () => {
    for (let read = await reader.read(); !read.done; read = await reader.read()) received += read.value.byteLength;
  })();
  const tick = () => new Promise((r) => setTimeout(r, 10));
  listeners.send(frame(300 * 1024));
  await tick();
  listeners.send(frame(5));
  // Both are over 256 KiB for a moment, or still: neither is dropped yet.
  expect(listeners.size).toBe(2);
  listeners.send(frame(4 * 1024 * 1024));
  await tick();
  listeners.send(frame(5));
  // The reader drained it; 4 MiB unread is past any grace.
  expect(listeners.size).toBe(1);
  listeners.close(frame(10));
  await drain;
  expect(received).toBe(300 * 1024 + 5 + 4 * 1024 * 1024 + 5 + 10);
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
