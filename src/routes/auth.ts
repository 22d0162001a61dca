import { createRoute, z } from "@hono/zod-openapi";
import { eq } from "drizzle-orm";
import { EmailSchema, NameSchema, NewPasswordSchema, PasswordSchema } from "../rules/account-rules";
import { createRouter } from "../http/create-router";
import { directoryDb } from "../db/client";
import { users } from "../db/schema";
import { ApiError } from "../http/errors";
import { newId } from "../lib/ids";
import { clientKey, enforceRateLimit } from "../lib/rate-limit";
import { getDecoyHash, hashPassword, verifyPassword } from "../lib/password";
import { revokeSessions, rotateSession, startSession } from "../rules/sessions";
import { authenticated } from "../http/middleware";
import { errorResponses, jsonBody, jsonResponse, renderUser, TokenPairSchema, UserSchema } from "../http/schemas";

const register = createRoute({
  method: "post",
  path: "/auth/register",
  tags: ["auth"],
  summary: "Create an account",
  request: {
    body: jsonBody(
      z.strictObject({
        email: EmailSchema,
        password: NewPasswordSchema,
        name: NameSchema.optional(),
      }),
    ),
  },
  responses: { 201: jsonResponse(UserSchema, "The new user"), ...errorResponses(400, 409, 413, 415, 429) },
});

const obtainToken = createRoute({
  method: "post",
  path: "/auth/token",
  tags: ["auth"],
  summary: "Log in: exchange email and password for tokens",
  request: { body: jsonBody(z.strictObject({ email: z.string().trim().toLowerCase().max(254), password: PasswordSchema })) },
  responses: { 200: jsonResponse(TokenPairSchema, "Access and refresh tokens"), ...errorResponses(400, 401, 429) },
});

const refreshToken = createRoute({
  method: "post",
  path: "/auth/token/refresh",
  tags: ["auth"],
  summary: "Exchange a refresh token for new tokens; the old refresh token stops working, and reusing it revokes the session",
  request: { body: jsonBody(z.strictObject({ refresh: z.string().max(4096) })) },
  responses: { 200: jsonResponse(TokenPairSchema, "New tokens"), ...errorResponses(400, 401) },
});

const logout = createRoute({
  ...authenticated("auth"),
  method: "post",
  path: "/auth/logout",
  summary: "Revoke the refresh tokens of the caller's session (access tokens lapse within 15 minutes)",
  responses: { 204: { description: "Logged out" }, ...errorResponses(401) },
});

/** Sign-ups count against the client's address and against the email address. */
const limitSignUps = (env: Env, request: Request, email: string) =>
  enforceRateLimit(env.AUTH_RATE_LIMITER, [`ip:${clientKey(request)}`, `email:${email}`], "sign-up attempts");

const INVALID_CREDENTIALS = "No active account found with the given credentials.";

export const authRoutes = createRouter()
  .openapi(register, async (c) => {
    const { email, password, name } = c.req.valid("json");
    await limitSignUps(c.env, c.req.raw, email);
    const db = directoryDb(c.env);
    const passwordHash = await hashPassword(password);
    const [user] = await db
      .insert(users)
      .values({ id: newId(), email, passwordHash, name: name ?? "", dateJoined: new Date().toISOString() })
      .onConflictDoNothing({ target: users.email })
      .returning();
    if (!user) throw new ApiError("conflict", "A user with that email already exists.", { details: [{ field: "email", message: "Already registered." }] });
    return c.json(renderUser(user), 201);
  })
  .openapi(obtainToken, async (c) => {
    const { email, password } = c.req.valid("json");
    // Every attempt counts against the client's address; only failures count against the email,
    // and a correct password always gets in: a stranger failing on purpose cannot lock the owner out.
    await enforceRateLimit(c.env.AUTH_RATE_LIMITER, [`ip:${clientKey(c.req.raw)}`], "login attempts");
    const [user] = await directoryDb(c.env).select().from(users).where(eq(users.email, email));
    // Unknown email still pays for one hash so response time does not reveal which emails exist.
    const valid = await verifyPassword(password, user?.passwordHash ?? (await getDecoyHash()));
    if (!user || !valid || !user.isActive) {
      await enforceRateLimit(c.env.AUTH_RATE_LIMITER, [`login-failures:${email}`], "failed logins for this account");
      throw new ApiError("unauthorized", INVALID_CREDENTIALS);
    }
    return c.json(await startSession(c.env, user.id), 200);
  })
  .openapi(refreshToken, async (c) => c.json(await rotateSession(c.env, c.req.valid("json").refresh), 200))
  .openapi(logout, async (c) => {
    await revokeSessions(directoryDb(c.env), { familyId: c.get("tokenFamily") });
    return c.body(null, 204);
  });
