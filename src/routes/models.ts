import { createRoute, z } from "@hono/zod-openapi";
import { getConfig } from "../http/config";
import { createRouter } from "../http/create-router";
import { jsonResponse } from "../http/schemas";

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

const ModelsSchema = z
  .object({
    default_model: z.string(),
    allowed_models: z.array(z.string()),
    models: z.array(ModelSchema),
  })
  .openapi("Models");

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
