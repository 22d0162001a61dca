import OpenAI from "openai";
import type { AppConfig } from "../http/config";
import { createOfflineModelFetch } from "./offline-model";

export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

export type ModelEvent =
  /** The provider took the request: its stream is open. */
  | { type: "open" }
  | { type: "delta"; content: string }
  | { type: "model"; model: string }
  | { type: "finish"; reason: string }
  | { type: "usage"; promptTokens: number; completionTokens: number; totalTokens: number };

/** Why a reply ended without completing; `message` is safe to show to the client and store. */
export class TurnFailure extends Error {
  constructor(
    readonly code:
      | "upstream_error"
      | "upstream_timeout"
      | "malformed_response"
      | "empty_reply"
      | "context_length_exceeded"
      | "cancelled"
      | "interrupted",
    message: string,
  ) {
    super(message);
  }
}

// One SDK client per isolate and configuration (config objects live as long as their env):
// building it per turn is wasted CPU.
const clients = new WeakMap<AppConfig, OpenAI>();

export function getModelClient(config: AppConfig): OpenAI {
  const { model } = config;
  let client = clients.get(config);
  if (!client) {
    client = new OpenAI({
      // Both passed explicitly: with nodejs_compat the SDK would otherwise read stray process.env values.
      apiKey: model.apiKey ?? "offline",
      baseURL: model.apiKey ? model.baseURL : "https://offline-stand-in.invalid/v1",
      fetch: model.apiKey ? undefined : createOfflineModelFetch(model.offlineTokenDelayMs, config.modelBudget),
      maxRetries: model.maxRetries,
      timeout: model.timeoutMs,
    });
    clients.set(config, client);
  }
  return client;
}

/**
 * Streams one chat completion as deltas, the model's name, the finish reason and the usage.
 * `max_tokens` (not `max_completion_tokens`) because every OpenAI-compatible server takes it.
 */
export async function* streamChat(
  client: OpenAI,
  model: string,
  messages: ChatMessage[],
  maxTokens: number,
  signal: AbortSignal,
): AsyncGenerator<ModelEvent> {
  const stream = await client.chat.completions.create(
    { model, messages, max_tokens: maxTokens, stream: true, stream_options: { include_usage: true } },
    { signal },
  );
  yield { type: "open" };
  let reportedModel = false;
  for await (const chunk of stream) {
    if (!reportedModel && chunk.model) {
      reportedModel = true;
      yield { type: "model", model: chunk.model };
    }
    const choice = chunk.choices[0];
    if (choice?.delta?.content) yield { type: "delta", content: choice.delta.content };
    if (choice?.finish_reason) yield { type: "finish", reason: choice.finish_reason };
    if (chunk.usage) {
      yield {
        type: "usage",
        promptTokens: chunk.usage.prompt_tokens,
        completionTokens: chunk.usage.completion_tokens,
        totalTokens: chunk.usage.total_tokens,
      };
    }
  }
}

/** One chat completion without streaming: its text and how many tokens the provider counted for it. */
export async function completeChat(
  client: OpenAI,
  model: string,
  messages: ChatMessage[],
  maxTokens: number,
  signal: AbortSignal,
): Promise<{ content: string; completionTokens: number | null; totalTokens: number }> {
  const completion = await client.chat.completions.create({ model, messages, max_tokens: maxTokens }, { signal });
  return {
    content: completion.choices[0]?.message?.content ?? "",
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
