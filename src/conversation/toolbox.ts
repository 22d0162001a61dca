import { Validator } from "@cfworker/json-schema";
import type { AppConfig } from "../http/config";
import type { ToolOffer } from "../model/model";
import { callServerTool, listServerTools, type ServerTool } from "../model/tools/mcp-client";
import type { ToolCallPart } from "../rules/message-parts";
import type { ClientTool, ToolSpec } from "../rules/tool-rules";
import type { StreamedCall } from "./live-turn";

type Tool = { name: string; description?: string; parameters: Record<string, unknown> };

// Compiled once per schema object: a turn checks every call of every step against them.
const validators = new WeakMap<object, Validator>();
const validatorFor = (schema: Record<string, unknown>) => {
  let validator = validators.get(schema);
  if (!validator) validators.set(schema, (validator = new Validator(schema, "2020-12", false)));
  return validator;
};

/** Why a call's arguments cannot be used: not JSON, not an object, or not what the tool's schema says. Null when they can. */
function argumentsProblem(tool: Tool, args: string): string | null {
  let value: unknown;
  try {
    value = JSON.parse(args || "{}");
  } catch {
    return "The arguments are not valid JSON.";
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return "The arguments must be a JSON object.";
  const { valid, errors } = validatorFor(tool.parameters).validate(value);
  if (valid) return null;
  const [first] = errors.filter((error) => error.keyword !== "properties" && error.keyword !== "$ref");
  return `The arguments do not match the tool's schema: ${first ? `${first.instanceLocation} ${first.error}` : "invalid"}.`;
}

/**
 * The tools of one run of a turn: the server tools its spec allows (listed from the configured
 * MCP servers, cached per isolate) and its client tools. It offers them to the model, sorts
 * each call the model makes (a server tool runs, or waits for approval; a client tool waits
 * for its output; a bad call is answered with its error at once), and runs server tools.
 */
export class Toolbox {
  private constructor(
    private readonly config: AppConfig,
    private readonly server: ServerTool[],
    private readonly client: ClientTool[],
    private readonly spec: ToolSpec,
  ) {}

  static async open(config: AppConfig, spec: ToolSpec): Promise<Toolbox> {
    const wantsServerTools = spec.server === "all" || spec.server.length > 0;
    const listed = wantsServerTools && config.mcpServers.length ? (await listServerTools(config.mcpServers)).tools : [];
    const server = spec.server === "all" ? listed : listed.filter((tool) => spec.server.includes(tool.name));
    return new Toolbox(config, server, spec.client, spec);
  }

  /** What the model is offered for a step; on the last step (`last`) it may call nothing. */
  offer(last: boolean): ToolOffer | undefined {
    const tools = [...this.server, ...this.client].map(({ name, description, parameters }) => ({ name, description, parameters }));
    if (!tools.length) return undefined;
    return { tools, choice: last ? "none" : this.spec.choice };
  }

  /** A call the model made, with where it stands now. */
  classify({ id, name, arguments: args }: StreamedCall, step: number): ToolCallPart {
    const server = this.server.find((tool) => tool.name === name);
    const tool = server ?? this.client.find((t) => t.name === name);
    const call: ToolCallPart = { type: "tool_call", step, id, name, arguments: args, executor: server ? "server" : "client", status: "running" };
    const problem = tool ? argumentsProblem(tool, args) : `There is no tool named ${name}.`;
    if (problem) return { ...call, status: "error", error: problem };
    if (!server) return { ...call, status: "awaiting_output" };
    return { ...call, status: server.needsApproval ? "awaiting_approval" : "running" };
  }

  /** Runs a server call (its arguments checked): its output (to be fitted to the reply), or its error. */
  async run(call: ToolCallPart, signal: AbortSignal): Promise<Pick<ToolCallPart, "status" | "output" | "error">> {
    const tool = this.server.find((t) => t.name === call.name);
    const server = this.config.mcpServers.find((s) => s.name === tool?.server);
    if (!tool || !server) return { status: "error", error: `The tool ${call.name} is no longer available.` };
    const outcome = await callServerTool(server, tool.tool, JSON.parse(call.arguments || "{}"), this.config.tools.timeoutMs, signal);
    return "output" in outcome ? { status: "completed", output: outcome.output } : { status: "error", error: outcome.error };
  }
}
