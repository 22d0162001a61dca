// `npm run bench -- --tools`: turns whose first step calls one server tool on a local MCP server
// (scripts/mcp-demo.mjs, answering at once), then answer in text, beside turns of one step, under
// wrangler dev with the stand-in model sending its tokens without delay. Reports the time from the
// tool's result to the next step's first token against a single-step turn's time to first token:
// the step after a tool needs no request, no Worker and no D1 round trip, so it should cost no more.
import os from "node:os";
import { startMcpDemo } from "../scripts/mcp-demo.mjs";
import { percentiles, readSse, signedInUsers, requestJson } from "./load.mjs";
import { startApi, stopAll } from "./processes.mjs";

const PORT = 8816;
const API = `http://127.0.0.1:${PORT}`;

/** One streamed turn: when each frame kind first arrived, from the request's start. */
async function timedTurn(token, conversationId, content) {
  const t0 = performance.now();
  const response = await fetch(`${API}/conversations/${conversationId}/add_message/`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "text/event-stream", Authorization: `Bearer ${token}` },
    body: JSON.stringify({ content }),
  });
  if (response.status !== 200) throw new Error(`HTTP ${response.status} ${await response.text()}`);
  const at = {};
  let outcome = "no final frame";
  await readSse(response, (event, data, time) => {
    at[event] ??= time - t0;
    if (event === "done" || event === "error") outcome = event === "done" ? JSON.parse(data).ai_response.status : `error: ${JSON.parse(data).code}`;
  });
  if (outcome !== "Completed") throw new Error(`turn ended ${outcome}`);
  return at;
}

export async function toolsBench({ turns = 30 }) {
  const mcp = await startMcpDemo(0);
  const servers = [{ name: "demo", url: `http://127.0.0.1:${mcp.address().port}/mcp` }];
  const { cleanup } = await startApi({ port: PORT, vars: { OPENAI_API_KEY: "", OFFLINE_MODEL_TOKEN_DELAY_MS: "0", MCP_SERVERS: `'${JSON.stringify(servers)}'` } });
  try {
    const [token] = await signedInUsers(API, 1, "tools", 31);
    const { id } = await requestJson(API, "/conversations/", { token, body: { title: "tools bench" } });
    const single = [];
    const afterTool = [];
    const toolCall = [];
    // Warm-up: isolates, the MCP session and tool list, SDK clients.
    for (let i = 0; i < 3; i++) await timedTurn(token, id, `[stub: call=demo__echo args={"text":"warm"} tokens=3] warm ${i}`);
    for (let i = 0; i < turns; i++) {
      // Alternating, so both kinds see the same conversation length and machine state.
      const plain = await timedTurn(token, id, `[stub: tokens=3] plain ${i}`);
      single.push(plain.delta);
      const tool = await timedTurn(token, id, `[stub: call=demo__echo args={"text":"t${i}"} tokens=3] tool ${i}`);
      afterTool.push(tool.delta - tool.tool_result);
      toolCall.push(tool.tool_result - tool.tool_call);
    }
    const [s, a, c] = [percentiles(single), percentiles(afterTool), percentiles(toolCall)];
    const fmt = (ms) => `${ms.toFixed(1)} ms`;
    return [
      `## Tools: the step after a server tool (${new Date().toISOString().slice(0, 10)})`,
      "",
      `Command: \`npm run bench -- --tools --turns=${turns}\`. Machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? "cpu"}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}.`,
      "wrangler dev, the stand-in model with no token delay, MCP_SERVERS = the demo server on localhost (scripts/mcp-demo.mjs); turns alternate between one step and a tool call then text.",
      "",
      "| measure | p50 | p99 |",
      "|---|---|---|",
      `| single-step turn: request → first token (the floor) | ${fmt(s.p50)} | ${fmt(s.p99)} |`,
      `| tool turn: the tool's result → the next step's first token | ${fmt(a.p50)} | ${fmt(a.p99)} |`,
      `| tool turn: the call's frame → its result (the MCP round trip) | ${fmt(c.p50)} | ${fmt(c.p99)} |`,
      "",
      `The step after a tool takes ${fmt(a.p50 - s.p50)} more than a single-step turn's first token at p50 (${(a.p50 / s.p50).toFixed(2)}×; target: at most 10 ms more).`,
    ].join("\n");
  } finally {
    cleanup();
    stopAll();
    mcp.closeAllConnections();
    mcp.close();
  }
}
