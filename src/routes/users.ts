import { createRoute, z } from "@hono/zod-openapi";
import { eq } from "drizzle-orm";
import { NewPasswordSchema, PasswordSchema } from "../rules/account-rules";
import { getConfig } from "../http/config";
import { createRouter } from "../http/create-router";
import { directoryDb } from "../db/client";
import { users } from "../db/schema";
import { invalid, notFound } from "../http/errors";
import { hashPassword, verifyPassword } from "../lib/password";
import { enforceRateLimit } from "../lib/rate-limit";
import { revokeSessions } from "../rules/sessions";
import { authenticated } from "../http/middleware";
import { errorResponses, jsonBody, jsonResponse, renderUser, UserSchema } from "../http/schemas";
import { userObject } from "../user/user-object";
import { eraseAccount } from "../user/erase-account";
import { log } from "../lib/log";

const me = createRoute({
  method: "get",
  path: "/users/me",
  ...authenticated("users"),
  summary: "The current user",
  responses: { 200: jsonResponse(UserSchema, "The current user"), ...errorResponses(401) },
});

const changePassword = createRoute({
  ...authenticated("users"),
  method: "post",
  path: "/users/me/password",
  summary: "Change your password; every session (refresh token) is revoked",
  request: { body: jsonBody(z.strictObject({ old_password: PasswordSchema, new_password: NewPasswordSchema })) },
  responses: { 204: { description: "Changed" }, ...errorResponses(400, 401, 415, 429) },
});

const usage = createRoute({
  ...authenticated("users"),
  method: "get",
  path: "/users/me/usage",
  summary: "Tokens and dollars spent today against the daily budgets (USER_DAILY_TOKENS, USER_DAILY_COST_USD)",
  responses: {
    200: jsonResponse(
      z
        .object({
          day: z.string().openapi({ description: "The UTC day counted, YYYY-MM-DD." }),
          tokens_used: z.number().int(),
          daily_limit: z.number().int().nullable().openapi({ description: "Null: no limit." }),
          cost_usd: z.number().openapi({ description: "At the registry's prices; replies of models without a price count 0." }),
          daily_cost_limit_usd: z.number().nullable().openapi({ description: "Null: no limit." }),
          resets_at: z.string(),
        })
        .openapi("Usage"),
      "Today's usage",
    ),
    ...errorResponses(401),
  },
});

const deleteAccount = createRoute({
  ...authenticated("users"),
  method: "delete",
  path: "/users/me",
  summary: "Delete your account and everything in it: conversations, messages, files, shares, sessions",
  request: { body: jsonBody(z.strictObject({ password: PasswordSchema.openapi({ description: "Your password, once more." }) })) },
  responses: { 204: { description: "Deleted" }, ...errorResponses(400, 401, 415, 429) },
});

async function currentUser(env: Env, userId: string) {
  const [user] = await directoryDb(env).select().from(users).where(eq(users.id, userId));
  if (!user) throw notFound("User");
  return user;
}

export const userRoutes = createRouter()
  .openapi(me, async (c) => c.json(renderUser(await currentUser(c.env, c.get("userId"))), 200))
  .openapi(usage, async (c) => {
    // The user's object counts the day's tokens; D1's usage_daily trails it.
    const today = await userObject(c.env, c.get("userId")).usage(c.get("userId"));
    const { userDailyTokens, userDailyCostUsd } = getConfig(c.env);
    return c.json(
      {
        day: today.day,
        tokens_used: today.tokens,
        daily_limit: userDailyTokens > 0 ? userDailyTokens : null,
        cost_usd: today.costUsd,
        daily_cost_limit_usd: userDailyCostUsd > 0 ? userDailyCostUsd : null,
        resets_at: today.resetsAt,
      },
      200,
    );
  })
  .openapi(changePassword, async (c) => {
    const { old_password, new_password } = c.req.valid("json");
    // Guessing the old password with a stolen access token is bounded like guessing a login.
    await enforceRateLimit(c.env.AUTH_RATE_LIMITER, [`password-change:${c.get("userId")}`], "password change attempts");
    const user = await currentUser(c.env, c.get("userId"));
    if (!(await verifyPassword(old_password, user.passwordHash))) {
      throw invalid({ field: "old_password", message: "Incorrect password." });
    }
    const db = directoryDb(c.env);
    await db.batch([
      db.update(users).set({ passwordHash: await hashPassword(new_password) }).where(eq(users.id, user.id)),
      revokeSessions(db, { userId: user.id }),
    ]);
    return c.body(null, 204);
  })
  .openapi(deleteAccount, async (c) => {
    const { password } = c.req.valid("json");
    await enforceRateLimit(c.env.AUTH_RATE_LIMITER, [`account-delete:${c.get("userId")}`], "account deletion attempts");
    const user = await currentUser(c.env, c.get("userId"));
    if (!(await verifyPassword(password, user.passwordHash))) throw invalid({ field: "password", message: "Incorrect password." });
    const erased = await eraseAccount(c.env, user.id);
    log.info("account deleted", { user_id: user.id, ...erased });
    return c.body(null, 204);
  });
