import { Scalar } from "@scalar/hono-api-reference";
import type { Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { cors } from "hono/cors";
import { HTTPException } from "hono/http-exception";
import { methodNotAllowed } from "hono/method-not-allowed";
import { requestId } from "hono/request-id";
import { routePath } from "hono/route";
import { NONCE, secureHeaders } from "hono/secure-headers";
import type { AppEnv } from "./http/app-env";
import { createRouter } from "./http/create-router";
import { BOOKMARK_HEADER, bookmarkHeader } from "./db/request-session";
import { getConfig } from "./http/config";
import { ApiError, type ErrorCode } from "./http/errors";
import { log, setLogLevel } from "./lib/log";
import { RegistryError } from "./model/registry";
import { authRoutes } from "./routes/auth";
import { chatRoutes } from "./routes/chat";
import { conversationRoutes } from "./routes/conversations";
import { messageRoutes } from "./routes/messages";
import { exportRoutes } from "./routes/exports";
import { modelRoutes } from "./routes/models";
import { toolRoutes } from "./routes/tools";
import { toolOutputRoutes } from "./routes/tool-outputs";
import { searchRoutes } from "./routes/search";
import { shareRoutes } from "./routes/shares";
import { turnRoutes } from "./routes/turns";
import { userRoutes } from "./routes/users";
import { fileRoutes } from "./routes/files";

const MAX_BODY_BYTES = 128 * 1024;
// The AI SDK's transport sends the client's whole copy of the chat with every message.
const MAX_CHAT_BODY_BYTES = 4 * 1024 * 1024;

function errorResponse(c: Context<AppEnv>, error: ApiError): Response {
  return c.json(error.body(c.get("requestId")), error.status, error.headers);
}

/** The code of each status Hono's own exceptions (malformed JSON, unsupported media type, ...) can carry. */
const httpExceptionCodes: Partial<Record<number, ErrorCode>> = {
  400: "bad_request",
  401: "unauthorized",
  403: "forbidden",
  404: "not_found",
  405: "method_not_allowed",
  409: "conflict",
  413: "payload_too_large",
  415: "unsupported_media_type",
  429: "rate_limited",
};

function fromHttpException(exception: HTTPException): ApiError | null {
  const code = httpExceptionCodes[exception.status];
  return code ? new ApiError(code, exception.message || "Bad request.") : null;
}

export function createApp() {
  const app = createRouter();

  app.use(requestId());
  app.use(async (c, next) => {
    setLogLevel(c.env.LOG_LEVEL);
    const started = Date.now();
    await next();
    log.info("request", {
      method: c.req.method,
      route: routePath(c, -1),
      status: c.res.status,
      duration_ms: Date.now() - started,
      user_id: c.get("userId") ?? null,
      request_id: c.get("requestId"),
    });
  });
  // DENY like the static assets (public/_headers): nothing of ours is meant to be framed.
  app.use(secureHeaders({ xFrameOptions: "DENY" }));
  app.use(bookmarkHeader);
  app.use(
    cors({
      origin: (origin, c) => (getConfig(c.env).allowedOrigins.includes(origin) ? origin : null),
      allowMethods: ["GET", "POST", "PUT", "PATCH", "DELETE"],
      allowHeaders: ["Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID", "X-Request-Id", BOOKMARK_HEADER],
      exposeHeaders: ["X-Request-Id", "Retry-After", BOOKMARK_HEADER],
      maxAge: 600,
    }),
  );
  app.use(
    methodNotAllowed({
      app,
      onMethodNotAllowed: (c, methods) =>
        errorResponse(c, new ApiError("method_not_allowed", `Method ${c.req.method} is not allowed here.`, { headers: { Allow: methods.join(", ") } })),
    }),
  );
  const bodyLimitOf = (maxSize: number) =>
    bodyLimit({
      maxSize,
      onError: () => {
        throw new ApiError("payload_too_large", `The request body is larger than ${maxSize} bytes.`);
      },
    });
  const chatBodyLimit = bodyLimitOf(MAX_CHAT_BODY_BYTES);
  const defaultBodyLimit = bodyLimitOf(MAX_BODY_BYTES);
  // An upload: the largest file, and a multipart form's own bytes around it.
  const fileBodyLimit = (c: Context<AppEnv>) => bodyLimitOf(getConfig(c.env).maxFileBytes + 64 * 1024);
  app.use((c, next) => {
    const path = c.req.path.replace(/\/$/, "");
    return (path === "/chat" ? chatBodyLimit : path === "/files" ? fileBodyLimit(c) : defaultBodyLimit)(c, next);
  });

  app.get("/health", (c) => c.json({ status: "ok" }));

  app
    .route("/", authRoutes)
    .route("/", userRoutes)
    .route("/", conversationRoutes)
    .route("/", messageRoutes)
    .route("/", modelRoutes)
    .route("/", toolRoutes)
    .route("/", toolOutputRoutes)
    .route("/", turnRoutes)
    .route("/", chatRoutes)
    .route("/", fileRoutes)
    .route("/", searchRoutes)
    .route("/", exportRoutes)
    .route("/", shareRoutes);

  app.openAPIRegistry.registerComponent("securitySchemes", "Bearer", { type: "http", scheme: "bearer", bearerFormat: "JWT" });
  app.openAPIRegistry.registerComponent("securitySchemes", "StreamTicket", { type: "apiKey", in: "query", name: "ticket" });
  app.doc31("/openapi.json", {
    openapi: "3.1.0",
    info: {
      title: "genai-edge",
      version: "1.0.0",
      description: "Conversation API for LLM chat on Cloudflare Workers. Every path also accepts a trailing slash.",
    },
  });
  // Everything the page loads comes from this Worker (scripts/copy-docs-assets.mjs): no CDN, no web fonts.
  // The reference page talks to this origin only: Scalar's cloud features (its AI agent, MCP
  // generation) are off, and the CSP would block them anyway. Its inline script carries a nonce.
  app.get(
    "/docs",
    secureHeaders({
      xFrameOptions: "DENY",
      contentSecurityPolicy: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'", NONCE],
        styleSrc: ["'self'", "'unsafe-inline'"],
        imgSrc: ["'self'", "data:"],
        fontSrc: ["'self'", "data:"],
        connectSrc: ["'self'"],
        frameAncestors: ["'none'"],
        baseUri: ["'none'"],
        formAction: ["'self'"],
      },
    }),
    Scalar((c) => ({
      url: "/openapi.json",
      pageTitle: "genai-edge API",
      cdn: "/scalar/standalone.js",
      nonce: c.get("secureHeadersNonce"),
      withDefaultFonts: false,
      agent: { disabled: true },
      mcp: { disabled: true },
    })),
  );

  app.notFound((c) => errorResponse(c, new ApiError("not_found", "No such route.")));
  app.onError((error, c) => {
    if (error instanceof ApiError) return errorResponse(c, error);
    const known = error instanceof HTTPException ? fromHttpException(error) : null;
    if (known) return errorResponse(c, known);
    if (error instanceof RegistryError) {
      log.error("the model registry or MCP_SERVERS is invalid", error, { request_id: c.get("requestId") });
      return errorResponse(c, new ApiError("misconfigured", `The server's configuration is invalid: ${error.message}`));
    }
    log.error("unhandled error", error, { request_id: c.get("requestId") });
    return errorResponse(c, new ApiError("internal_error", "Internal server error."));
  });

  return app;
}
