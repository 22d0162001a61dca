export interface Frame {
  id: string;
  event: string;
  data: any;
}

/** Reads Server-Sent Events from a fetch response (EventSource cannot POST or send a bearer token). */
export async function readFrames(response: Response, onFrame: (frame: Frame) => void): Promise<void> {
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end: number;
    while ((end = buffer.indexOf("\n\n")) !== -1) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const frame: Frame = { id: "", event: "message", data: null };
      let hasData = false;
      for (const line of block.split("\n")) {
        if (line.startsWith("id: ")) frame.id = line.slice(4);
        else if (line.startsWith("event: ")) frame.event = line.slice(7);
        else if (line.startsWith("data: ")) {
          frame.data = JSON.parse(line.slice(6));
          hasData = true;
        }
      }
      if (hasData) onFrame(frame);
    }
  }
}
