import { z } from "@hono/zod-openapi";
import type { AiResponse, Conversation, FileRow, Message, User } from "../db/schema";
import { aiResponseStatuses, conversationStatuses, senders, toolCallStatuses } from "../db/schema";
import { partsOf } from "../rules/message-parts";
import { errorStatus } from "./errors";
import { MAX_PAGE_SIZE, PAGE_SIZE } from "../lib/page-size";

/* The JSON shapes the API answers with, each next to the function that renders a row as it. */

export const ErrorSchema = z
  .object({
    error: z.object({
      code: z.enum(Object.keys(errorStatus) as [keyof typeof errorStatus]),
      message: z.string(),
      details: z.unknown().optional(),
      request_id: z.string(),
    }),
  })
  .openapi("Error");

export const UserSchema = z
  .object({
    id: z.string(),
    email: z.string(),
    name: z.string(),
    is_active: z.boolean(),
    date_joined: z.string(),
  })
  .openapi("User");

export const renderUser = (user: User): z.infer<typeof UserSchema> => ({
  id: user.id,
  email: user.email,
  name: user.name,
  is_active: user.isActive,
  date_joined: user.dateJoined,
});

export const TokenPairSchema = z
  .object({
    access: z.string(),
    refresh: z.string(),
    token_type: z.literal("Bearer"),
    expires_in: z.number().int().openapi({ description: "Seconds until the access token expires." }),
  })
  .openapi("TokenPair");

export const ConversationSchema = z
  .object({
    id: z.string(),
    title: z.string().nullable(),
    status: z.enum(conversationStatuses),
    model_version: z.string(),
    system_prompt: z.string().nullable(),
    max_output_tokens: z.number().int().nullable().openapi({ description: "The conversation's own output allowance per reply; null: the model's." }),
    current_leaf: z.string().nullable().openapi({ description: "The last message of the branch shown and continued by default." }),
    forked_from: z
      .object({ conversation: z.string(), message: z.string() })
      .nullable()
      .openapi({ description: "For a fork: the conversation and message it was copied from." }),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi("Conversation");

export const renderConversation = (conversation: Conversation): z.infer<typeof ConversationSchema> => ({
  id: conversation.id,
  title: conversation.title,
  status: conversation.status,
  model_version: conversation.modelVersion,
  system_prompt: conversation.systemPrompt,
  max_output_tokens: conversation.maxOutputTokens,
  current_leaf: conversation.currentLeafId,
  forked_from:
    conversation.forkedFromConversationId && conversation.forkedFromMessageId
      ? { conversation: conversation.forkedFromConversationId, message: conversation.forkedFromMessageId }
      : null,
  created_at: conversation.createdAt,
  updated_at: conversation.updatedAt,
});

export const ContextSchema = z
  .object({
    first_order: z.number().int().openapi({ description: "Order of the oldest message of the branch the model was given." }),
    messages: z.number().int().openapi({ description: "How many messages of the branch it was given (soft-deleted and empty ones are never sent)." }),
    summary_through_order: z
      .number()
      .int()
      .nullable()
      .openapi({ description: "The rolling summary it was given covers the branch through this order; null: no summary." }),
    prompt_tokens: z.number().int().nullable().openapi({ description: "The provider's count of the prompt; null until it reports usage." }),
  })
  .openapi("Context", { description: "What the model was actually given for this reply." });

export type ReplyContext = Pick<
  AiResponse,
  | "finishReason"
  | "contextFirstOrder"
  | "contextMessages"
  | "contextSummaryThroughOrder"
  | "promptTokens"
  | "feedbackRating"
  | "feedbackComment"
  | "provider"
  | "costUsd"
>;

export const FeedbackSchema = z
  .object({ rating: z.enum(["up", "down"]), comment: z.string().nullable() })
  .openapi("Feedback", { description: "The owner's rating of a reply." });

export const renderFeedback = (reply: Pick<AiResponse, "feedbackRating" | "feedbackComment">): z.infer<typeof FeedbackSchema> | null =>
  reply.feedbackRating ? { rating: reply.feedbackRating, comment: reply.feedbackComment } : null;

export const renderContext = (response: ReplyContext): z.infer<typeof ContextSchema> | null =>
  response.contextFirstOrder === null
    ? null
    : {
        first_order: response.contextFirstOrder,
        messages: response.contextMessages ?? 0,
        summary_through_order: response.contextSummaryThroughOrder,
        prompt_tokens: response.promptTokens,
      };

export const SiblingsSchema = z
  .object({
    index: z.number().int().positive().openapi({ description: "1-based position among the messages with the same parent, in creation order." }),
    count: z.number().int().positive(),
    previous: z
      .string()
      .nullable()
      .openapi({ description: "Pass as `current_leaf` to show the previous sibling's branch (its newest message); null for the first." }),
    next: z.string().nullable().openapi({ description: "Pass as `current_leaf` to show the next sibling's branch (its newest message); null for the last." }),
  })
  .openapi("Siblings", { description: "Listings only: where this message sits among its alternatives (‹ index / count ›)." });

export type Siblings = z.infer<typeof SiblingsSchema>;

export const PartSchema = z
  .discriminatedUnion("type", [
    z.object({ type: z.literal("text"), step: z.number().int(), text: z.string() }),
    z.object({ type: z.literal("reasoning"), step: z.number().int(), text: z.string() }),
    z.object({
      type: z.literal("tool_call"),
      step: z.number().int(),
      id: z.string(),
      name: z.string().openapi({ description: "A client tool's name, or `<server>__<tool>` for a server tool." }),
      arguments: z.string().openapi({ description: "JSON, as the model wrote it." }),
      executor: z.enum(["server", "client"]),
      status: z.enum(toolCallStatuses),
      output: z.string().optional(),
      error: z.string().optional().openapi({ description: "Why the call failed, or a denial's reason." }),
    }),
  ])
  .openapi("Part", { description: "A piece of an AI message, in order; `step` is the model call that produced it." });

export const MessageSchema = z
  .object({
    id: z.string(),
    conversation: z.string(),
    sender: z.enum(senders),
    content: z.string(),
    timestamp: z.string(),
    order: z.number().int().positive(),
    is_edited: z.boolean(),
    is_deleted: z.boolean(),
    reply_to: z.string().nullable(),
    parent: z.string().nullable().openapi({ description: "The message before this one on its branch; null for a first message." }),
    siblings: SiblingsSchema.optional(),
    attachments: z
      .array(
        z.union([
          z.object({ id: z.string(), filename: z.string(), media_type: z.string(), size: z.number().int(), width: z.number().int().optional(), height: z.number().int().optional() }),
          z.object({ id: z.string(), filename: z.string(), deleted: z.literal(true) }),
        ]),
      )
      .optional()
      .openapi({ description: "User messages with files: the files as they were when it was sent; a file deleted since is `{id, filename, deleted: true}`." }),
    parts: z
      .array(PartSchema)
      .optional()
      .openapi({ description: "AI messages only: text, reasoning and tool calls with their results, in order. `content` is the text parts joined." }),
    ai_response_status: z
      .enum(aiResponseStatuses)
      .nullable()
      .optional()
      .openapi({ description: "User messages only: the status of the newest AI response that answers it." }),
    finish_reason: z.string().nullable().optional().openapi({ description: "AI messages only: the provider's finish_reason of this reply." }),
    context: ContextSchema.nullable().optional().openapi({ description: "AI messages only: what the model was given for this reply." }),
    feedback: FeedbackSchema.nullable().optional().openapi({ description: "AI messages only: your rating of this reply." }),
    provider: z.string().nullable().optional().openapi({ description: "AI messages only: the provider that answered." }),
    cost_usd: z.number().nullable().optional().openapi({ description: "AI messages only: what the reply cost at the model's prices." }),
  })
  .openapi("Message");

export interface MessageExtras {
  /** User messages: the status of the newest response answering it. */
  aiResponseStatus?: AiResponse["status"] | null;
  /** AI messages: the response this message carries. */
  reply?: ReplyContext | null;
  siblings?: Siblings;
}

export const renderMessage = (message: Message, { aiResponseStatus, reply, siblings }: MessageExtras = {}): z.infer<typeof MessageSchema> => ({
  id: message.id,
  conversation: message.conversationId,
  sender: message.sender,
  content: message.content,
  timestamp: message.timestamp,
  order: message.order,
  is_edited: message.isEdited,
  is_deleted: message.isDeleted,
  reply_to: message.replyTo,
  parent: message.parentId,
  ...(siblings ? { siblings } : {}),
  ...(message.attachments?.length
    ? {
        attachments: message.attachments.map(({ id, filename, mediaType, size, width, height, deleted }) =>
          deleted
            ? { id, filename, deleted: true as const }
            : { id, filename, media_type: mediaType, size, ...(width === null ? {} : { width }), ...(height === null ? {} : { height }) },
        ),
      }
    : {}),
  ...(message.sender === "ai" ? { parts: partsOf(message) } : {}),
  ...(message.sender === "user" ? { ai_response_status: aiResponseStatus ?? null } : {}),
  ...(message.sender === "ai" && reply ? { finish_reason: reply.finishReason, context: renderContext(reply), feedback: renderFeedback(reply), provider: reply.provider, cost_usd: reply.costUsd } : {}),
});

export const AiResponseSchema = z
  .object({
    id: z.string(),
    message: z.string().openapi({ description: "The user message this response answers." }),
    ai_message: z.string().openapi({ description: "The AI message that carries the reply." }),
    response_content: z.string(),
    status: z.enum(aiResponseStatuses),
    error_code: z.string().nullable().openapi({ description: "Why the response is an Error, e.g. upstream_error, cancelled." }),
    error_message: z.string().nullable(),
    model: z.string(),
    usage: z
      .object({
        prompt_tokens: z.number().int(),
        completion_tokens: z.number().int(),
        total_tokens: z.number().int(),
        reasoning_tokens: z.number().int().optional().openapi({ description: "Of the completion tokens, those spent reasoning, when the provider says." }),
        estimated: z.boolean().openapi({ description: "Our estimate, charged because no usage came from the provider (a cancelled or cut-off reply)." }),
      })
      .nullable(),
    finish_reason: z
      .string()
      .nullable()
      .openapi({ description: "The provider's: `stop`, `length` (cut off by the output limit), `content_filter`, …" }),
    max_output_tokens: z.number().int().nullable().openapi({ description: "The output allowance sent upstream." }),
    provider: z.string().nullable().openapi({ description: "The registry's provider that answered (PROVIDERS)." }),
    attempts: z
      .array(
        z.object({
          provider: z.string(),
          outcome: z.string().openapi({ description: "`ok`, `http_<status>`, `timeout` or `connection_error`." }),
          ms: z.number().int().openapi({ description: "Until its first token, or its failure." }),
        }),
      )
      .openapi({ description: "Every provider asked for this reply, in order: more than one after a failover." }),
    cost_usd: z.number().nullable().openapi({ description: "At the model's prices (MODELS); null when it has none or no usage came." }),
    context: ContextSchema.nullable(),
    created_at: z.string(),
    first_token_at: z.string().nullable(),
    completed_at: z.string().nullable(),
  })
  .openapi("AiResponse");

/** `content`: the reply text, stored once, on the AI message. */
export const renderAiResponse = (response: AiResponse, content: string): z.infer<typeof AiResponseSchema> => ({
  id: response.id,
  message: response.messageId,
  ai_message: response.aiMessageId,
  response_content: content,
  status: response.status,
  error_code: response.errorCode,
  error_message: response.errorMessage,
  model: response.model,
  usage:
    response.totalTokens === null
      ? null
      : {
          prompt_tokens: response.promptTokens ?? 0,
          completion_tokens: response.completionTokens ?? 0,
          total_tokens: response.totalTokens,
          ...(response.reasoningTokens === null || response.reasoningTokens === undefined ? {} : { reasoning_tokens: response.reasoningTokens }),
          // Rows stored before the flag existed lack it.
          estimated: response.usageEstimated === true,
        },
  finish_reason: response.finishReason,
  max_output_tokens: response.maxOutputTokens,
  provider: response.provider,
  attempts: response.attempts ?? [],
  cost_usd: response.costUsd,
  context: renderContext(response),
  created_at: response.createdAt,
  first_token_at: response.firstTokenAt,
  completed_at: response.completedAt,
});

const ModelSchema = z
  .object({
    id: z.string().openapi({ description: "The model_version value." }),
    context_window: z.number().int().openapi({ description: "Tokens of prompt and reply together." }),
    max_output_tokens: z.number().int().openapi({ description: "The longest reply, in tokens; a conversation or turn may ask for less." }),
    capabilities: z.object({ vision: z.boolean(), tools: z.boolean(), reasoning: z.boolean() }),
    price: z
      .object({ input: z.number(), output: z.number() })
      .nullable()
      .openapi({ description: "USD per million tokens; null: not configured, replies carry no cost." }),
    providers: z.number().int().openapi({ description: "How many providers serve it: more than one fails over." }),
  })
  .openapi("Model");

export const ModelsSchema = z
  .object({
    default_model: z.string(),
    allowed_models: z.array(z.string()),
    models: z.array(ModelSchema),
  })
  .openapi("Models");

export type ModelsJson = z.infer<typeof ModelsSchema>;

export const FileSchema = z
  .object({
    id: z.string(),
    filename: z.string(),
    media_type: z.string().openapi({ description: "Decided by the bytes, never by the Content-Type sent." }),
    size: z.number().int(),
    sha256: z.string(),
    width: z.number().int().optional(),
    height: z.number().int().optional(),
    created_at: z.string(),
  })
  .openapi("File");

export const renderFile = (file: FileRow): z.infer<typeof FileSchema> => ({
  id: file.id,
  filename: file.filename,
  media_type: file.mediaType,
  size: file.size,
  sha256: file.sha256,
  ...(file.width === null ? {} : { width: file.width }),
  ...(file.height === null ? {} : { height: file.height }),
  created_at: file.createdAt,
});

export const IdParamSchema = z.object({
  id: z.string().min(1).max(64).openapi({ param: { name: "id", in: "path" }, example: "0193a1f0-8c2e-7d4b-9a51-3f6e2b1c0d9a" }),
});

export const BooleanQuerySchema = z
  .enum(["true", "false", "1", "0"])
  .optional()
  .transform((v) => v === "true" || v === "1");

export const PageQuerySchema = z.object({
  page: z.coerce.number().int().min(1).max(1_000_000).default(1).openapi({ description: "1-based page number." }),
  page_size: z.coerce
    .number()
    .int()
    .min(1)
    .max(MAX_PAGE_SIZE)
    .default(PAGE_SIZE)
    .openapi({ description: `Items per page, 1–${MAX_PAGE_SIZE}; ${PAGE_SIZE} by default.` }),
});

export const pageSchema = <T extends z.ZodType>(item: T, name: string) =>
  z
    .object({
      count: z.number().int(),
      next: z.string().nullable(),
      previous: z.string().nullable(),
      results: z.array(item),
    })
    .openapi(name);

export const MessagePageSchema = pageSchema(MessageSchema, "MessagePage");

/** The error responses a route can answer with, for the OpenAPI document. */
export const errorResponses = (...statuses: number[]) =>
  Object.fromEntries(
    statuses.map((status) => [
      status,
      { description: "Error", content: { "application/json": { schema: ErrorSchema } } },
    ]),
  );

export const jsonBody = <T extends z.ZodType>(schema: T) => ({
  required: true,
  content: { "application/json": { schema } },
});

export const jsonResponse = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { "application/json": { schema } },
});

/* The JSON shapes as types, for clients of the API (the playground imports them). */
export type ConversationJson = z.infer<typeof ConversationSchema>;
export type MessageJson = z.infer<typeof MessageSchema>;
export type AiResponseJson = z.infer<typeof AiResponseSchema>;
export type Page<T> = Omit<z.infer<ReturnType<typeof pageSchema>>, "results"> & { results: T[] };
export const SharedConversationSchema = z
  .object({
    title: z.string().nullable(),
    messages: z.array(
      z.object({
        sender: z.enum(senders),
        content: z.string(),
        timestamp: z.string(),
        images: z
          .array(z.object({ filename: z.string(), width: z.number().int().nullable(), height: z.number().int().nullable() }))
          .optional()
          .openapi({ description: "The message's images, in order: GET /shared/images/{message}/{image} with the same X-Share-Token. No file ids." }),
        parts: z
          .array(PartSchema)
          .optional()
          .openapi({ description: "A reply with tool calls: its text and calls with their results, in order (no reasoning)." }),
      }),
    ),
  })
  .openapi("SharedConversation", { description: "Only the title and the messages: nothing else of the owner." });

export type SharedConversation = z.infer<typeof SharedConversationSchema>;
