import { z } from "@hono/zod-openapi";
import { getConfig } from "../http/config";
import type { Conversation } from "../db/schema";
import { invalid } from "../http/errors";
import { newId, nowIso } from "../lib/ids";
import type { ModelEntry } from "../model/registry";
import { wellFormedText } from "./text-rules";

/* Rules about conversations that routes and the conversation engine share. */

const TITLE_MAX_LENGTH = 200;
const SYSTEM_PROMPT_MAX_LENGTH = 8_000;
const TITLE_FROM_MESSAGE_LENGTH = 60;

export const TitleSchema = wellFormedText().trim().max(TITLE_MAX_LENGTH).nullable();
export const ModelVersionSchema = z.string().trim().min(1).max(100).openapi({ example: "gpt-4" });
export const SystemPromptSchema = wellFormedText().max(SYSTEM_PROMPT_MAX_LENGTH).nullable();
export const MaxOutputTokensSchema = z.number().int().min(1).max(1_000_000).openapi({
  description: "At most this many tokens per reply, below the model's own allowance (`max_output_tokens` in GET /models/).",
});
export const IfBusySchema = z.enum(["queue", "reject", "interrupt"]).optional().openapi({
  description:
    "When a reply of this conversation is in flight: `queue` (default) runs this turn after it, `reject` answers 409 `busy` and stores nothing, " +
    "`interrupt` stops it (stored as Error `cancelled` with its text so far) and runs this turn next.",
});

/** `model_version` must be one of ALLOWED_MODELS; absent means DEFAULT_MODEL. */
export function resolveModel(env: Env, requested: string | undefined): string {
  const { allowedModels, defaultModel } = getConfig(env);
  if (requested === undefined) return defaultModel;
  if (!allowedModels.includes(requested)) {
    throw invalid({ field: "model_version", message: `Must be one of: ${allowedModels.join(", ")}.` });
  }
  return requested;
}

/** Title columns: the display title and its JavaScript-lowercased twin used by search (SQLite folds ASCII only). */
export const titleColumns = (title: string | null | undefined) =>
  title === undefined ? {} : { title: title || null, titleSearch: title ? title.toLowerCase() : null };

/** An untitled conversation is named after its first message, shortened to one line. */
export function titleFromMessage(content: string): string {
  const text = content.trim().replace(/\s+/g, " ");
  return text.length > TITLE_FROM_MESSAGE_LENGTH ? `${text.slice(0, TITLE_FROM_MESSAGE_LENGTH).trimEnd()}…` : text;
}

export interface NewConversationFields {
  title?: string | null;
  model_version?: string;
  system_prompt?: string | null;
  max_output_tokens?: number | null;
}

/** An output allowance a client asked for: at most the model's own. */
export function checkedAllowance(model: ModelEntry, asked: number): number {
  if (asked > model.maxOutputTokens) throw invalid({ field: "max_output_tokens", message: `${model.id} writes at most ${model.maxOutputTokens} tokens per reply.` });
  return asked;
}

/** The row of a new, empty conversation of `userId`. */
export function newConversationRow(env: Env, userId: string, fields: NewConversationFields, id: string = newId()): Conversation {
  const now = nowIso();
  const modelVersion = resolveModel(env, fields.model_version);
  return {
    id,
    userId,
    title: null,
    titleSearch: null,
    ...titleColumns(fields.title),
    status: "Active",
    modelVersion,
    systemPrompt: fields.system_prompt || null,
    maxOutputTokens: fields.max_output_tokens == null ? null : checkedAllowance(getConfig(env).modelEntry(modelVersion), fields.max_output_tokens),
    currentLeafId: null,
    leafVersion: 0,
    forkedFromConversationId: null,
    forkedFromMessageId: null,
    createdAt: now,
    updatedAt: now,
  };
}
