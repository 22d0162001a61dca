import { describe, expect, it } from "vitest";
import { type BranchMessage, selectContext } from "../src/conversation/context-window";
import type { MessagePart } from "../src/db/schema";

const user = (order: number, content: string): BranchMessage => ({ id: `u${order}`, order, role: "user", content, tokens: null });

/** An AI message that called a tool returning `output`, then answered `text`. */
const withTool = (order: number, output: string, text = "done"): BranchMessage => {
  const parts: MessagePart[] = [
    { type: "tool_call", step: 0, id: `call_${order}`, name: "lookup", arguments: "{}", executor: "client", status: "completed", output },
    { type: "text", step: 1, text },
  ];
  return { id: `a${order}`, order, role: "assistant", content: text, tokens: 5, parts };
};

const toolCallIds = (prompt: ReturnType<typeof selectContext>) => prompt!.prompt.flatMap((m) => m.toolCalls?.map((call) => call.id) ?? []);
const resultIds = (prompt: ReturnType<typeof selectContext>) => prompt!.prompt.filter((m) => m.role === "tool").map((m) => m.toolCallId);

describe("the context window with tool calls", () => {
  it("sends a call as an assistant message with tool_calls, followed by its result", () => {
    const selection = selectContext(null, { messages: [user(1, "q"), withTool(2, "42"), user(3, "and?")], summary: null }, { contextTokens: 8_000, maxOutputTokens: 1_000 });
    expect(selection!.prompt.map((m) => m.role)).toEqual(["user", "assistant", "tool", "assistant", "user"]);
    expect(selection!.prompt[1]).toMatchObject({ content: "", toolCalls: [{ id: "call_2", name: "lookup", arguments: "{}" }] });
    expect(selection!.prompt[2]).toEqual({ role: "tool", toolCallId: "call_2", content: "42" });
  });

  it("shortens old outputs before it drops whole messages, and never sends a call without its result", () => {
    const big = "x".repeat(3_000); // about 1,000 tokens each
    const branch = { messages: [user(1, "a"), withTool(2, big), user(3, "b"), withTool(4, big), user(5, "c"), withTool(6, big), user(7, "now?")], summary: null };
    // Room for one output in full, not three.
    const selection = selectContext(null, branch, { contextTokens: 2_000, maxOutputTokens: 500 })!;
    expect(toolCallIds(selection)).toEqual(resultIds(selection));
    const results = selection.prompt.filter((m) => m.role === "tool").map((m) => m.content);
    expect(results[0]).toBe("[output omitted: 1000 tokens]");
    expect(results.at(-1)).toBe(big);
    // The first messages still fit once their outputs are shortened: nothing was dropped.
    expect(selection.window.firstOrder).toBe(1);
    // With less room, whole (call, result) messages go, oldest first, still never half of one.
    const tight = selectContext(null, branch, { contextTokens: 260, maxOutputTokens: 200 })!;
    expect(tight.window.firstOrder).toBeGreaterThan(1);
    expect(toolCallIds(tight)).toEqual(resultIds(tight));
  });

  it("counts the turn's own calls and results so far, and refuses when they alone do not fit", () => {
    const reply: MessagePart[] = withTool(2, "y".repeat(3_000)).parts!.slice(0, 1);
    const branch = { messages: [user(1, "go")], summary: null };
    expect(selectContext(null, branch, { contextTokens: 8_000, maxOutputTokens: 1_000 }, 1, reply)!.prompt.map((m) => m.role)).toEqual(["user", "assistant", "tool"]);
    expect(selectContext(null, branch, { contextTokens: 900, maxOutputTokens: 100 }, 1, reply)).toBeNull();
  });
});
