/** Settings read from wrangler vars and secrets, parsed once per `env` object. */
export interface AppConfig {
  allowedModels: readonly string[];
  defaultModel: string;
  maxMessageLength: number;
  allowedOrigins: readonly string[];
  maxQueuedTurns: number;
  maxConcurrentGenerations: number;
  model: {
    apiKey: string | undefined;
    baseURL: string;
    timeoutMs: number;
    idleTimeoutMs: number;
    maxRetries: number;
    offlineTokenDelayMs: number;
  };
}

const parsed = new WeakMap<Env, AppConfig>();

function positiveInt(value: string | undefined, fallback: number): number {
  const n = Number(value);
  return Number.isInteger(n) && n >= 0 ? n : fallback;
}

const commaList = (value: string) =>
  value
    .split(",")
    .map((item) => item.trim())
    .filter(Boolean);

export function getConfig(env: Env): AppConfig {
  let config = parsed.get(env);
  if (!config) {
    const allowedModels = commaList(env.ALLOWED_MODELS ?? "gpt-4");
    const defaultModel = env.DEFAULT_MODEL?.trim() || "gpt-4";
    config = {
      allowedModels: allowedModels.includes(defaultModel) ? allowedModels : [defaultModel, ...allowedModels],
      defaultModel,
      maxMessageLength: positiveInt(env.MAX_MESSAGE_LENGTH, 32_000),
      allowedOrigins: commaList(env.ALLOWED_ORIGINS ?? ""),
      maxQueuedTurns: positiveInt(env.MAX_QUEUED_TURNS, 32),
      maxConcurrentGenerations: positiveInt(env.MAX_CONCURRENT_GENERATIONS, 50),
      model: {
        apiKey: env.OPENAI_API_KEY?.trim() || undefined,
        baseURL: env.OPENAI_BASE_URL?.trim() || "https://api.openai.com/v1",
        timeoutMs: positiveInt(env.MODEL_TIMEOUT_MS, 120_000),
        idleTimeoutMs: positiveInt(env.MODEL_IDLE_TIMEOUT_MS, 30_000),
        maxRetries: positiveInt(env.MODEL_MAX_RETRIES, 1),
        offlineTokenDelayMs: positiveInt(env.OFFLINE_MODEL_TOKEN_DELAY_MS, 30),
      },
    };
    parsed.set(env, config);
  }
  return config;
}
