import { describe, expect, it } from "vitest";
import { call, createUser } from "./helpers";
import { collectFrames, deltaText, readFrames } from "./sse";

const words = (n: number) => Array.from({ length: n }, (_, i) => `w${i + 1}`).join(" ");

describe("listeners", () => {
  it("a listener joining a 5,000-token reply late gets the backlog as one frame, not dropped for it", async () => {
    const user = await createUser();
    // 5,000 tokens at once, then the stand-in stalls until the idle timeout (1 s in tests) ends the turn.
    const response = await call("/start_conversation/", {
      token: user.access,
      headers: { Accept: "text/event-stream" },
      body: { content: "[stub: tokens=5200 delay=0 hang_after=5000] a very long answer", model_version: "gpt-4.1" },
    });
    const { value: message } = await readFrames(response.body!).next();
    const conversationId = message!.data.conversation.id;
    await new Promise((resolve) => setTimeout(resolve, 700));

    // More than 256 KiB of delta frames were sent by now: replayed one by one they would fill the new listener's buffer.
    const late = await collectFrames(await call(`/conversations/${conversationId}/stream/`, { token: user.access }));
    expect(late[0]!.event).toBe("message");
    expect(late[1]!.event).toBe("delta");
    expect(late[1]!.data.content.split(" ").length).toBeGreaterThan(3_000);
    expect(late.at(-1)).toMatchObject({ event: "error", data: { code: "upstream_timeout" } });
    expect(deltaText(late)).toBe(words(5000));
  });
});
