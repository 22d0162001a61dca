export interface Frame {
  id?: string;
  event?: string;
  data?: any;
}

/** Parses an SSE body frame by frame as it arrives; comment lines (heartbeats) are skipped. */
export async function* readFrames(body: ReadableStream<Uint8Array>): AsyncGenerator<Frame> {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end: number;
      while ((end = buffer.indexOf("\n\n")) !== -1) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const frame: Frame = {};
        for (const line of block.split("\n")) {
          if (line.startsWith(":")) continue;
          const colon = line.indexOf(":");
          const field = line.slice(0, colon);
          const value = line.slice(colon + 1).replace(/^ /, "");
          if (field === "id") frame.id = value;
          else if (field === "event") frame.event = value;
          else if (field === "data") frame.data = JSON.parse(value);
        }
        if (frame.event) yield frame;
      }
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
}

export async function collectFrames(response: Response): Promise<Frame[]> {
  const frames: Frame[] = [];
  for await (const frame of readFrames(response.body!)) frames.push(frame);
  return frames;
}

export const deltaText = (frames: Frame[]) =>
  frames
    .filter((f) => f.event === "delta")
    .map((f) => f.data.content)
    .join("");
