import { z } from "@hono/zod-openapi";
import { ApiError } from "../http/errors";
import type { MessagePart } from "../db/schema";
import type { ModelEntry } from "../model/registry";
import { textOf } from "./message-parts";

/* Which tools a turn may use, as the turn routes take it and the engine stores it for a waiting turn. */

export const MAX_CLIENT_TOOLS = 32;
export const MAX_TOOL_SCHEMA_BYTES = 16 * 1024;

const ToolNameSchema = z
  .string()
  .regex(/^[a-zA-Z0-9_-]{1,64}$/, "tool names are 1–64 letters, digits, _ and -")
  .refine((name) => !name.includes("__"), "a double underscore is kept for server tools (<server>__<tool>)");

export const ClientToolSchema = z
  .strictObject({
    name: ToolNameSchema,
    description: z.string().max(4_000).optional(),
    parameters: z
      .record(z.string(), z.unknown())
      .refine((schema) => new TextEncoder().encode(JSON.stringify(schema)).length <= MAX_TOOL_SCHEMA_BYTES, `a tool's schema is at most ${MAX_TOOL_SCHEMA_BYTES} bytes`)
      .openapi({ description: "A JSON Schema of the arguments." }),
  })
  .openapi("ClientTool", { description: "A tool the client runs: the model's call comes back as RequiresAction, the output goes to POST /messages/{id}/tool_outputs/." });

export type ClientTool = z.infer<typeof ClientToolSchema>;

export const ToolChoiceSchema = z
  .union([z.enum(["auto", "none", "required"]), z.strictObject({ name: z.string().min(1).max(200) })])
  .openapi({ description: "`auto` (default), `none`, `required`, or `{name}` to make the model call that tool." });

export type ToolChoice = z.infer<typeof ToolChoiceSchema>;

/** The tool fields of a turn's body. */
export const toolFields = {
  tools: z
    .array(ClientToolSchema)
    .max(MAX_CLIENT_TOOLS)
    .optional()
    .openapi({ description: `Client tools for this turn, at most ${MAX_CLIENT_TOOLS}.` }),
  server_tools: z
    .union([z.literal("all"), z.array(z.string().min(1).max(200)).max(256)])
    .optional()
    .openapi({ description: "The MCP server tools (`<server>__<tool>`, GET /tools/) the model may call: `all` (default), a list, or `[]`." }),
  tool_choice: ToolChoiceSchema.optional(),
};

/** What a turn may use: its client tools, which server tools, and the tool choice. */
export interface ToolSpec {
  client: ClientTool[];
  server: "all" | string[];
  choice: ToolChoice;
}

export const NO_TOOLS_ASKED: ToolSpec = { client: [], server: "all", choice: "auto" };

type ToolFields = { tools?: ClientTool[]; server_tools?: "all" | string[]; tool_choice?: ToolChoice };

/** The spec of a turn's body; duplicate client tool names are a 400. */
export function toolSpecOf({ tools = [], server_tools = "all", tool_choice = "auto" }: ToolFields): ToolSpec {
  const names = new Set<string>();
  for (const tool of tools) {
    if (names.has(tool.name)) throw new ApiError("validation_failed", `Two client tools are named ${tool.name}.`, { details: [{ field: "tools", message: "duplicate name" }] });
    names.add(tool.name);
  }
  return { client: tools, server: server_tools, choice: tool_choice };
}

/** The turn asks for tools in so many words: client tools, named server tools, or a choice that needs one. */
const asksForTools = ({ client, server, choice }: ToolSpec) => client.length > 0 || (server !== "all" && server.length > 0) || choice === "required" || typeof choice === "object";

/**
 * A model without `tools` answers 400 when the turn asks for them; otherwise it is simply
 * offered none (the default `server_tools: "all"` asks for nothing).
 */
export function checkToolsCapability(spec: ToolSpec, model: ModelEntry): void {
  if (asksForTools(spec) && !model.capabilities.tools) {
    throw new ApiError("model_unsupported", `${model.id} cannot call tools.`, { details: { model: model.id, missing: "tools" } });
  }
}

/** The spec with only what the model can use. */
export const usableSpec = (spec: ToolSpec, model: ModelEntry): ToolSpec => (model.capabilities.tools ? spec : { client: [], server: [], choice: "none" });

const ToolCallIdSchema = z.string().min(1).max(200);

export const ToolOutputsBodySchema = z.strictObject({
  outputs: z
    .array(
      z.union([
        z.strictObject({ tool_call_id: ToolCallIdSchema, output: z.unknown().refine((value) => value !== undefined, "required") }),
        z.strictObject({ tool_call_id: ToolCallIdSchema, error: z.string().min(1).max(10_000) }),
      ]),
    )
    .max(64)
    .optional()
    .openapi({ description: "Client tools' outputs (a string, or any JSON, sent to the model as JSON) or errors." }),
  approvals: z
    .array(z.strictObject({ tool_call_id: ToolCallIdSchema, approved: z.boolean(), reason: z.string().max(2_000).optional() }))
    .max(64)
    .optional()
    .openapi({ description: "Approvals of server tool calls awaiting them; a denial goes to the model with its reason." }),
});

export type ToolAnswers = { outputs: ({ toolCallId: string; output: string } | { toolCallId: string; error: string })[]; approvals: { toolCallId: string; approved: boolean; reason?: string }[] };

/** The body as the engine takes it: outputs as text, one answer per call. */
export function toolAnswersOf(body: z.infer<typeof ToolOutputsBodySchema>): ToolAnswers {
  const outputs = (body.outputs ?? []).map((answer) =>
    "error" in answer ? { toolCallId: answer.tool_call_id, error: answer.error } : { toolCallId: answer.tool_call_id, output: typeof answer.output === "string" ? answer.output : JSON.stringify(answer.output) },
  );
  const approvals = (body.approvals ?? []).map(({ tool_call_id, approved, reason }) => ({ toolCallId: tool_call_id, approved, ...(reason ? { reason } : {}) }));
  const ids = [...outputs, ...approvals].map((answer) => answer.toolCallId);
  if (!ids.length) throw new ApiError("validation_failed", "Send at least one output or approval.", { details: [{ field: "outputs", message: "empty" }] });
  if (new Set(ids).size !== ids.length) throw new ApiError("validation_failed", "Each tool call may be answered once.", { details: [{ field: "outputs", message: "duplicate tool_call_id" }] });
  return { outputs, approvals };
}

/**
 * An output as the reply can still hold it: at most `maxOutputBytes`, and never past what the
 * reply's parts may take in all (`maxReplyBytes`, below the row limit of D1 and the objects).
 */
export function fittedOutput(output: string, parts: readonly MessagePart[], { maxOutputBytes, maxReplyBytes }: { maxOutputBytes: number; maxReplyBytes: number }): string {
  // A quarter of the reply stays for the text the model writes after the results.
  const room = Math.floor((maxReplyBytes * 3) / 4) - storedBytes(parts) - PARTS_OVERHEAD_BYTES;
  return cappedOutput(output, Math.min(maxOutputBytes, Math.max(0, room)));
}

/** What a message with these parts stores: the parts as JSON, and their text once more as its content. */
const storedBytes = (parts: readonly MessagePart[]) => utf8.encode(JSON.stringify(parts)).length + utf8.encode(textOf(parts)).length;

/**
 * The most text a reply that may hold tool calls can stream: its text is stored twice (in its
 * parts and as its content), beside everything else its parts hold.
 */
export const textRoom = (parts: readonly MessagePart[], maxReplyBytes: number) =>
  Math.max(0, Math.floor((maxReplyBytes - utf8.encode(JSON.stringify(parts.filter((part) => part.type !== "text"))).length - PARTS_OVERHEAD_BYTES) / 2));

const utf8 = new TextEncoder();

/** Room kept for the JSON around a part yet to come (a result's note, the next text part's fields). */
const PARTS_OVERHEAD_BYTES = 1024;

/** An output cut to `maxBytes` of UTF-8, with a note saying so. */
function cappedOutput(output: string, maxBytes: number): string {
  const bytes = new TextEncoder().encode(output);
  if (bytes.length <= maxBytes) return output;
  const kept = new TextDecoder().decode(bytes.subarray(0, maxBytes)).replace(/\uFFFD$/, "");
  return `${kept}\n[output cut: ${bytes.length} bytes, the first ${maxBytes} kept]`;
}

/**
 * Named server tools and a named tool choice must exist: a 400 names the unknown ones. Lists the
 * servers' tools (cached per isolate) only when the spec names any.
 */
export async function checkToolNames(spec: ToolSpec, listServerToolNames: () => Promise<string[]>): Promise<void> {
  const named = [...(spec.server === "all" ? [] : spec.server), ...(typeof spec.choice === "object" ? [spec.choice.name] : [])];
  const needsList = named.some((name) => !spec.client.some((tool) => tool.name === name));
  if (!needsList) return;
  const known = new Set([...(await listServerToolNames()), ...spec.client.map((tool) => tool.name)]);
  const unknown = named.filter((name) => !known.has(name));
  if (unknown.length) {
    throw new ApiError("validation_failed", `No tool named ${unknown.join(", ")} (GET /tools/ lists the server tools).`, { details: [{ field: "server_tools", message: "unknown tool" }] });
  }
}
