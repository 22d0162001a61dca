import OpenAI from "openai";
import type { AppConfig } from "../config";
import { createOfflineModelFetch } from "./offline-model";

export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

export type ModelEvent =
  | { type: "delta"; content: string }
  | { type: "model"; model: string }
  | { type: "usage"; promptTokens: number; completionTokens: number; totalTokens: number };

/** Why a reply ended without completing; `message` is safe to show to the client and store. */
export class TurnFailure extends Error {
  constructor(
    readonly code: "upstream_error" | "upstream_timeout" | "malformed_response" | "empty_reply" | "cancelled" | "interrupted",
    message: string,
  ) {
    super(message);
  }
}

// One SDK client per isolate and configuration: building it per turn is wasted CPU.
const clients = new Map<string, OpenAI>();

export function getModelClient({ model }: AppConfig): OpenAI {
  const key = `${model.apiKey ?? ""}|${model.baseURL}|${model.maxRetries}|${model.timeoutMs}|${model.offlineTokenDelayMs}`;
  let client = clients.get(key);
  if (!client) {
    client = new OpenAI({
      // Both passed explicitly: with nodejs_compat the SDK would otherwise read stray process.env values.
      apiKey: model.apiKey ?? "offline",
      baseURL: model.apiKey ? model.baseURL : "https://offline-stand-in.invalid/v1",
      fetch: model.apiKey ? undefined : createOfflineModelFetch(model.offlineTokenDelayMs),
      maxRetries: model.maxRetries,
      timeout: model.timeoutMs,
    });
    clients.set(key, client);
  }
  return client;
}

/** Streams one chat completion as deltas and a final usage event. */
export async function* streamChat(client: OpenAI, model: string, messages: ChatMessage[], signal: AbortSignal): AsyncGenerator<ModelEvent> {
  const stream = await client.chat.completions.create(
    { model, messages, stream: true, stream_options: { include_usage: true } },
    { signal },
  );
  let reportedModel = false;
  for await (const chunk of stream) {
    if (!reportedModel && chunk.model) {
      reportedModel = true;
      yield { type: "model", model: chunk.model };
    }
    const content = chunk.choices[0]?.delta?.content;
    if (content) yield { type: "delta", content };
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

/** Maps anything a model call can throw to a short, readable failure without internals. */
export function classifyModelError(error: unknown, signal: AbortSignal): TurnFailure {
  if (error instanceof TurnFailure) return error;
  if (signal.aborted && signal.reason instanceof TurnFailure) return signal.reason;
  if (error instanceof OpenAI.APIConnectionTimeoutError) return new TurnFailure("upstream_timeout", "The model did not answer in time.");
  if (error instanceof OpenAI.APIConnectionError) return new TurnFailure("upstream_error", "Could not reach the model provider.");
  if (error instanceof OpenAI.APIError && error.status) {
    return new TurnFailure("upstream_error", `The model provider answered with HTTP ${error.status}.`);
  }
  if (error instanceof SyntaxError) return new TurnFailure("malformed_response", "The model sent a malformed response.");
  return new TurnFailure("upstream_error", "The model stream failed.");
}
