/**
 * An AI message's parts on the page: reasoning collapsed above the reply, the reply as Markdown,
 * and each tool call as a collapsible card with its arguments and its output. Tool arguments and
 * outputs are untrusted text: they only ever reach the page as textContent.
 */
import type { Message } from "./api";
import { renderMarkdown } from "./markdown";

export type Part = NonNullable<Message["parts"]>[number];
export type ToolCallPart = Extract<Part, { type: "tool_call" }>;

/** What the user can do about a call that waits for them. */
export interface CallActions {
  approve(call: ToolCallPart): void;
  deny(call: ToolCallPart): void;
}

const STATUS_LABELS: Record<ToolCallPart["status"], string> = {
  running: "running…",
  awaiting_approval: "waiting for your approval",
  awaiting_output: "waiting for this browser",
  completed: "done",
  error: "failed",
  denied: "denied",
};

const el = <K extends keyof HTMLElementTagNameMap>(tag: K, props: Partial<HTMLElementTagNameMap[K]> = {}) => Object.assign(document.createElement(tag), props);

/** Arguments shown as indented JSON when they are JSON, else as they came. */
function prettyArguments(args: string): string {
  try {
    return JSON.stringify(JSON.parse(args || "{}"), null, 2);
  } catch {
    return args;
  }
}

function toolCard(call: ToolCallPart, actions?: CallActions): HTMLElement {
  const card = el("details", { className: `tool-card ${call.status}` });
  card.dataset.toolCallId = call.id;
  const summary = el("summary");
  summary.append(el("span", { className: "tool-name", textContent: call.name }), el("span", { className: "tool-status", textContent: STATUS_LABELS[call.status] }));
  card.append(summary, el("div", { className: "tool-label", textContent: "Arguments" }), el("pre", { className: "tool-arguments", textContent: prettyArguments(call.arguments) }));
  const result = call.status === "completed" ? call.output : call.error;
  if (result !== undefined) card.append(el("div", { className: "tool-label", textContent: call.status === "completed" ? "Output" : "Error" }), el("pre", { className: "tool-output", textContent: result }));
  if (call.status === "awaiting_approval" && actions) {
    card.open = true;
    const approve = el("button", { type: "button", textContent: "Approve", className: "approve" });
    const deny = el("button", { type: "button", textContent: "Deny", className: "deny link" });
    approve.addEventListener("click", () => actions.approve(call));
    deny.addEventListener("click", () => actions.deny(call));
    card.append(el("div", { className: "tool-actions" }), approve, deny);
  }
  return card;
}

/** Renders `parts` into `container`: text parts as Markdown, reasoning collapsed, calls as cards. */
export function renderParts(container: HTMLElement, parts: readonly Part[], actions?: CallActions): void {
  container.replaceChildren();
  for (const part of parts) {
    if (part.type === "text") {
      const text = el("div", { className: "part-text" });
      renderMarkdown(text, part.text);
      container.append(text);
    } else if (part.type === "reasoning") {
      const reasoning = el("details", { className: "reasoning" });
      reasoning.append(el("summary", { textContent: "Reasoning" }), el("div", { className: "reasoning-text", textContent: part.text }));
      container.append(reasoning);
    } else {
      container.append(toolCard(part, actions));
    }
  }
}

/** The parts a stream's frames build, as they arrive: text and reasoning grow their last part, results fill their calls. */
export function applyFrame(parts: Part[], event: string, data: any): void {
  const last = parts.at(-1);
  if (event === "delta" || event === "reasoning") {
    const type = event === "delta" ? "text" : "reasoning";
    if (last?.type === type) last.text += data.content;
    else parts.push({ type, step: 0, text: data.content });
  } else if (event === "tool_call") {
    parts.push({ type: "tool_call", step: 0, id: data.id, name: data.name, arguments: data.arguments, executor: data.executor, status: data.status });
  } else if (event === "tool_result") {
    const call = parts.find((part): part is ToolCallPart => part.type === "tool_call" && part.id === data.id);
    if (call) Object.assign(call, { status: data.status, output: data.output, error: data.error });
  }
}

/** The playground's own client tool: the model may ask this browser for its local time. */
export const BROWSER_TOOLS = [
  {
    name: "browser_local_time",
    description: "The user's local date, time and time zone, read from their browser.",
    parameters: { type: "object", properties: {}, additionalProperties: false },
  },
];

/** Runs a call of one of BROWSER_TOOLS here; null for a tool this page does not have. */
export function runBrowserTool(call: ToolCallPart): string | null {
  if (call.name !== "browser_local_time") return null;
  const now = new Date();
  return JSON.stringify({ local_time: now.toString(), iso: now.toISOString(), time_zone: Intl.DateTimeFormat().resolvedOptions().timeZone });
}
