import { parseShardMap, parseVirtualShardSet, type ShardMap } from "../db/shard-map";
import { type McpServer, parseMcpServers } from "../model/tools/mcp-config";
import { type ModelEntry, type ModelRegistry, type Provider, parseRegistry, registryOf, STAND_IN_BASE_URL } from "../model/registry";

/** Settings read from wrangler vars and secrets, parsed once per `env` object. */
export interface AppConfig {
  /** Which shard binding holds which virtual shards (SHARD_MAP). */
  shardMap: ShardMap;
  /** Virtual shards being moved to another database: their users' writes answer 503 meanwhile. */
  frozenVirtualShards: ReadonlySet<number>;
  /** The models and their providers (PROVIDERS and MODELS, or the one-provider shorthand). */
  registry: ModelRegistry;
  allowedModels: readonly string[];
  defaultModel: string;
  /** The registry's entry of a model; a model no longer listed (an older conversation's) answers as the default. */
  modelEntry: (model: string) => ModelEntry;
  maxMessageLength: number;
  /** The longest reply stored, in UTF-8 bytes: below D1's (and the object's SQLite's) 2 MB row limit. */
  maxReplyBytes: number;
  allowedOrigins: readonly string[];
  /** Where clients reach the API (PUBLIC_URL), for links in responses; null: the request's own URL. */
  publicUrl: URL | null;
  maxQueuedTurns: number;
  maxConcurrentGenerations: number;
  maxListenersPerTurn: number;
  maxListenersPerUser: number;
  /** Tokens one user may spend per UTC day; 0: no limit. */
  userDailyTokens: number;
  /** Dollars one user may spend per UTC day, at the registry's prices; 0: no limit. */
  userDailyCostUsd: number;
  /** Bytes one user may add by uploading, forking and edits that grow messages; 0: no limit. */
  userStorageBytes: number;
  /** The largest file one upload may hold. */
  maxFileBytes: number;
  /** The MCP servers whose tools turns may call (MCP_SERVERS). */
  mcpServers: readonly McpServer[];
  tools: {
    /** A server tool call's time limit. */
    timeoutMs: number;
    /** The most of a tool's output the model gets, in UTF-8 bytes. */
    maxOutputBytes: number;
    /** Model calls in one turn; the last may not call tools. */
    maxSteps: number;
  };
  /** The context window and the output allowance of a model, in tokens. */
  modelBudget: (model: string) => ModelBudget;
  model: {
    timeoutMs: number;
    /** How long a provider may take to send its first byte before the turn fails over. */
    firstByteTimeoutMs: number;
    /** After this many failures in a row a provider's circuit opens: for `circuitOpenMs` it is tried only after the others. */
    circuitFailures: number;
    circuitOpenMs: number;
    idleTimeoutMs: number;
    maxRetries: number;
    offlineTokenDelayMs: number;
  };
}

export interface ModelBudget {
  contextTokens: number;
  maxOutputTokens: number;
}

const parsed = new WeakMap<Env, AppConfig>();

/** `gpt-4:8192,gpt-4o:128000,*:8192` → a lookup by model name, `*` for any other model. */
function perModel(value: string | undefined, fallback: number): (model: string) => number {
  const table = new Map<string, number>();
  for (const entry of commaList(value ?? "")) {
    const at = entry.lastIndexOf(":");
    const n = Number(entry.slice(at + 1));
    if (at > 0 && Number.isInteger(n) && n > 0) table.set(entry.slice(0, at).trim(), n);
  }
  return (model) => table.get(model) ?? table.get("*") ?? fallback;
}

function positiveInt(value: string | undefined, fallback: number): number {
  const n = Number(value);
  return Number.isInteger(n) && n >= 0 ? n : fallback;
}

function positiveNumber(value: string | undefined, fallback: number): number {
  const n = Number(value);
  return Number.isFinite(n) && n >= 0 ? n : fallback;
}

const commaList = (value: string) =>
  value
    .split(",")
    .map((item) => item.trim())
    .filter(Boolean);

export function getConfig(env: Env): AppConfig {
  let config = parsed.get(env);
  if (!config) {
    const registry = parseRegistry(env as unknown as Record<string, unknown>) ?? shorthandRegistry(env);
    const defaultEntry = registry.models[0]!;
    config = {
      shardMap: parseShardMap(env.SHARD_MAP ?? ""),
      frozenVirtualShards: parseVirtualShardSet(env.FROZEN_VIRTUAL_SHARDS ?? ""),
      registry,
      allowedModels: registry.models.map((model) => model.id),
      defaultModel: defaultEntry.id,
      modelEntry: (model) => registry.model(model) ?? defaultEntry,
      maxMessageLength: positiveInt(env.MAX_MESSAGE_LENGTH, 32_000),
      maxReplyBytes: Math.min(positiveInt(env.MAX_REPLY_BYTES, 1_000_000), 1_500_000),
      allowedOrigins: commaList(env.ALLOWED_ORIGINS ?? ""),
      publicUrl: URL.canParse(env.PUBLIC_URL ?? "") ? new URL(env.PUBLIC_URL) : null,
      maxQueuedTurns: positiveInt(env.MAX_QUEUED_TURNS, 32),
      maxConcurrentGenerations: positiveInt(env.MAX_CONCURRENT_GENERATIONS, 50),
      maxListenersPerTurn: positiveInt(env.MAX_LISTENERS_PER_TURN, 10),
      maxListenersPerUser: positiveInt(env.MAX_LISTENERS_PER_USER, 50),
      userDailyTokens: positiveInt(env.USER_DAILY_TOKENS, 2_000_000),
      userDailyCostUsd: positiveNumber(env.USER_DAILY_COST_USD, 0),
      userStorageBytes: positiveInt(env.USER_STORAGE_BYTES, 1024 ** 3),
      maxFileBytes: positiveInt(env.MAX_FILE_BYTES, 10 * 1024 * 1024),
      mcpServers: parseMcpServers(env as unknown as Record<string, unknown>),
      tools: {
        timeoutMs: positiveInt(env.TOOL_TIMEOUT_MS, 30_000),
        maxOutputBytes: positiveInt(env.MAX_TOOL_OUTPUT_BYTES, 65_536),
        maxSteps: Math.max(1, positiveInt(env.MAX_TOOL_STEPS, 8)),
      },
      modelBudget: (model) => {
        const entry = registry.model(model) ?? defaultEntry;
        return { contextTokens: entry.contextWindow, maxOutputTokens: entry.maxOutputTokens };
      },
      model: {
        timeoutMs: positiveInt(env.MODEL_TIMEOUT_MS, 120_000),
        firstByteTimeoutMs: positiveInt(env.PROVIDER_FIRST_BYTE_TIMEOUT_MS, 15_000),
        circuitFailures: Math.max(1, positiveInt(env.PROVIDER_CIRCUIT_FAILURES, 3)),
        circuitOpenMs: positiveInt(env.PROVIDER_CIRCUIT_OPEN_MS, 30_000),
        idleTimeoutMs: positiveInt(env.MODEL_IDLE_TIMEOUT_MS, 30_000),
        maxRetries: positiveInt(env.MODEL_MAX_RETRIES, 1),
        offlineTokenDelayMs: positiveInt(env.OFFLINE_MODEL_TOKEN_DELAY_MS, 30),
      },
    };
    parsed.set(env, config);
  }
  return config;
}

/**
 * The models' own output limits, when MODEL_MAX_OUTPUT_TOKENS does not say: a reply is cut only
 * where the model would cut it (or at half its window), not at a round number for every model.
 */
const MODEL_OUTPUT_LIMITS = "gpt-4:4096,gpt-4o:16384,gpt-4o-mini:16384,gpt-4.1:32768,gpt-4.1-mini:32768,*:4096";

/**
 * ALLOWED_MODELS, DEFAULT_MODEL, MODEL_CONTEXT_TOKENS, MODEL_MAX_OUTPUT_TOKENS and
 * OPENAI_BASE_URL/OPENAI_API_KEY as a registry of one provider: OpenAI-compatible with the key,
 * the stand-in without. Every model counts as capable of everything, and has no price.
 */
function shorthandRegistry(env: Env): ModelRegistry {
  const defaultModel = env.DEFAULT_MODEL?.trim() || "gpt-4";
  const listed = commaList(env.ALLOWED_MODELS ?? "gpt-4");
  const ids = [defaultModel, ...listed.filter((id) => id !== defaultModel)];
  const apiKey = env.OPENAI_API_KEY?.trim() || null;
  const provider: Provider = apiKey
    ? { name: "openai", baseURL: env.OPENAI_BASE_URL?.trim() || "https://api.openai.com/v1", apiKey, standIn: false }
    : { name: STAND_IN_BASE_URL, baseURL: STAND_IN_BASE_URL, apiKey: null, standIn: true };
  const contextTokens = perModel(env.MODEL_CONTEXT_TOKENS, 8_192);
  const maxOutputTokens = perModel(env.MODEL_MAX_OUTPUT_TOKENS?.trim() || MODEL_OUTPUT_LIMITS, 4_096);
  const models = ids.map((id): ModelEntry => {
    const contextWindow = contextTokens(id);
    return {
      id,
      providers: [provider.name],
      upstreamModel: id,
      contextWindow,
      // An allowance as large as the window would leave no room for a prompt.
      maxOutputTokens: Math.min(maxOutputTokens(id), Math.floor(contextWindow / 2)),
      capabilities: { vision: true, tools: true, reasoning: false },
      price: null,
    };
  });
  return registryOf(models, new Map([[provider.name, provider]]));
}
