import type { MessagePart } from "../db/schema";
import type { ChatMessage } from "../model/model";
import { callsOf, resultForModel, stepsOf } from "../rules/message-parts";

/* An AI message with tool calls as the chat-completions history holds it, and what that costs in the prompt. */

/** The note that stands in for an old tool output when the window is short of room. */
export const omittedOutput = (tokens: number) => `[output omitted: ${tokens} tokens]`;

/**
 * Per step: an assistant message with the step's text and calls, then one `tool` message per
 * call with its result. Reasoning is never sent back. With `shorten`, every result stands as
 * its size only: a call always keeps a result, so the history never holds one without it.
 */
export function replyMessages(parts: readonly MessagePart[], estimate: (text: string) => number, shorten = false): ChatMessage[] {
  const messages: ChatMessage[] = [];
  for (let step = 0; step < stepsOf(parts); step++) {
    const text = parts.map((part) => (part.type === "text" && part.step === step ? part.text : "")).join("");
    const calls = callsOf(parts, step);
    if (!text && !calls.length) continue;
    messages.push({ role: "assistant", content: text, ...(calls.length ? { toolCalls: calls.map(({ id, name, arguments: args }) => ({ id, name, arguments: args })) } : {}) });
    for (const call of calls) {
      const result = resultForModel(call);
      messages.push({ role: "tool", toolCallId: call.id, content: shorten ? omittedOutput(estimate(result)) : result });
    }
  }
  return messages;
}
