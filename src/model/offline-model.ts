/**
 * The offline stand-in: an OpenAI-compatible `/chat/completions` endpoint implemented as a
 * `fetch` function and handed to the real `openai` SDK, so the SDK parses a real
 * chat-completions stream without any network. Used by every provider whose base_url is
 * "stand-in", and by the shorthand configuration whenever OPENAI_API_KEY is empty.
 *
 * Its behaviour can be scripted from the last user message with a directive such as
 * `[stub: tokens=5 delay=20 fail_after=3]` (used by tests, handy with curl). A directive
 * `[stub@name: ...]` applies to the stand-in provider `name` only, after any `[stub: ...]`:
 *   delay=ms        pause between tokens (default: OFFLINE_MODEL_TOKEN_DELAY_MS)
 *   first=ms        pause before the first token
 *   tokens=n        reply with n numbered words instead of the default reply
 *   burst=n         start the reply with one delta of n characters
 *   echo=history    reply with the conversation it was sent, one `role: content` line each
 *                   (assistant content is shortened to its length)
 *   status=code     answer with that HTTP error status instead of a stream
 *   retry_after=s   ... with that Retry-After header
 *   refuse=1        refuse the connection (the SDK's connection error)
 *   first_byte=ms   answer nothing at all for that long (a provider that hangs)
 *   fail_after=n    break the stream after n tokens
 *   malformed_after=n  send a chunk that is not JSON after n tokens
 *   hang_after=n    stop sending (without closing) after n tokens
 *   cut_after=n     end the stream cleanly after n tokens, with no finish reason and no [DONE]
 *   no_finish=1     send every token and [DONE], but no finish reason
 *   empty=1         stream no content at all
 *   context=n       a context window of n tokens instead of the configured one
 *   prompt_factor=n count the prompt n times larger than usual (a provider whose count differs from ours)
 *   reasoning=n     stream n reasoning tokens (`reasoning_content`) before the reply
 *   reasoning_field=reasoning  ... in the `reasoning` field instead (OpenRouter, Ollama)
 *   call=<tool> args=<json>  when offered tools, call that tool (several for parallel calls);
 *                   the arguments are JSON without "]"; after the results it answers quoting them
 *   loop=1          call the same tools again after every result (until tool_choice is "none")
 *
 * Like a real provider it counts the prompt (about 4 UTF-8 bytes a token, plus 4 per message and
 * 3 for the reply), answers HTTP 400 `context_length_exceeded` when prompt + `max_tokens` exceed
 * the model's window (MODEL_CONTEXT_TOKENS), stops at `max_tokens` with `finish_reason: "length"`,
 * and reports usage.
 */

import { imageSize } from "image-size";
import type { ModelBudget } from "../http/config";
import { log } from "../lib/log";

type Part = { type: "text"; text: string } | { type: "image_url"; image_url: { url: string } };

interface ChatMessage {
  role: string;
  content: string | Part[] | null;
  tool_calls?: { id: string; function: { name: string; arguments: string } }[];
  tool_call_id?: string;
}

interface ChatRequest {
  model: string;
  messages: ChatMessage[];
  stream?: boolean;
  max_tokens?: number;
  tools?: { function: { name: string } }[];
  tool_choice?: "auto" | "none" | "required" | { function: { name: string } };
}

type ToolCall = { name: string; arguments: string };

/** A message's text: its text parts, joined (and a tool call's name and arguments, which the prompt counts too). */
const textOf = (message: ChatMessage) =>
  (typeof message.content === "string" ? message.content : (message.content ?? []).map((part) => (part.type === "text" ? part.text : "")).join("\n")) +
  (message.tool_calls ?? []).map((call) => call.function.name + call.function.arguments).join("");

/** What the stand-in sees of the files in a message: "an image, 3×2 PNG, named cat.png", a text file's first line. */
function describeFiles(message: ChatMessage | undefined): string[] {
  if (!message?.content || typeof message.content === "string") return [];
  const parts = message.content;
  return parts.flatMap((part, i) => {
    const name = /^\[(.+)\]$/.exec(i > 0 && parts[i - 1]!.type === "text" ? (parts[i - 1] as { text: string }).text : "")?.[1];
    if (part.type === "image_url") {
      const [, type = "", data = ""] = /^data:image\/(\w+);base64,(.*)$/.exec(part.image_url.url) ?? [];
      const { width, height } = imageSize(Uint8Array.from(atob(data), (c) => c.charCodeAt(0)));
      return [`an image, ${width}×${height} ${type.toUpperCase()}, named ${name}`];
    }
    const file = /^File (.+):\n(.*)/.exec(part.text);
    return file ? [`a text file, ${file[1]}, starting "${file[2]}"`] : [];
  });
}

/** Each image counts as 255 tokens (85, and one 512-pixel tile): enough for the window checks. */
const imageParts = (message: ChatMessage) => (typeof message.content === "string" ? 0 : (message.content ?? []).filter((part) => part.type === "image_url").length);

interface Script {
  delay: number;
  first: number;
  tokens?: number;
  burst?: number;
  echo?: string;
  status?: number;
  retry_after?: number;
  refuse?: number;
  first_byte?: number;
  fail_after?: number;
  malformed_after?: number;
  hang_after?: number;
  cut_after?: number;
  no_finish?: number;
  empty?: number;
  context?: number;
  prompt_factor?: number;
  reasoning?: number;
  reasoningField?: string;
  loop?: number;
  calls: ToolCall[];
}

const encoder = new TextEncoder();
const sleep = (ms: number, signal?: AbortSignal | null) =>
  new Promise<void>((resolve) => {
    if (ms <= 0) return resolve();
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => (clearTimeout(timer), resolve()), { once: true });
  });

const SCRIPT_NUMBERS = new Set(["delay", "first", "tokens", "burst", "status", "retry_after", "refuse", "first_byte", "fail_after", "malformed_after", "hang_after", "cut_after", "no_finish", "empty", "context", "prompt_factor", "reasoning", "loop"]);

function parseScript(messages: ChatMessage[], defaultDelay: number, provider: string): Script {
  const last = messages.findLast((m) => m.role === "user");
  const lastUser = last ? textOf(last) : "";
  const script: Script = { delay: defaultDelay, first: defaultDelay, calls: [] };
  const forAll = /\[stub:([^\]]*)\]/.exec(lastUser)?.[1] ?? "";
  const forThis = [...lastUser.matchAll(/\[stub@([\w.-]+):([^\]]*)\]/g)].filter(([, name]) => name === provider).map(([, , directive]) => directive ?? "");
  for (const directive of [forAll, ...forThis]) {
    for (const [, key, value] of directive.matchAll(/(\w+)=([\w.-]+)/g)) {
      if (key === "echo") script.echo = value;
      else if (key === "reasoning_field") script.reasoningField = value;
      else if (key && SCRIPT_NUMBERS.has(key)) (script as unknown as Record<string, number>)[key] = Number(value);
    }
    for (const [, name, args] of directive.matchAll(/call=([\w-]+)(?:\s+args=(\{.*?\})(?=\s|$))?/g)) script.calls.push({ name: name!, arguments: args ?? "{}" });
  }
  return script;
}

/**
 * The tool calls of this step: the scripted ones when the last message is the user's (or `loop`
 * is set), else the one a `required` or named tool choice forces; none when no tools are offered
 * or the choice is "none".
 */
function toolCallsFor(body: ChatRequest, script: Script): ToolCall[] {
  const choice = body.tool_choice ?? "auto";
  if (!body.tools?.length || choice === "none") return [];
  const afterUser = body.messages.at(-1)?.role === "user";
  if (script.calls.length && (afterUser || script.loop)) return script.calls;
  if (choice === "required") return [{ name: body.tools[0]!.function.name, arguments: "{}" }];
  if (typeof choice === "object") return [{ name: choice.function.name, arguments: "{}" }];
  return [];
}

/** After tool results: a reply quoting each, by the name of the call it answers. */
function quoteResults(messages: ChatMessage[]): string | null {
  if (messages.at(-1)?.role !== "tool") return null;
  const names = new Map(messages.flatMap((m) => m.tool_calls ?? []).map((call) => [call.id, call.function.name]));
  const results = messages.slice(messages.findLastIndex((m) => m.role !== "tool") + 1);
  return `Tool results: ${results.map((m) => `${names.get(m.tool_call_id ?? "") ?? "?"} said ${textOf(m)}`).join("; ")}. Done.`;
}

function replyText(messages: ChatMessage[], script: Script): string {
  if (script.empty) return "";
  if (script.tokens !== undefined) return Array.from({ length: script.tokens }, (_, i) => `w${i + 1}`).join(" ");
  const quoted = quoteResults(messages);
  if (quoted !== null) return quoted;
  if (script.echo === "history") {
    return messages.map((m) => `${m.role}: ${m.role === "assistant" ? `(${textOf(m).length} chars)` : textOf(m)}`).join("\n");
  }
  const last = messages.findLast((m) => m.role === "user");
  const lastUser = last ? (typeof last.content === "string" ? last.content : textOf({ ...last, content: (last.content ?? []).slice(0, 1) })) : "";
  const files = describeFiles(last);
  const said = lastUser.length > 80 ? `${lastUser.slice(0, 80)}…` : lastUser;
  const turn = messages.filter((m) => m.role === "user").length;
  return (
    `Hello! I am the offline stand-in model, answering because no OPENAI_API_KEY is set. ` +
    `You said: "${said}". This is turn ${turn} of our conversation. ` +
    `Set OPENAI_API_KEY and OPENAI_BASE_URL to talk to a real model.` +
    (files.length ? ` With your message I received ${files.join("; ")}.` : "")
  );
}

/** Splits text into word-sized tokens that concatenate back to exactly the text. */
const tokenize = (text: string) => text.match(/\s*\S+/g) ?? [];

/** The stand-in's own token count of a prompt. */
const countPrompt = (messages: ChatMessage[]) => messages.reduce((n, m) => n + Math.ceil(encoder.encode(textOf(m)).length / 4) + 255 * imageParts(m) + 4, 3);

const sseChunk = (data: unknown) => encoder.encode(`data: ${typeof data === "string" ? data : JSON.stringify(data)}\n\n`);

/** The stand-in as provider `provider`: the name `[stub@name: ...]` directives address. */
export function createOfflineModelFetch(provider: string, defaultDelayMs: number, budgetFor: (model: string) => ModelBudget): typeof fetch {
  let announced = false;
  return async (input, init) => {
    if (!announced) {
      announced = true;
      log.warn("using the offline stand-in model", { provider });
    }
    const request = new Request(input, init);
    if (!new URL(request.url).pathname.endsWith("/chat/completions")) {
      return Response.json({ error: { message: "The offline stand-in only serves /chat/completions." } }, { status: 404 });
    }
    const body = (await request.json()) as ChatRequest;
    const script = parseScript(body.messages, defaultDelayMs, provider);
    if (script.refuse) throw new TypeError("fetch failed: connection refused (scripted)");
    if (script.first_byte) await sleep(script.first_byte, request.signal);
    request.signal.throwIfAborted();
    if (script.status) {
      const headers = script.retry_after === undefined ? undefined : { "Retry-After": String(script.retry_after) };
      return Response.json({ error: { message: `Scripted failure ${script.status}`, type: "server_error" } }, { status: script.status, headers });
    }
    const promptTokens = countPrompt(body.messages) * (script.prompt_factor ?? 1);
    const window = script.context ?? budgetFor(body.model).contextTokens;
    if (promptTokens + (body.max_tokens ?? 0) > window) {
      const message =
        `This model's maximum context length is ${window} tokens. However, you requested ${promptTokens + (body.max_tokens ?? 0)} tokens ` +
        `(${promptTokens} in the messages, ${body.max_tokens ?? 0} in the completion). Please reduce the length of the messages or completion.`;
      return Response.json({ error: { message, type: "invalid_request_error", param: "messages", code: "context_length_exceeded" } }, { status: 400 });
    }
    const id = `chatcmpl-offline-${crypto.randomUUID()}`;
    // Reported like a provider's snapshot name, so a stored reply says it came from the stand-in.
    const model = `offline-${body.model}`;
    const created = Math.floor(Date.now() / 1000);
    const calls = toolCallsFor(body, script);
    const fullReply = calls.length ? [] : [...(script.burst ? ["b".repeat(script.burst)] : []), ...tokenize(replyText(body.messages, script))];
    const replyTokens = body.max_tokens === undefined ? fullReply : fullReply.slice(0, body.max_tokens);
    const reasoning = Array.from({ length: script.reasoning ?? 0 }, (_, i) => `${i ? " " : ""}r${i + 1}`);
    const finishReason = calls.length ? "tool_calls" : replyTokens.length < fullReply.length ? "length" : "stop";
    const completionTokens = reasoning.length + replyTokens.length + calls.length;
    const usage = {
      prompt_tokens: promptTokens,
      completion_tokens: completionTokens,
      total_tokens: promptTokens + completionTokens,
      ...(reasoning.length ? { completion_tokens_details: { reasoning_tokens: reasoning.length } } : {}),
    };
    // What streams, delta by delta: reasoning, then the reply or the tool calls (each call's id and name, then its arguments).
    const deltas: object[] = [
      ...reasoning.map((token) => ({ [script.reasoningField ?? "reasoning_content"]: token })),
      ...replyTokens.map((token) => ({ content: token })),
      ...calls.flatMap((call, index) => [
        { tool_calls: [{ index, id: `call_${crypto.randomUUID().slice(0, 8)}`, type: "function", function: { name: call.name, arguments: "" } }] },
        { tool_calls: [{ index, function: { arguments: call.arguments } }] },
      ]),
    ];
    const chunk = (delta: object, finish: string | null = null) => ({
      id,
      object: "chat.completion.chunk",
      created,
      model,
      choices: [{ index: 0, delta, finish_reason: finish }],
    });

    if (!body.stream) {
      const message = { role: "assistant", content: replyTokens.join("") };
      return Response.json({ id, object: "chat.completion", created, model, choices: [{ index: 0, message, finish_reason: finishReason }], usage });
    }

    const signal = request.signal;
    let sent = 0;
    let roleSent = false;
    const stream = new ReadableStream<Uint8Array>({
      // Everything happens in pull(): an error raised from start() would drop chunks already queued.
      async pull(controller) {
        if (!roleSent) {
          roleSent = true;
          controller.enqueue(sseChunk(chunk({ role: "assistant", content: "" })));
          await sleep(script.first, signal);
          return;
        }
        if (sent < deltas.length) {
          if (sent === script.fail_after) return controller.error(new Error("scripted mid-stream failure"));
          if (sent === script.malformed_after) return controller.enqueue(sseChunk("{this is not json"));
          if (sent === script.hang_after) return new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
          if (sent === script.cut_after) return controller.close();
          if (sent > 0) await sleep(script.delay, signal);
          controller.enqueue(sseChunk(chunk(deltas[sent++]!)));
          return;
        }
        if (!script.no_finish) controller.enqueue(sseChunk(chunk({}, finishReason)));
        controller.enqueue(sseChunk({ id, object: "chat.completion.chunk", created, model, choices: [], usage }));
        controller.enqueue(sseChunk("[DONE]"));
        controller.close();
      },
    });
    return new Response(stream, { headers: { "Content-Type": "text/event-stream" } });
  };
}
