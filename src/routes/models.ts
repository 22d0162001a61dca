import { createRoute } from "@hono/zod-openapi";
import { getConfig } from "../http/config";
import { createRouter } from "../http/create-router";
import { jsonResponse, ModelsSchema } from "../http/schemas";

const listModels = createRoute({
  method: "get",
  path: "/models",
  tags: ["models"],
  summary: "The models a conversation may use, with their capabilities, window, output allowance and prices",
  responses: { 200: jsonResponse(ModelsSchema, "The models; the first is the default") },
});

export const modelRoutes = createRouter().openapi(listModels, (c) => {
  const { allowedModels, defaultModel, registry } = getConfig(c.env);
  // Provider names, URLs and keys are the deployer's: a client learns only how many there are.
  const models = registry.models.map((model) => ({
    id: model.id,
    context_window: model.contextWindow,
    max_output_tokens: model.maxOutputTokens,
    capabilities: model.capabilities,
    price: model.price,
    providers: model.providers.length,
  }));
  return c.json({ default_model: defaultModel, allowed_models: [...allowedModels], models }, 200);
});
