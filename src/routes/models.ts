import { createRoute, z } from "@hono/zod-openapi";
import { getConfig } from "../http/config";
import { createRouter } from "../http/create-router";
import { jsonResponse } from "../http/schemas";

const ModelsSchema = z
  .object({ default_model: z.string(), allowed_models: z.array(z.string()) })
  .openapi("Models");

const listModels = createRoute({
  method: "get",
  path: "/models",
  tags: ["models"],
  summary: "The model_version values a conversation may use",
  responses: { 200: jsonResponse(ModelsSchema, "Allowed models and the default") },
});

export const modelRoutes = createRouter().openapi(listModels, (c) => {
  const { allowedModels, defaultModel } = getConfig(c.env);
  return c.json({ default_model: defaultModel, allowed_models: [...allowedModels] }, 200);
});
