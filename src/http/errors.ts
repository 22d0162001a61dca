import type { ContentfulStatusCode } from "hono/utils/http-status";

/** Every error the API answers with, and the HTTP status it maps to. */
export const errorStatus = {
  bad_request: 400,
  validation_failed: 400,
  /** The turn needs a capability its model lacks (`details.missing`: vision, tools). */
  model_unsupported: 400,
  invalid_page: 404,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  method_not_allowed: 405,
  conflict: 409,
  /** A send with `if_busy: "reject"` while a reply is in flight. */
  busy: 409,
  payload_too_large: 413,
  context_length_exceeded: 413,
  /** USER_STORAGE_BYTES: what the user stores beyond their turns (forks, edits that grow messages). */
  storage_quota_exceeded: 413,
  unsupported_media_type: 415,
  idempotency_key_reused: 422,
  rate_limited: 429,
  budget_exceeded: 429,
  internal_error: 500,
  /** PROVIDERS or MODELS cannot be used: the message names the field (never a secret's value). */
  misconfigured: 500,
  upstream_error: 502,
  /** The caller's virtual shard is being moved to another database (FROZEN_VIRTUAL_SHARDS): writes wait. */
  moving: 503,
} as const satisfies Record<string, ContentfulStatusCode>;

export type ErrorCode = keyof typeof errorStatus;

interface ErrorBody {
  error: {
    code: ErrorCode;
    message: string;
    details?: unknown;
    request_id: string;
  };
}

export interface ApiErrorOptions {
  /** Machine-readable detail, e.g. the per-field messages of a validation failure. */
  details?: unknown;
  headers?: Record<string, string>;
}

export class ApiError extends Error {
  readonly status: ContentfulStatusCode;
  readonly details: unknown;
  readonly headers: Record<string, string> | undefined;

  constructor(
    readonly code: ErrorCode,
    message: string,
    { details, headers }: ApiErrorOptions = {},
  ) {
    super(message);
    this.status = errorStatus[code];
    this.details = details;
    this.headers = headers;
  }

  body(requestId: string): ErrorBody {
    return {
      error: {
        code: this.code,
        message: this.message,
        ...(this.details === undefined ? {} : { details: this.details }),
        request_id: requestId,
      },
    };
  }
}

export const notFound = (what: string) => new ApiError("not_found", `${what} not found.`);

export interface FieldError {
  field: string;
  message: string;
}

/** A 400 with per-field details, the shape every validation failure uses. */
export const invalid = (...details: FieldError[]) => new ApiError("validation_failed", "The request is not valid.", { details });

/**
 * An ApiError as plain data, to cross a Durable Object RPC boundary (an Error would arrive as a
 * bare message); the route turns it back with `fromRefusal`.
 */
export interface Refusal {
  kind: "rejected";
  code: ErrorCode;
  message: string;
  details?: unknown;
  headers?: Record<string, string>;
}

export const toRefusal = (error: ApiError): Refusal => ({
  kind: "rejected",
  code: error.code,
  message: error.message,
  ...(error.details === undefined ? {} : { details: error.details }),
  ...(error.headers ? { headers: error.headers } : {}),
});

export const fromRefusal = ({ code, message, details, headers }: Refusal) => new ApiError(code, message, { details, headers });

export const isRefusal = (answer: unknown): answer is Refusal =>
  typeof answer === "object" && answer !== null && "kind" in answer && (answer as Refusal).kind === "rejected";

/** The value of an object's answer, or the ApiError it refused with. */
export function unwrap<T>(answer: T | Refusal): Exclude<T, Refusal> {
  if (isRefusal(answer)) throw fromRefusal(answer);
  return answer as Exclude<T, Refusal>;
}

/** An access token outlives its account by up to 15 minutes: what it may no longer do answers this. */
export const ACCOUNT_DELETED = new ApiError("unauthorized", "This account was deleted.");
