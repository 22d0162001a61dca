import { type Frame, readFrames } from "../playground/sse";

export { type Frame, readFrames };

export async function collectFrames(response: Response): Promise<Frame[]> {
  const frames: Frame[] = [];
  for await (const frame of readFrames(response.body!)) frames.push(frame);
  return frames;
}

/** The first `count` frames of a stream; reading stops there (the reply goes on without this reader). */
export async function firstFrames(response: Response, count: number): Promise<Frame[]> {
  const frames: Frame[] = [];
  for await (const frame of readFrames(response.body!)) {
    frames.push(frame);
    if (frames.length === count) break;
  }
  return frames;
}

export const deltaText = (frames: Frame[]) =>
  frames
    .filter((f) => f.event === "delta")
    .map((f) => f.data.content)
    .join("");
