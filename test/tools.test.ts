import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { callJson, createUser, setObjectEnv, type TestUser } from "./helpers";

/** An env whose MCP_SERVERS is the demo server the test run started (send_email needs approval). */
const toolsEnv = (overrides: Record<string, string> = {}) =>
  ({ ...env, MCP_SERVERS: JSON.stringify([{ name: "demo", url: env.TEST_MCP_URL, require_approval: ["send_email"] }]), ...overrides }) as Env;

async function conversationWithTools(overrides: Record<string, string> = {}): Promise<{ user: TestUser; id: string }> {
  const user = await createUser();
  const { id } = await callJson("/conversations/", { token: user.access, body: {}, status: 201 });
  await setObjectEnv(id, toolsEnv(overrides));
  return { user, id };
}

const send = (user: TestUser, id: string, content: string, extra: object = {}) => callJson(`/conversations/${id}/add_message/`, { token: user.access, body: { content, ...extra } });

describe("server tools", () => {
  it("runs a server tool and answers with its result, in one AI message", async () => {
    const { user, id } = await conversationWithTools();
    const turn = await send(user, id, `[stub: call=demo__add args={"a":2,"b":3}] add them`);
    expect(turn.ai_response).toMatchObject({ status: "Completed", finish_reason: "stop" });
    const [called, text] = turn.ai_message.parts;
    expect(called).toMatchObject({ type: "tool_call", step: 0, name: "demo__add", arguments: `{"a":2,"b":3}`, executor: "server", status: "completed", output: "5" });
    expect(text).toEqual({ type: "text", step: 1, text: "Tool results: demo__add said 5. Done." });
    expect(turn.ai_message.content).toBe(text.text);
  });
});
