import { HEARTBEAT_FRAME, HEARTBEAT_INTERVAL_MS } from "../http/sse";

// Unread bytes a listener may hold for long. A client that is gone (workerd does not tell us) or
// too slow stops reading; dropping it bounds memory, and it can resume with Last-Event-ID. A
// reader that is only briefly over (one huge delta arrived at once) gets LISTENER_GRACE_MS to
// drain, up to MAX_BURST_BYTES.
const MAX_BUFFERED_BYTES = 256 * 1024;
const MAX_BURST_BYTES = 4 * 1024 * 1024;
const LISTENER_GRACE_MS = 5_000;

/** The SSE listeners of one turn. Writes are never awaited: the model loop must not wait on a client. */
export class ListenerSet {
  /** Each listener's writer, with what to do when it ends (closed with the turn, or dropped). */
  #writers = new Map<WritableStreamDefaultWriter<Uint8Array>, (() => void) | undefined>();
  /** Since when each listener that is over MAX_BUFFERED_BYTES has been. */
  #overSince = new Map<WritableStreamDefaultWriter<Uint8Array>, number>();

  get size(): number {
    return this.#writers.size;
  }

  /** A new listener; `initial` frames are queued before anything sent later; `onEnd` runs once it is gone. */
  add(initial: Uint8Array[], onEnd?: () => void): ReadableStream<Uint8Array> {
    // workerd's native byte pipe: cheaper per write than a JavaScript TransformStream.
    const { readable, writable } = new IdentityTransformStream({ highWaterMark: MAX_BUFFERED_BYTES });
    const writer = writable.getWriter();
    this.#writers.set(writer, onEnd);
    for (const frame of initial) this.#write(writer, frame);
    return readable;
  }

  send(frame: Uint8Array): void {
    for (const writer of this.#writers.keys()) this.#write(writer, frame);
  }

  /** Sends the last frame and ends every stream. */
  close(frame: Uint8Array): void {
    for (const [writer, onEnd] of this.#writers) {
      this.#write(writer, frame);
      writer.close().catch(() => undefined);
      onEnd?.();
    }
    this.#writers.clear();
    this.#overSince.clear();
  }

  #write(writer: WritableStreamDefaultWriter<Uint8Array>, frame: Uint8Array): void {
    if (this.#fellBehind(writer)) {
      this.#drop(writer);
      return;
    }
    writer.write(frame).catch(() => this.#drop(writer));
  }

  /** Over the burst limit, or over the buffer limit for longer than the grace period. */
  #fellBehind(writer: WritableStreamDefaultWriter<Uint8Array>): boolean {
    const room = writer.desiredSize;
    if (room === null || room <= MAX_BUFFERED_BYTES - MAX_BURST_BYTES) return true;
    if (room > 0) {
      this.#overSince.delete(writer);
      return false;
    }
    const since = this.#overSince.get(writer) ?? Date.now();
    this.#overSince.set(writer, since);
    return Date.now() - since > LISTENER_GRACE_MS;
  }

  #drop(writer: WritableStreamDefaultWriter<Uint8Array>): void {
    if (!this.#writers.has(writer)) return;
    const onEnd = this.#writers.get(writer);
    this.#writers.delete(writer);
    this.#overSince.delete(writer);
    writer.abort("listener fell behind").catch(() => undefined);
    onEnd?.();
  }
}

/** One heartbeat timer per object, running only while some listener exists. */
export class Heartbeat {
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(private readonly listenerSets: () => Iterable<ListenerSet>) {}

  ensureRunning(): void {
    this.#timer ??= setInterval(() => {
      let listening = false;
      for (const set of this.listenerSets()) {
        if (set.size > 0) {
          set.send(HEARTBEAT_FRAME);
          listening = true;
        }
      }
      if (!listening) this.stop();
    }, HEARTBEAT_INTERVAL_MS);
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
