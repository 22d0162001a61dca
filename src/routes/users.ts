import { createRoute } from "@hono/zod-openapi";
import { eq } from "drizzle-orm";
import { createRouter } from "../create-router";
import { getDb } from "../db/client";
import { users } from "../db/schema";
import { notFound } from "../errors";
import { authenticated } from "../middleware";
import { errorResponses, jsonResponse, renderUser, UserSchema } from "../schemas";

const me = createRoute({
  method: "get",
  path: "/users/me",
  ...authenticated("users"),
  summary: "The current user",
  responses: { 200: jsonResponse(UserSchema, "The current user"), ...errorResponses(401) },
});

export const userRoutes = createRouter().openapi(me, async (c) => {
  const user = await getDb(c.env).query.users.findFirst({ where: eq(users.id, c.get("userId")) });
  if (!user) throw notFound("User");
  return c.json(renderUser(user), 200);
});
