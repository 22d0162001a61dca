import type { AiResponse, Message } from "./db/schema";
import { conversationObject } from "./engine/stub";

type MessageRow = { message: Message; reply: { status: AiResponse["status"] } | null };

/**
 * A reply's text reaches D1 only when the reply ends (one write per turn, not a checkpoint every
 * few seconds), so the text so far of a Generating reply comes from its conversation's object.
 */
export async function withLiveText<R extends MessageRow>(env: Env, rows: R[]): Promise<R[]> {
  const generating = new Map<string, string[]>();
  for (const { message, reply } of rows) {
    if (reply?.status === "Generating") generating.set(message.conversationId, [...(generating.get(message.conversationId) ?? []), message.id]);
  }
  if (generating.size === 0) return rows;
  const texts: Record<string, string> = Object.assign(
    {},
    ...(await Promise.all([...generating].map(([conversationId, ids]) => conversationObject(env, conversationId).liveText(ids)))),
  );
  return rows.map((row) => (row.message.id in texts ? { ...row, message: { ...row.message, content: texts[row.message.id]! } } : row));
}
