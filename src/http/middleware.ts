import { createMiddleware } from "hono/factory";
import type { AppEnv } from "./app-env";
import { ApiError } from "./errors";
import { verifyStreamTicket, verifyToken } from "../lib/tokens";

const BEARER_CHALLENGE = { "WWW-Authenticate": 'Bearer realm="genai-edge"' };

/** Accepts only a valid, unexpired access token and puts its user id on the context. */
export const requireAuth = createMiddleware<AppEnv>(async (c, next) => {
  const header = c.req.header("Authorization");
  const match = header?.match(/^Bearer\s+(\S+)\s*$/i);
  if (!match) {
    throw new ApiError("unauthorized", "Authentication credentials were not provided.", { headers: BEARER_CHALLENGE });
  }
  try {
    const claims = await verifyToken(c.env, match[1]!, "access");
    c.set("userId", claims.userId);
    c.set("tokenFamily", claims.familyId);
  } catch (error) {
    if (error instanceof ApiError) throw new ApiError(error.code, error.message, { headers: BEARER_CHALLENGE });
    throw error;
  }
  await next();
});

/** Route config shared by every authenticated route: the auth middleware and its OpenAPI security. */
export const authenticated = (tag: string) => ({
  tags: [tag],
  security: [{ Bearer: [] }],
  middleware: [requireAuth],
});

/**
 * The stream route also takes `?ticket=` (POST /conversations/{id}/stream_ticket/): EventSource
 * cannot send an Authorization header. The ticket names the conversation of the path.
 */
export const requireAuthOrStreamTicket = createMiddleware<AppEnv>(async (c, next) => {
  const ticket = c.req.query("ticket");
  if (ticket === undefined) {
    await requireAuth(c, next);
    return;
  }
  try {
    c.set("userId", await verifyStreamTicket(c.env, ticket, c.req.param("id") ?? ""));
  } catch (error) {
    if (error instanceof ApiError) throw new ApiError(error.code, error.message, { headers: BEARER_CHALLENGE });
    throw error;
  }
  await next();
});
