import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { createApp } from "../src/app";
import { call, callJson, createUser, expectError, heldSlots, rowsInShards, setObjectEnv, type TestUser, eventually } from "./helpers";
import { collectFrames, deltaText } from "./sse";

/** An env whose MCP_SERVERS is the demo server the test run started (send_email needs approval). */
const toolsEnv = (overrides: Record<string, string> = {}) =>
  ({ ...env, MCP_SERVERS: JSON.stringify([{ name: "demo", url: env.TEST_MCP_URL, require_approval: ["send_email"] }]), ...overrides }) as Env;

async function conversationWithTools(overrides: Record<string, string> = {}): Promise<{ user: TestUser; id: string }> {
  const user = await createUser();
  const { id } = await callJson("/conversations/", { token: user.access, body: {}, status: 201 });
  await setObjectEnv(id, toolsEnv(overrides));
  return { user, id };
}

const send = (user: TestUser, id: string, content: string, extra: object = {}, status = 201) =>
  callJson(`/conversations/${id}/add_message/`, { token: user.access, body: { content, ...extra }, status });

const answer = (user: TestUser, aiMessageId: string, body: object, headers: Record<string, string> = {}) =>
  call(`/messages/${aiMessageId}/tool_outputs/`, { token: user.access, body, headers });

const WEATHER = { name: "get_weather", description: "The weather in a city.", parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] } };
const CLOCK = { name: "local_time", parameters: { type: "object", properties: {} } };

const calls = (turn: any) => turn.ai_message.parts.filter((part: any) => part.type === "tool_call");

describe("server tools", () => {
  it("runs a server tool and answers with its result, in one AI message", async () => {
    const { user, id } = await conversationWithTools();
    const turn = await send(user, id, `[stub: call=demo__add args={"a":2,"b":3}] add them`);
    expect(turn.ai_response).toMatchObject({ status: "Completed", finish_reason: "stop" });
    const [called, text] = turn.ai_message.parts;
    expect(called).toMatchObject({ type: "tool_call", step: 0, name: "demo__add", arguments: `{"a":2,"b":3}`, executor: "server", status: "completed", output: "5" });
    expect(text).toEqual({ type: "text", step: 1, text: "Tool results: demo__add said 5. Done." });
    expect(turn.ai_message.content).toBe(text.text);
    // One AI message in the conversation, with its parts in D1 once drained.
    const listed = await eventually(
      () => callJson(`/conversations/${id}/messages/`, { token: user.access }),
      (page) => page.results.length === 2 && page.results[1].parts.length === 2,
    );
    expect(listed.results[1].parts).toEqual(turn.ai_message.parts);
    const [row] = await eventually(() => rowsInShards<{ parts: string }>("SELECT parts FROM messages WHERE id = ?", turn.ai_message.id), (rows) => rows[0]?.parts != null);
    expect(JSON.parse(row!.parts)).toEqual(turn.ai_message.parts);
  });

  it("runs parallel calls concurrently and gives the model every result in call order", async () => {
    const { user, id } = await conversationWithTools();
    const started = Date.now();
    const turn = await send(user, id, `[stub: call=demo__sleep args={"ms":400} call=demo__sleep args={"ms":400} call=demo__echo args={"text":"hi"}] go`);
    expect(Date.now() - started).toBeLessThan(1_200);
    expect(calls(turn).map((c: any) => [c.status, c.output])).toEqual([
      ["completed", "slept 400 ms"],
      ["completed", "slept 400 ms"],
      ["completed", "hi"],
    ]);
    expect(turn.ai_message.content).toBe("Tool results: demo__sleep said slept 400 ms; demo__sleep said slept 400 ms; demo__echo said hi. Done.");
  });

  it("feeds bad arguments, tool errors, unknown tools and timeouts back to the model without failing the turn", async () => {
    const { user, id } = await conversationWithTools({ TOOL_TIMEOUT_MS: "300" });
    const turn = await send(
      user,
      id,
      `[stub: call=demo__add args={"a":"two"} call=demo__add args={nope} call=demo__fail args={"message":"boom"} call=demo__nothing call=demo__sleep args={"ms":5000}] go`,
    );
    expect(turn.ai_response.status).toBe("Completed");
    const [badSchema, notJson, failed, unknown, slow] = calls(turn);
    expect(badSchema).toMatchObject({ status: "error", error: expect.stringMatching(/do not match the tool's schema/) });
    expect(notJson).toMatchObject({ status: "error", error: "The arguments are not valid JSON." });
    expect(failed).toMatchObject({ status: "error", error: "boom" });
    expect(unknown).toMatchObject({ status: "error", error: "There is no tool named demo__nothing." });
    expect(slow).toMatchObject({ status: "error", error: "The tool did not answer within 0.3 s." });
    expect(turn.ai_message.content).toContain("demo__fail said Error: boom");
  });

  it("a server that hangs holds a turn's first token 5 s at most, once: then it is left out for 30 s", async () => {
    const { user, id } = await conversationWithTools({ MCP_SERVERS: JSON.stringify([{ name: "hung", url: env.TEST_MCP_URL.replace(/\/mcp$/, "/hang") }]) });
    let started = Date.now();
    const first = await send(user, id, "[stub: tokens=2] hello");
    expect(first.ai_response.status).toBe("Completed");
    expect(Date.now() - started).toBeLessThan(7_000);
    started = Date.now();
    await send(user, id, "[stub: tokens=2] again");
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it("cuts a long output at MAX_TOOL_OUTPUT_BYTES with a note", async () => {
    const { user, id } = await conversationWithTools({ MAX_TOOL_OUTPUT_BYTES: "100" });
    const turn = await send(user, id, `[stub: call=demo__lorem args={"bytes":5000}] go`);
    expect(calls(turn)[0].output).toBe(`${"lorem ipsum ".repeat(9).slice(0, 100)}\n[output cut: 5000 bytes, the first 100 kept]`);
  });

  it("fits parallel outputs and the text after them into MAX_REPLY_BYTES, so the reply can always be stored", async () => {
    const { user, id } = await conversationWithTools({ MAX_REPLY_BYTES: "6000" });
    const turn = await send(user, id, `[stub: call=demo__lorem args={"bytes":3000} call=demo__lorem args={"bytes":3000} call=demo__lorem args={"bytes":3000}] go`);
    expect(turn.ai_response.status).toBe("Completed");
    const stored = new TextEncoder().encode(JSON.stringify(turn.ai_message.parts) + turn.ai_message.content).length;
    expect(stored).toBeLessThanOrEqual(6000);
    const outputs = calls(turn).map((c: any) => c.output);
    expect(outputs[0]).toHaveLength(3000);
    expect(outputs[2]).toMatch(/\[output cut: 3000 bytes, the first \d+ kept\]$/);
    expect(turn.ai_response.finish_reason).toBe("length");
  });

  it("stops at MAX_TOOL_STEPS: the last step is sent with tool_choice none and ends in text", async () => {
    const { user, id } = await conversationWithTools({ MAX_TOOL_STEPS: "3" });
    const turn = await send(user, id, `[stub: call=demo__echo args={"text":"again"} loop=1] keep going`);
    expect(calls(turn).map((c: any) => c.step)).toEqual([0, 1]);
    expect(turn.ai_message.parts.at(-1)).toMatchObject({ type: "text", step: 2 });
    expect(turn.ai_response.status).toBe("Completed");
  });

  it("offers only the server tools asked for, and honours tool_choice", async () => {
    const { user, id } = await conversationWithTools();
    const none = await send(user, id, `[stub: call=demo__add args={"a":1,"b":1}] no tools`, { server_tools: [] });
    expect(calls(none)).toEqual([]);
    expect(none.ai_message.content).toContain("You said");
    // Through a Worker that knows the server too: a named tool is checked to exist before the turn.
    const forcedResponse = await createApp().request(
      `/conversations/${id}/add_message/`,
      { method: "POST", headers: { Authorization: `Bearer ${user.access}`, "Content-Type": "application/json" }, body: JSON.stringify({ content: "what time is it", tool_choice: { name: "demo__utc_time" } }) },
      toolsEnv(),
    );
    const forced = await forcedResponse.json<any>();
    expect(forcedResponse.status, JSON.stringify(forced)).toBe(201);
    expect(calls(forced)[0]).toMatchObject({ name: "demo__utc_time", status: "completed", output: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) });
    const off = await send(user, id, `[stub: call=demo__add args={"a":1,"b":1}] no calls`, { tool_choice: "none" });
    expect(calls(off)).toEqual([]);
  });

  it("streams tool_call and tool_result frames, and resumes exactly from any of them", async () => {
    const { user, id } = await conversationWithTools();
    const response = await call(`/conversations/${id}/add_message/?stream=true`, { token: user.access, body: { content: `[stub: call=demo__add args={"a":1,"b":2} call=demo__echo args={"text":"x"} reasoning=3] go` } });
    const frames = await collectFrames(response);
    // The directive holds for both steps: each reasons first.
    const reasoning = ["reasoning", "reasoning", "reasoning"];
    expect(frames.map((f) => f.event)).toEqual(["message", ...reasoning, "tool_call", "tool_call", "tool_result", "tool_result", ...reasoning, ...frames.slice(11, -1).map(() => "delta"), "done"]);
    expect(frames[4]!.data).toMatchObject({ name: "demo__add", arguments: `{"a":1,"b":2}`, executor: "server", status: "running" });
    expect(frames[6]!.data).toMatchObject({ id: frames[4]!.data.id, status: "completed", output: "3" });
    expect(frames.at(-1)!.data.ai_message.parts.map((p: any) => p.type)).toEqual(["reasoning", "tool_call", "tool_call", "reasoning", "text"]);
    const said = (list: typeof frames, event: string) => list.filter((f) => f.event === event).map((f) => f.data.content).join("");
    // Every frame id is a point to resume from: what follows it is exactly the rest (stored text
    // comes back in fewer, larger frames: compare what they say, and the other frames one by one).
    for (let i = 0; i < frames.length - 1; i++) {
      const resumed = await collectFrames(await call(`/conversations/${id}/stream/`, { token: user.access, headers: { "Last-Event-ID": frames[i]!.id! } }));
      const rest = frames.slice(i + 1);
      // A call's frame from the store says where it stands now (completed), live it said running.
      const tools = (list: typeof frames) => list.filter((f) => f.event.startsWith("tool_")).map((f) => [f.id, f.event, f.data.id, f.data.output]);
      expect(tools(resumed), `after ${frames[i]!.id}`).toEqual(tools(rest));
      expect(said(resumed, "reasoning")).toBe(said(rest, "reasoning"));
      expect(deltaText(resumed)).toBe(deltaText(rest));
      expect(resumed.at(-1)!.event).toBe("done");
    }
  });
});

describe("client tools", () => {
  it("waits in RequiresAction for the client's output, holding no slot, then goes on in the same AI message", async () => {
    const { user, id } = await conversationWithTools();
    const waiting = await send(user, id, `[stub: call=get_weather args={"city":"Oslo"}] weather?`, { tools: [WEATHER] });
    expect(waiting.ai_response).toMatchObject({ status: "RequiresAction", finish_reason: "tool_calls", completed_at: null });
    const [pending] = calls(waiting);
    expect(pending).toMatchObject({ name: "get_weather", executor: "client", status: "awaiting_output", arguments: `{"city":"Oslo"}` });
    expect(await heldSlots(user.id)).toBe(0);

    const response = await answer(user, waiting.ai_message.id, { outputs: [{ tool_call_id: pending.id, output: { temperature: 21 } }] });
    const done = await response.json<any>();
    expect(response.status, JSON.stringify(done)).toBe(201);
    expect(done.ai_message.id).toBe(waiting.ai_message.id);
    expect(done.ai_response).toMatchObject({ id: waiting.ai_response.id, status: "Completed" });
    expect(done.ai_message.content).toBe(`Tool results: get_weather said {"temperature":21}. Done.`);
    const messages = await callJson(`/conversations/${id}/messages/`, { token: user.access });
    expect(messages.count).toBe(2);
  });

  it("stores a partial answer and says what still waits; a call not waiting is a 409, another user's message a 404", async () => {
    const { user, id } = await conversationWithTools();
    const waiting = await send(user, id, `[stub: call=get_weather args={"city":"Oslo"} call=local_time] two`, { tools: [WEATHER, CLOCK] });
    const [weather, clock] = calls(waiting);
    const partial = await answer(user, waiting.ai_message.id, { outputs: [{ tool_call_id: weather.id, output: "sunny" }] });
    const body = await partial.json<any>();
    expect(partial.status).toBe(200);
    expect(body.pending).toEqual([clock.id]);
    expect(body.ai_response.status).toBe("RequiresAction");
    await expectError(await answer(user, waiting.ai_message.id, { outputs: [{ tool_call_id: weather.id, output: "again" }] }), 409, "conflict");
    await expectError(await answer(user, waiting.ai_message.id, { outputs: [{ tool_call_id: "call_nope", output: "x" }] }), 409, "conflict");
    const stranger = await createUser();
    await expectError(await answer(stranger, waiting.ai_message.id, { outputs: [{ tool_call_id: clock.id, output: "x" }] }), 404, "not_found");
    const done = await (await answer(user, waiting.ai_message.id, { outputs: [{ tool_call_id: clock.id, error: "no clock here" }] })).json<any>();
    expect(done.ai_message.content).toBe("Tool results: get_weather said sunny; local_time said Error: no clock here. Done.");
  });

  it("continues over SSE from where the waiting run stopped, with the results first", async () => {
    const { user, id } = await conversationWithTools();
    const first = await collectFrames(await call(`/conversations/${id}/add_message/?stream=true`, { token: user.access, body: { content: "[stub: call=local_time] time?", tools: [CLOCK] } }));
    expect(first.map((f) => f.event)).toEqual(["message", "tool_call", "requires_action"]);
    expect(first.at(-1)!.data.ai_response.status).toBe("RequiresAction");
    const callId = first[1]!.data.id;
    const aiMessageId = first[0]!.data.ai_message.id;
    const rest = await collectFrames(await call(`/messages/${aiMessageId}/tool_outputs/?stream=true`, { token: user.access, body: { outputs: [{ tool_call_id: callId, output: "12:00" }] } }));
    expect(rest[0]).toMatchObject({ event: "tool_result", id: `${aiMessageId}:2`, data: { id: callId, status: "completed", output: "12:00" } });
    expect(deltaText(rest)).toBe("Tool results: local_time said 12:00. Done.");
    expect(rest.at(-1)!.event).toBe("done");
  });

  it("a new send closes a waiting turn: its calls get 'not answered' and the history stays whole", async () => {
    const { user, id } = await conversationWithTools();
    const waiting = await send(user, id, "[stub: call=local_time] time?", { tools: [CLOCK] });
    const next = await send(user, id, "[stub: echo=history] never mind");
    expect(next.ai_message.content).toBe(
      ["user: [stub: call=local_time] time?", "assistant: (12 chars)", "tool: Error: not answered", "user: [stub: echo=history] never mind"].join("\n"),
    );
    const listed = await callJson(`/conversations/${id}/messages/`, { token: user.access });
    const closed = listed.results.find((m: any) => m.id === waiting.ai_message.id);
    expect(closed.parts[0]).toMatchObject({ status: "error", error: "not answered" });
    await expectError(await answer(user, waiting.ai_message.id, { outputs: [{ tool_call_id: calls(waiting)[0].id, output: "late" }] }), 409, "conflict");
  });

  it("goes on with the model the turn asked for, not the name the upstream answered with", async () => {
    const user = await createUser();
    const waiting = await callJson("/start_conversation/", { token: user.access, body: { content: "[stub: call=local_time] time?", model_version: "gpt-4o", tools: [CLOCK] }, status: 201 });
    expect(waiting.ai_response.model).toBe("offline-gpt-4o");
    const done = await (await answer(user, waiting.ai_message.id, { outputs: [{ tool_call_id: calls(waiting)[0].id, output: "noon" }] })).json<any>();
    expect(done.ai_response).toMatchObject({ status: "Completed", model: "offline-gpt-4o" });
  });

  it("replays an answer sent again with its Idempotency-Key", async () => {
    const { user, id } = await conversationWithTools();
    const waiting = await send(user, id, "[stub: call=local_time] time?", { tools: [CLOCK] });
    const body = { outputs: [{ tool_call_id: calls(waiting)[0].id, output: "noon" }] };
    const headers = { "Idempotency-Key": crypto.randomUUID() };
    const first = await (await answer(user, waiting.ai_message.id, body, headers)).json<any>();
    const again = await answer(user, waiting.ai_message.id, body, headers);
    expect(again.status).toBe(201);
    expect((await again.json<any>()).ai_message).toEqual(first.ai_message);
  });
});

describe("approvals", () => {
  it("runs an approved call, and tells the model a denied one was denied, with the reason", async () => {
    const { user, id } = await conversationWithTools();
    const waiting = await send(user, id, `[stub: call=demo__send_email args={"to":"a@b.c","subject":"hi"}] mail`);
    const [pending] = calls(waiting);
    expect(pending).toMatchObject({ executor: "server", status: "awaiting_approval" });
    expect(waiting.ai_response.status).toBe("RequiresAction");
    await expectError(await answer(user, waiting.ai_message.id, { outputs: [{ tool_call_id: pending.id, output: "x" }] }), 409, "conflict");
    const approved = await (await answer(user, waiting.ai_message.id, { approvals: [{ tool_call_id: pending.id, approved: true }] })).json<any>();
    expect(calls(approved)[0]).toMatchObject({ status: "completed", output: `demo: an email "hi" to a@b.c would have been sent` });

    const again = await send(user, id, `[stub: call=demo__send_email args={"to":"a@b.c","subject":"no"}] mail`);
    const denied = await (await answer(user, again.ai_message.id, { approvals: [{ tool_call_id: calls(again)[0].id, approved: false, reason: "not now" }] })).json<any>();
    expect(calls(denied)[0]).toMatchObject({ status: "denied", error: "not now" });
    expect(denied.ai_message.content).toBe("Tool results: demo__send_email said The user denied this tool call. Reason: not now. Done.");
  });
});

describe("the window with tools", () => {
  it("leaves room for the tools' definitions: a turn offered a large tool gets less history", async () => {
    const user = await createUser();
    const { id } = await callJson("/conversations/", { token: user.access, body: { model_version: "small-window" }, status: 201 });
    for (let i = 0; i < 6; i++) await send(user, id, `[stub: tokens=2] ${"history ".repeat(60)} ${i}`);
    const plain = await send(user, id, "[stub: tokens=2] without tools");
    const big = { name: "big_tool", description: "d".repeat(1_500), parameters: { type: "object", properties: {} } };
    const withTool = await send(user, id, "[stub: tokens=2] with tools", { tools: [big] });
    expect(plain.ai_response.context.messages).toBeGreaterThan(withTool.ai_response.context.messages);
  });
});

describe("reasoning", () => {
  it("streams and stores reasoning parts, records reasoning_tokens, and never sends reasoning back", async () => {
    const { user, id } = await conversationWithTools();
    const turn = await send(user, id, "[stub: reasoning=4] think first");
    expect(turn.ai_message.parts[0]).toEqual({ type: "reasoning", step: 0, text: "r1 r2 r3 r4" });
    expect(turn.ai_response.usage.reasoning_tokens).toBe(4);
    expect(turn.ai_message.content).not.toContain("r1");
    const history = await send(user, id, "[stub: echo=history] again");
    expect(history.ai_message.content).not.toContain("r1 r2");
    // OpenRouter and Ollama name the field `reasoning`.
    const other = await send(user, id, "[stub: reasoning=2 reasoning_field=reasoning] think");
    expect(other.ai_message.parts[0]).toEqual({ type: "reasoning", step: 0, text: "r1 r2" });
  });
});

describe("what a turn may ask for", () => {
  it("refuses bad tool declarations with 400 and nothing stored", async () => {
    const { user, id } = await conversationWithTools();
    const bad = [
      { tools: [{ name: "has space", parameters: {} }] },
      { tools: [{ name: "a__b", parameters: {} }] },
      { tools: [WEATHER, WEATHER] },
      { tools: Array.from({ length: 33 }, (_, i) => ({ name: `t${i}`, parameters: {} })) },
      { tools: [{ name: "big", parameters: { description: "x".repeat(17_000) } }] },
      { tool_choice: "sometimes" },
      { server_tools: "some" },
    ];
    for (const extra of bad) await expectError(await call(`/conversations/${id}/add_message/`, { token: user.access, body: { content: "hi", ...extra } }), 400);
    expect((await callJson(`/conversations/${id}/messages/`, { token: user.access })).count).toBe(0);
  });

  it("names unknown server tools with a 400", async () => {
    const user = await createUser();
    const response = await createApp().request(
      "/start_conversation/",
      { method: "POST", headers: { Authorization: `Bearer ${user.access}`, "Content-Type": "application/json" }, body: JSON.stringify({ content: "hi", server_tools: ["demo__add", "demo__nope"] }) },
      toolsEnv(),
    );
    const unknown = await expectError(response, 400, "validation_failed");
    expect(unknown.message).toBe("No tool named demo__nope (GET /tools/ lists the server tools).");
  });

  it("a model without tools answers model_unsupported when tools are asked for, and is simply offered none otherwise", async () => {
    const { user, id } = await conversationWithTools({
      PROVIDERS: JSON.stringify({ local: { base_url: "stand-in" } }),
      MODELS: JSON.stringify([{ id: "gpt-4", providers: ["local"], context_window: 8192, max_output_tokens: 1024, tools: false }]),
    });
    const unsupported = await expectError(await call(`/conversations/${id}/add_message/`, { token: user.access, body: { content: "hi", tools: [WEATHER] } }), 400, "model_unsupported");
    expect(unsupported.details).toEqual({ model: "gpt-4", missing: "tools" });
    const plain = await send(user, id, `[stub: call=demo__add args={"a":1,"b":1}] hi`);
    expect(calls(plain)).toEqual([]);
  });

  it("GET /tools/ lists the server tools with their schemas and approvals, and names a server it cannot reach", async () => {
    const app = createApp();
    const user = await createUser();
    const workerEnv = { ...toolsEnv(), MCP_SERVERS: JSON.stringify([{ name: "demo", url: env.TEST_MCP_URL, require_approval: ["send_email"] }, { name: "gone", url: "http://127.0.0.1:9/mcp" }]) } as Env;
    const response = await app.request("/tools/", { headers: { Authorization: `Bearer ${user.access}` } }, workerEnv);
    const body = await response.json<any>();
    expect(response.status).toBe(200);
    expect(body.unavailable_servers).toEqual(["gone"]);
    expect(body.tools.find((t: any) => t.name === "demo__add")).toMatchObject({ server: "demo", requires_approval: false, parameters: { type: "object", required: ["a", "b"] } });
    expect(body.tools.find((t: any) => t.name === "demo__send_email").requires_approval).toBe(true);
    await expectError(await app.request("/tools/", {}, workerEnv), 401);
  });
});

describe("tool calls everywhere else", () => {
  it("export JSON carries parts, Markdown fences calls and outputs, a share shows calls without reasoning, a fork copies parts", async () => {
    const { user, id } = await conversationWithTools();
    const turn = await send(user, id, `[stub: reasoning=2 call=demo__echo args={"text":"\`\`\`fenced\`\`\` and ## heading"}] go`);
    const exported = await eventually(
      () => callJson(`/conversations/${id}/export/`, { token: user.access }),
      (body) => body.messages?.[1]?.parts?.length === 4,
    );
    expect(exported.messages[1].parts).toEqual(turn.ai_message.parts);

    const markdown = await (await call(`/conversations/${id}/export/?format=markdown`, { token: user.access })).text();
    expect(markdown).toContain(['> ```` tool call: demo__echo', '> {"text":"```fenced``` and ## heading"}', "> ````"].join("\n"));
    expect(markdown).toContain(["> ```` tool output", "> ```fenced``` and ## heading", "> ````"].join("\n"));
    expect(markdown).not.toContain("r1 r2");

    const link = await callJson(`/conversations/${id}/share/`, { token: user.access, method: "POST", status: 201 });
    const shared = await callJson("/shared/", { headers: { Accept: "application/json", "X-Share-Token": link.token }, status: 200 });
    expect(shared.messages[1].parts.map((p: any) => p.type)).toEqual(["tool_call", "text"]);
    expect(shared.messages[1].parts[0]).toMatchObject({ name: "demo__echo", output: "```fenced``` and ## heading" });

    const fork = await callJson(`/conversations/${id}/fork/`, { token: user.access, body: { message: turn.ai_message.id }, status: 201 });
    const copied = await callJson(`/conversations/${fork.id}/messages/`, { token: user.access });
    expect(copied.results[1].parts).toEqual(turn.ai_message.parts);
  });

  it("search indexes a reply's text parts only: not its reasoning", async () => {
    const { user, id } = await conversationWithTools();
    const turn = await send(user, id, `[stub: reasoning=1 call=demo__echo args={"text":"zanzibarian"}] go`);
    const hits = await eventually(
      () => callJson(`/search/?q=zanzibarian`, { token: user.access }),
      (body) => body.count === 2,
    );
    // The user's message, and the reply's text that quotes the tool's output.
    expect(hits.results.map((hit: any) => hit.message.id).sort()).toEqual([turn.user_message.id, turn.ai_message.id].sort());
    expect(turn.ai_message.parts[0]).toEqual({ type: "reasoning", step: 0, text: "r1" });
    expect((await callJson(`/search/?q=r1`, { token: user.access })).count).toBe(0);
  });

  it("cancel stops a running server tool: the call and the turn end as cancelled", async () => {
    const { user, id } = await conversationWithTools();
    const pending = call(`/conversations/${id}/add_message/`, { token: user.access, body: { content: `[stub: call=demo__sleep args={"ms":10000}] wait` } });
    await eventually(
      () => callJson(`/conversations/${id}/messages/`, { token: user.access }),
      (page) => page.results[1]?.parts?.[0]?.status === "running",
    );
    const started = Date.now();
    const cancelled = await callJson(`/conversations/${id}/cancel/`, { token: user.access, method: "POST", status: 200 });
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(cancelled.ai_response).toMatchObject({ status: "Error", error_code: "cancelled" });
    const turn = await (await pending).json<any>();
    expect(turn.ai_message.parts[0]).toMatchObject({ status: "error", error: "cancelled" });
  });
});
