import OpenAI from "openai";
import type {
  ChatCompletionChunk,
  ChatCompletionCreateParamsStreaming,
  ChatCompletionMessageParam,
  ChatCompletionTool,
  ChatCompletionToolChoiceOption,
} from "openai/resources/chat/completions";
import type { AttachmentRef, Attempt } from "../db/schema";
import type { AppConfig } from "../http/config";
import { log } from "../lib/log";
import { circuits } from "./circuits";
import { createOfflineModelFetch } from "./offline-model";
import type { ModelEntry, Provider } from "./registry";

export type ContentPart = { type: "text"; text: string } | { type: "image_url"; image_url: { url: string } };

export interface ChatMessage {
  role: "system" | "user" | "assistant" | "tool";
  /** Parts once a message's files are read into it (`withFileParts`). */
  content: string | ContentPart[];
  /** Files to read into the message before it is sent. */
  attachments?: AttachmentRef[];
  /** An assistant message's tool calls. */
  toolCalls?: { id: string; name: string; arguments: string }[];
  /** A tool message: the call it answers. */
  toolCallId?: string;
}

/** A tool as the model is offered it (`name` as the model calls it), and how the turn may use tools. */
export interface ToolOffer {
  tools: { name: string; description?: string; parameters: Record<string, unknown> }[];
  choice: "auto" | "none" | "required" | { name: string };
}

export type ModelEvent =
  /** A provider answered (`provider`): its stream is open and its first token is in. */
  | { type: "open"; provider: string }
  | { type: "delta"; content: string }
  | { type: "reasoning"; content: string }
  /** A piece of the `index`th tool call of this step: its id and name come first, its arguments in pieces. */
  | { type: "tool_call"; index: number; id?: string; name?: string; arguments?: string }
  | { type: "model"; model: string }
  | { type: "finish"; reason: string }
  | { type: "usage"; promptTokens: number; completionTokens: number; totalTokens: number; reasoningTokens: number | null };

/** Why a reply ended without completing; `message` is safe to show to the client and store. */
export class TurnFailure extends Error {
  constructor(
    readonly code:
      | "upstream_error"
      | "upstream_rate_limited"
      | "upstream_timeout"
      | "malformed_response"
      | "empty_reply"
      | "context_length_exceeded"
      | "cancelled"
      | "interrupted"
      | "storage_failed",
    message: string,
    /** The provider's Retry-After, in seconds, for a rate limit. */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}

// One SDK client per isolate, configuration and provider (config objects live as long as their
// env): building it per turn is wasted CPU.
const clients = new WeakMap<AppConfig, Map<string, OpenAI>>();

/** Retries are `firstAnswer`'s, not the SDK's: the SDK would sleep out any Retry-After inside the turn's idle limit. */
function clientFor(config: AppConfig, provider: Provider): OpenAI {
  let byProvider = clients.get(config);
  if (!byProvider) clients.set(config, (byProvider = new Map()));
  const key = provider.name;
  let client = byProvider.get(key);
  if (!client) {
    client = new OpenAI({
      // Both passed explicitly: with nodejs_compat the SDK would otherwise read stray process.env values.
      apiKey: provider.apiKey ?? "none",
      baseURL: provider.standIn ? "https://stand-in.invalid/v1" : provider.baseURL,
      fetch: provider.standIn ? createOfflineModelFetch(provider.name, config.model.offlineTokenDelayMs, config.modelBudget) : undefined,
      maxRetries: 0,
      timeout: config.model.timeoutMs,
    });
    byProvider.set(key, client);
  }
  return client;
}

class FirstByteTimeout extends Error {}

/** How a provider failed before its first token: `http_<status>`, `timeout` or `connection_error`. */
function attemptOutcome(error: unknown, attempt: AbortSignal): string {
  if (attempt.reason instanceof FirstByteTimeout || error instanceof OpenAI.APIConnectionTimeoutError) return "timeout";
  if (error instanceof OpenAI.APIError && error.status) return `http_${error.status}`;
  return "connection_error";
}

/** Failures the next provider may not have; any other 4xx (a prompt too long, a refused request) it would repeat. */
const FAILS_OVER = /^(http_429|http_5\d\d|timeout|connection_error)$/;

/**
 * Asks the model's providers in order of preference (those whose circuit is open last) until one
 * gives a first answer: `open` is what counts as one. A 429, 5xx, connection error or silence past
 * the first-byte limit moves on at once; the last provider is retried (MODEL_MAX_RETRIES) only
 * when the wait fits in the idle limit; anything else is thrown. Every provider tried is recorded
 * in `attempts`. The answer's signal stays tied to `signal` until `release()`.
 */
async function firstAnswer<T>(
  config: AppConfig,
  model: ModelEntry,
  signal: AbortSignal,
  attempts: Attempt[],
  open: (client: OpenAI, signal: AbortSignal) => Promise<T>,
  onFailover: () => void = () => undefined,
): Promise<{ answer: T; provider: string; release: () => void }> {
  const order = circuits.order(model.providers);
  let retries = config.model.maxRetries;
  for (let i = 0; i < order.length; ) {
    const name = order[i]!;
    const last = i === order.length - 1;
    const started = Date.now();
    const attempt = new AbortController();
    const stop = () => attempt.abort(signal.reason);
    signal.addEventListener("abort", stop, { once: true });
    const release = () => signal.removeEventListener("abort", stop);
    const firstByte = setTimeout(() => attempt.abort(new FirstByteTimeout()), config.model.firstByteTimeoutMs);
    try {
      const answer = await open(clientFor(config, config.registry.providers.get(name)!), attempt.signal);
      attempts.push({ provider: name, outcome: "ok", ms: Date.now() - started });
      circuits.succeeded(name);
      return { answer, provider: name, release };
    } catch (error) {
      release();
      // The turn itself was stopped (cancelled, or past its own time limits): no provider failed.
      if (signal.aborted) throw error;
      const outcome = attemptOutcome(error, attempt.signal);
      attempts.push({ provider: name, outcome, ms: Date.now() - started });
      if (!FAILS_OVER.test(outcome)) throw error;
      circuits.failed(name, config);
      if (last) {
        const wait = retryWait(error, config.model.maxRetries - retries);
        const timedOut = attempt.signal.reason instanceof FirstByteTimeout;
        if (retries === 0 || timedOut || wait > config.model.idleTimeoutMs / 2) throw lastFailure(error, attempt.signal, config);
        retries--;
        await sleep(wait, signal);
        if (signal.aborted) throw signal.reason;
      } else {
        log.warn("provider failed before the first token; failing over", { model: model.id, provider: name, outcome, next: order[i + 1] });
        i++;
      }
      onFailover();
    } finally {
      clearTimeout(firstByte);
    }
  }
  throw new Error("a model has at least one provider");
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => (clearTimeout(timer), resolve()), { once: true });
  });

/** The provider's Retry-After (seconds or a date), in ms; null when it gave none. */
function retryAfterMs(error: unknown): number | null {
  if (!(error instanceof OpenAI.APIError) || !error.headers) return null;
  const ms = Number(error.headers.get("retry-after-ms"));
  if (ms > 0) return ms;
  const value = error.headers.get("retry-after");
  if (!value) return null;
  const seconds = Number(value);
  return Number.isFinite(seconds) ? seconds * 1000 : Math.max(0, Date.parse(value) - Date.now()) || null;
}

/** How long to wait before retrying: the provider's Retry-After, or 0.5 s doubling per retry. */
const retryWait = (error: unknown, retried: number) => retryAfterMs(error) ?? 500 * 2 ** retried;

/** The last provider's failure as the turn stores it: a rate limit with the provider's Retry-After, a timeout, or the error itself. */
function lastFailure(error: unknown, attempt: AbortSignal, config: AppConfig): unknown {
  if (attempt.reason instanceof FirstByteTimeout) return new TurnFailure("upstream_timeout", `The model's provider sent nothing for ${config.model.firstByteTimeoutMs / 1000} s.`);
  if (error instanceof OpenAI.APIError && error.status === 429) {
    const wait = retryAfterMs(error);
    return new TurnFailure("upstream_rate_limited", "The model provider is rate limiting requests; try again later.", wait === null ? undefined : Math.ceil(wait / 1000));
  }
  return error;
}

type ChatStream = AsyncIterator<ChatCompletionChunk>;

const plainText = (content: ChatMessage["content"]) => (typeof content === "string" ? content : content.map((part) => (part.type === "text" ? part.text : "")).join(""));

/** A message as the SDK sends it: parts only where a user message carries files; tool calls and results in the chat-completions form. */
function toParam({ role, content, toolCalls, toolCallId }: ChatMessage): ChatCompletionMessageParam {
  if (role === "user") return { role, content };
  if (role === "tool") return { role, content: plainText(content), tool_call_id: toolCallId! };
  if (role === "assistant" && toolCalls?.length) {
    return {
      role,
      content: plainText(content) || null,
      tool_calls: toolCalls.map((call) => ({ id: call.id, type: "function" as const, function: { name: call.name, arguments: call.arguments } })),
    };
  }
  return { role, content: plainText(content) };
}

/** The offer in the chat-completions form: `tools` as functions and the tool choice; nothing when there are no tools. */
function toolParams(offer: ToolOffer | undefined): { tools?: ChatCompletionTool[]; tool_choice?: ChatCompletionToolChoiceOption } {
  if (!offer?.tools.length) return {};
  const tools = offer.tools.map(({ name, description, parameters }) => ({ type: "function" as const, function: { name, ...(description ? { description } : {}), parameters } }));
  const { choice } = offer;
  return { tools, tool_choice: typeof choice === "string" ? choice : { type: "function", function: { name: choice.name } } };
}

/** Reasoning as OpenAI-compatible servers stream it: `reasoning_content` (DeepSeek, vLLM) or `reasoning` (OpenRouter, Ollama). */
const reasoningOf = (delta: object | undefined) => {
  const fields = delta as { reasoning_content?: unknown; reasoning?: unknown } | undefined;
  const text = fields?.reasoning_content ?? fields?.reasoning;
  return typeof text === "string" ? text : "";
};

const carriesAnswer = (chunk: ChatCompletionChunk) => {
  const delta = chunk.choices[0]?.delta;
  return Boolean(chunk.usage || delta?.content || delta?.tool_calls?.length || reasoningOf(delta) || chunk.choices[0]?.finish_reason);
};

/** Opens the stream and reads it up to its first answer: until then a failure may still fail over. */
async function openStream(client: OpenAI, signal: AbortSignal, body: ChatCompletionCreateParamsStreaming) {
  const chunks: ChatStream = (await client.chat.completions.create(body, { signal }))[Symbol.asyncIterator]();
  const head: ChatCompletionChunk[] = [];
  for (;;) {
    const next = await chunks.next();
    if (next.done) break;
    head.push(next.value);
    if (carriesAnswer(next.value)) break;
  }
  return { head, chunks };
}

function* eventsOf(chunk: ChatCompletionChunk, reportModel: boolean): Generator<ModelEvent> {
  if (reportModel && chunk.model) yield { type: "model", model: chunk.model };
  const choice = chunk.choices[0];
  const reasoning = reasoningOf(choice?.delta);
  if (reasoning) yield { type: "reasoning", content: reasoning };
  if (choice?.delta?.content) yield { type: "delta", content: choice.delta.content };
  for (const call of choice?.delta?.tool_calls ?? []) {
    yield { type: "tool_call", index: call.index, id: call.id, name: call.function?.name, arguments: call.function?.arguments };
  }
  if (choice?.finish_reason) yield { type: "finish", reason: choice.finish_reason };
  if (chunk.usage) {
    const { prompt_tokens, completion_tokens, total_tokens, completion_tokens_details } = chunk.usage;
    yield { type: "usage", promptTokens: prompt_tokens, completionTokens: completion_tokens, totalTokens: total_tokens, reasoningTokens: completion_tokens_details?.reasoning_tokens ?? null };
  }
}

/**
 * Streams one chat completion as deltas, the model's name, the finish reason and the usage, from
 * the first of the model's providers that answers. Once a token has streamed, a failure is the
 * reply's: never two providers' text in one reply.
 * `max_tokens` (not `max_completion_tokens`) because every OpenAI-compatible server takes it.
 */
export async function* streamChat(
  config: AppConfig,
  model: ModelEntry,
  messages: ChatMessage[],
  maxTokens: number,
  signal: AbortSignal,
  attempts: Attempt[],
  /** Called when a provider failed and the next one is asked: the caller's idle limit starts again. */
  onFailover?: () => void,
  tools?: ToolOffer,
): AsyncGenerator<ModelEvent> {
  const body: ChatCompletionCreateParamsStreaming = {
    model: model.upstreamModel,
    messages: messages.map(toParam),
    max_tokens: maxTokens,
    stream: true,
    stream_options: { include_usage: true },
    ...toolParams(tools),
  };
  const { answer, provider, release } = await firstAnswer(config, model, signal, attempts, (client, attemptSignal) => openStream(client, attemptSignal, body), onFailover);
  try {
    yield { type: "open", provider };
    let reportedModel = false;
    const report = (chunk: ChatCompletionChunk) => !reportedModel && Boolean(chunk.model) && (reportedModel = true);
    for (const chunk of answer.head) yield* eventsOf(chunk, report(chunk));
    for (let next = await answer.chunks.next(); !next.done; next = await answer.chunks.next()) yield* eventsOf(next.value, report(next.value));
  } finally {
    release();
    // A caller that stops reading early ends the request too.
    await answer.chunks.return?.().catch(() => undefined);
  }
}

/** One chat completion without streaming, from the first of the model's providers that answers: its text and how many tokens the provider counted. */
export async function completeChat(
  config: AppConfig,
  model: ModelEntry,
  messages: ChatMessage[],
  maxTokens: number,
  signal: AbortSignal,
): Promise<{ content: string; promptTokens: number; completionTokens: number | null; totalTokens: number }> {
  const { answer: completion, release } = await firstAnswer(config, model, signal, [], (client, attemptSignal) =>
    client.chat.completions.create({ model: model.upstreamModel, messages: messages.map(toParam), max_tokens: maxTokens }, { signal: attemptSignal }),
  );
  release();
  return {
    content: completion.choices[0]?.message?.content ?? "",
    promptTokens: completion.usage?.prompt_tokens ?? 0,
    completionTokens: completion.usage?.completion_tokens ?? null,
    totalTokens: completion.usage?.total_tokens ?? 0,
  };
}

/** The provider's own "prompt too long" answer (OpenAI: HTTP 400, `error.code: context_length_exceeded`). */
export const isContextLengthError = (error: unknown) => error instanceof OpenAI.APIError && error.status === 400 && error.code === "context_length_exceeded";

/** Maps anything a model call can throw to a short, readable failure without internals. */
export function classifyModelError(error: unknown, signal: AbortSignal): TurnFailure {
  if (error instanceof TurnFailure) return error;
  if (signal.aborted && signal.reason instanceof TurnFailure) return signal.reason;
  if (error instanceof OpenAI.APIConnectionTimeoutError) return new TurnFailure("upstream_timeout", "The model did not answer in time.");
  if (error instanceof OpenAI.APIConnectionError) return new TurnFailure("upstream_error", "Could not reach the model provider.");
  if (isContextLengthError(error)) return new TurnFailure("context_length_exceeded", "The model provider found the prompt longer than its context window.");
  if (error instanceof OpenAI.APIError && error.status) {
    return new TurnFailure("upstream_error", `The model provider answered with HTTP ${error.status}.`);
  }
  if (error instanceof SyntaxError) return new TurnFailure("malformed_response", "The model sent a malformed response.");
  return new TurnFailure("upstream_error", "The model stream failed.");
}
