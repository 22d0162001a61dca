import { abortAllDurableObjects } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { expect, it } from "vitest";
import { call, callJson, createUser, setObjectEnv } from "./helpers";
import { firstFrames } from "./sse";

// Its own file: aborting every Durable Object would disturb other tests' conversations.

it("a turn waiting for a client tool survives a restart of its object, and goes on when answered", async () => {
  const user = await createUser();
  const clock = { name: "local_time", parameters: { type: "object", properties: {} } };
  const waiting = await callJson("/start_conversation/", { token: user.access, body: { content: "[stub: call=local_time] time?", tools: [clock] }, status: 201 });
  expect(waiting.ai_response.status).toBe("RequiresAction");
  const [pending] = waiting.ai_message.parts;

  await abortAllDurableObjects();

  const done = await callJson(`/messages/${waiting.ai_message.id}/tool_outputs/`, { token: user.access, body: { outputs: [{ tool_call_id: pending.id, output: "09:30" }] }, status: 201 });
  expect(done.ai_message.id).toBe(waiting.ai_message.id);
  expect(done.ai_response).toMatchObject({ status: "Completed", finish_reason: "stop" });
  expect(done.ai_message.content).toBe("Tool results: local_time said 09:30. Done.");
});

it("a restart while a server tool runs marks the call error interrupted and the turn Error interrupted, keeping everything before it", async () => {
  const user = await createUser();
  const { id } = await callJson("/conversations/", { token: user.access, body: {}, status: 201 });
  await setObjectEnv(id, { ...env, MCP_SERVERS: JSON.stringify([{ name: "demo", url: env.TEST_MCP_URL }]) } as Env);
  const response = await call(`/conversations/${id}/add_message/?stream=true`, {
    token: user.access,
    body: { content: `[stub: reasoning=2 call=demo__echo args={"text":"first"} call=demo__sleep args={"ms":3000}] go` },
  });
  // message, two reasoning frames, two calls, the echo's result: the sleep is running.
  const frames = await firstFrames(response, 6);
  expect(frames.map((f) => f.event)).toEqual(["message", "reasoning", "reasoning", "tool_call", "tool_call", "tool_result"]);

  await abortAllDurableObjects();

  const messages = await callJson(`/conversations/${id}/messages/`, { token: user.access });
  const reply = messages.results.find((m: any) => m.sender === "ai");
  expect(reply.parts).toEqual([
    { type: "reasoning", step: 0, text: "r1 r2" },
    expect.objectContaining({ name: "demo__echo", status: "completed", output: "first" }),
    expect.objectContaining({ name: "demo__sleep", status: "error", error: "interrupted" }),
  ]);
  const [user_message] = messages.results;
  expect(user_message.ai_response_status).toBe("Error");
  const next = await callJson(`/conversations/${id}/add_message/`, { token: user.access, body: { content: "[stub: echo=history] still there?" }, status: 201 });
  expect(next.ai_message.content).toContain("tool: Error: interrupted");
});
