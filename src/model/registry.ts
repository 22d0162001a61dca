import { z } from "@hono/zod-openapi";

/** Where a model is served: an OpenAI-compatible base URL and its key, or the built-in stand-in. */
export interface Provider {
  name: string;
  baseURL: string;
  /** The key's value (read from the secret the registry names); null: the server needs none. */
  apiKey: string | null;
  /** The offline stand-in (`base_url = "stand-in"`): answered in-process, no network. */
  standIn: boolean;
}

export interface Capabilities {
  vision: boolean;
  tools: boolean;
  reasoning: boolean;
}

/** USD per million tokens. */
export interface Price {
  input: number;
  output: number;
}

export interface ModelEntry {
  id: string;
  /** Provider names, in order of preference: a turn fails over along this list. */
  providers: readonly string[];
  /** The name the providers know the model by. */
  upstreamModel: string;
  contextWindow: number;
  maxOutputTokens: number;
  capabilities: Capabilities;
  /** null: unknown, so replies carry no cost. */
  price: Price | null;
}

export interface ModelRegistry {
  /** The first is the default model. */
  models: readonly ModelEntry[];
  providers: ReadonlyMap<string, Provider>;
  model(id: string): ModelEntry | undefined;
}

/** A registry (or MCP_SERVERS) that cannot be used, with the field at fault in its message. */
export class RegistryError extends Error {}

export const STAND_IN_BASE_URL = "stand-in";

const providerSchema = z.strictObject({
  base_url: z.string().refine((url) => url === STAND_IN_BASE_URL || /^https?:\/\/[^/]/.test(url), `must be an http(s) URL or "${STAND_IN_BASE_URL}"`),
  api_key: z.string().min(1).optional(),
});

const tokens = z.number().int().positive();
const modelSchema = z.strictObject({
  id: z.string().min(1).max(100),
  providers: z.array(z.string()).min(1),
  upstream_model: z.string().min(1).optional(),
  context_window: tokens,
  max_output_tokens: tokens,
  vision: z.boolean().default(false),
  tools: z.boolean().default(false),
  reasoning: z.boolean().default(false),
  price: z.strictObject({ input: z.number().nonnegative(), output: z.number().nonnegative() }).optional(),
});

const fieldPath = (root: string, path: PropertyKey[]) => path.reduce<string>((at, key) => (typeof key === "number" ? `${at}[${key}]` : `${at}.${String(key)}`), root);

/** A TOML table from [vars] arrives as an object; `--var` and secrets as a JSON string. */
export function parseTable<T>(root: string, raw: unknown, schema: z.ZodType<T>): T {
  let value = raw;
  if (typeof raw === "string") {
    try {
      value = JSON.parse(raw);
    } catch {
      throw new RegistryError(`${root}: not valid JSON.`);
    }
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new RegistryError(`${fieldPath(root, issue.path)}: ${issue.message}.`);
  }
  return parsed.data;
}

export const isSet = (raw: unknown) => raw !== undefined && raw !== null && !(typeof raw === "string" && raw.trim() === "");

/** The registry of PROVIDERS and MODELS, or null when neither is set (the shorthand applies). */
export function parseRegistry(env: Record<string, unknown>): ModelRegistry | null {
  if (!isSet(env.PROVIDERS) && !isSet(env.MODELS)) return null;
  if (!isSet(env.PROVIDERS)) throw new RegistryError("PROVIDERS: required when MODELS is set.");
  if (!isSet(env.MODELS)) throw new RegistryError("MODELS: required when PROVIDERS is set.");
  const providerTable = parseTable("PROVIDERS", env.PROVIDERS, z.record(z.string().regex(/^[\w.-]{1,64}$/, "provider names are letters, digits, _ . -"), providerSchema));
  const providers = new Map<string, Provider>();
  for (const [name, { base_url, api_key }] of Object.entries(providerTable)) {
    const key = api_key === undefined ? null : env[api_key];
    if (api_key !== undefined && (typeof key !== "string" || key.trim() === "")) {
      throw new RegistryError(`PROVIDERS.${name}.api_key: the secret ${api_key} is not set.`);
    }
    providers.set(name, { name, baseURL: base_url, apiKey: typeof key === "string" ? key.trim() : null, standIn: base_url === STAND_IN_BASE_URL });
  }
  const entries = parseTable("MODELS", env.MODELS, z.array(modelSchema).min(1));
  const models = entries.map((entry, i): ModelEntry => {
    entry.providers.forEach((name, j) => {
      if (!providers.has(name)) throw new RegistryError(`MODELS[${i}].providers[${j}]: unknown provider "${name}".`);
    });
    if (entry.context_window <= entry.max_output_tokens) {
      throw new RegistryError(`MODELS[${i}].context_window: ${entry.context_window} leaves no room for a prompt beside max_output_tokens ${entry.max_output_tokens}.`);
    }
    if (entries.findIndex((other) => other.id === entry.id) !== i) throw new RegistryError(`MODELS[${i}].id: "${entry.id}" is listed twice.`);
    return {
      id: entry.id,
      providers: entry.providers,
      upstreamModel: entry.upstream_model ?? entry.id,
      contextWindow: entry.context_window,
      maxOutputTokens: entry.max_output_tokens,
      capabilities: { vision: entry.vision, tools: entry.tools, reasoning: entry.reasoning },
      price: entry.price ?? null,
    };
  });
  return registryOf(models, providers);
}

export function registryOf(models: ModelEntry[], providers: Map<string, Provider>): ModelRegistry {
  const byId = new Map(models.map((model) => [model.id, model]));
  return { models, providers, model: (id) => byId.get(id) };
}
