import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { createApp } from "../src/app";
import { getConfig } from "../src/http/config";
import { call, callJson, createUser, expectError, rowsInShards, setObjectEnv, type TestUser, eventually } from "./helpers";
import { collectFrames, deltaText } from "./sse";

const PRICE = { input: 2.5, output: 10 };
let registries = 0;

/**
 * An env whose registry serves gpt-4 (every test conversation's model) from two stand-in
 * providers, `primary` then `backup`, with fresh names so no other test shares their circuits.
 */
function twoProviders(overrides: Record<string, string> = {}) {
  const n = ++registries;
  const primary = `primary-${n}`;
  const backup = `backup-${n}`;
  const registryEnv = {
    ...env,
    PROVIDERS: JSON.stringify({ [primary]: { base_url: "stand-in" }, [backup]: { base_url: "stand-in" } }),
    MODELS: JSON.stringify([{ id: "gpt-4", providers: [primary, backup], context_window: 128_000, max_output_tokens: 20_000, tools: true, price: PRICE }]),
    PROVIDER_FIRST_BYTE_TIMEOUT_MS: "300",
    PROVIDER_CIRCUIT_OPEN_MS: "600",
    ...overrides,
  } as Env;
  return { primary, backup, env: registryEnv };
}

/** A conversation whose object runs with `objectEnv`. */
async function conversationWith(objectEnv: Env): Promise<{ user: TestUser; id: string }> {
  const user = await createUser();
  const { id } = await callJson("/conversations/", { token: user.access, body: {}, status: 201 });
  await setObjectEnv(id, objectEnv);
  return { user, id };
}

const send = (user: TestUser, id: string, content: string, extra: object = {}) => call(`/conversations/${id}/add_message/`, { token: user.access, body: { content, ...extra } });

async function turn(user: TestUser, id: string, content: string, status = 201) {
  const response = await send(user, id, content);
  const body = await response.json<any>();
  expect(response.status, JSON.stringify(body)).toBe(status);
  return body.ai_response;
}

const outcomes = (response: { attempts: { provider: string; outcome: string }[] }) => response.attempts.map(({ provider, outcome }) => `${provider} ${outcome}`);

describe("failover between providers", () => {
  for (const [kind, directive, outcome] of [
    ["a 503", "status=503", "http_503"],
    ["a 429", "status=429", "http_429"],
    ["a refused connection", "refuse=1", "connection_error"],
    ["silence past the first-byte limit", "first_byte=5000", "timeout"],
  ]) {
    it(`moves on to the next provider after ${kind} before the first token`, async () => {
      const registry = twoProviders();
      const { user, id } = await conversationWith(registry.env);
      const reply = await turn(user, id, `[stub: tokens=4] [stub@${registry.primary}: ${directive}] hello`);
      expect(reply).toMatchObject({ status: "Completed", provider: registry.backup, response_content: "w1 w2 w3 w4" });
      expect(outcomes(reply)).toEqual([`${registry.primary} ${outcome}`, `${registry.backup} ok`]);
      if (outcome === "timeout") expect(reply.attempts[0].ms).toBeGreaterThanOrEqual(300);
    });
  }

  it("does not fail over on a refusal the next provider would repeat (HTTP 400)", async () => {
    const registry = twoProviders();
    const { user, id } = await conversationWith(registry.env);
    const reply = await turn(user, id, `[stub@${registry.primary}: status=400] hello`, 502);
    expect(reply).toMatchObject({ status: "Error", error_code: "upstream_error", provider: null });
    expect(outcomes(reply)).toEqual([`${registry.primary} http_400`]);
  });

  it("never mixes two providers' text: a failure after the first token is the reply's", async () => {
    const registry = twoProviders();
    const { user, id } = await conversationWith(registry.env);
    const frames = await collectFrames(
      await call(`/conversations/${id}/add_message/`, {
        token: user.access,
        headers: { Accept: "text/event-stream" },
        body: { content: `[stub: tokens=6] [stub@${registry.primary}: fail_after=2] hello` },
      }),
    );
    const done = frames.at(-1)!;
    expect(done.event).toBe("error");
    expect(deltaText(frames)).toBe("w1 w2");
    expect(done.data).toMatchObject({ ai_message: { content: "w1 w2" }, ai_response: { status: "Error", provider: registry.primary } });
    expect(outcomes(done.data.ai_response)).toEqual([`${registry.primary} ok`]);
  });

  it("fails the turn when every provider fails, having asked each once", async () => {
    const registry = twoProviders();
    const { user, id } = await conversationWith(registry.env);
    const reply = await turn(user, id, "[stub: status=503] hello", 502);
    expect(reply).toMatchObject({ status: "Error", error_code: "upstream_error", provider: null });
    expect(outcomes(reply)).toEqual([`${registry.primary} http_503`, `${registry.backup} http_503`]);
  });

  it("reports a provider's 429 as upstream_rate_limited with its Retry-After, retrying only when the wait fits the idle limit", async () => {
    const registry = twoProviders({ MODEL_MAX_RETRIES: "1" });
    const { user, id } = await conversationWith(registry.env);
    const response = await send(user, id, "[stub: status=429 retry_after=60] busy everywhere");
    const body = await response.json<any>();
    expect(response.status).toBe(502);
    expect(response.headers.get("Retry-After")).toBe("60");
    expect(body.error.details).toEqual({ code: "upstream_rate_limited" });
    expect(body.ai_response).toMatchObject({ status: "Error", error_code: "upstream_rate_limited" });
    // The first provider is left at once; the last one is not retried: 60 s is past the idle limit.
    expect(outcomes(body.ai_response)).toEqual([`${registry.primary} http_429`, `${registry.backup} http_429`]);

    const soon = await (await send(user, id, "[stub: status=429 retry_after=0] briefly busy")).json<any>();
    expect(outcomes(soon.ai_response)).toEqual([`${registry.primary} http_429`, `${registry.backup} http_429`, `${registry.backup} http_429`]);
  });

  it("asks a provider that failed 3 times in a row last until its circuit closes again", { timeout: 20_000 }, async () => {
    const registry = twoProviders();
    const { user, id } = await conversationWith(registry.env);
    const failing = `[stub: tokens=2] [stub@${registry.primary}: status=503]`;
    for (let i = 0; i < 3; i++) expect(outcomes(await turn(user, id, failing))).toEqual([`${registry.primary} http_503`, `${registry.backup} ok`]);
    // Open: the failing provider costs nothing while the other answers.
    expect(outcomes(await turn(user, id, failing))).toEqual([`${registry.backup} ok`]);
    await new Promise((resolve) => setTimeout(resolve, 700));
    // Half-open: asked first again; one failure opens it at once.
    expect(outcomes(await turn(user, id, failing))).toEqual([`${registry.primary} http_503`, `${registry.backup} ok`]);
    expect(outcomes(await turn(user, id, "[stub: tokens=2] healthy again"))).toEqual([`${registry.backup} ok`]);
    await new Promise((resolve) => setTimeout(resolve, 700));
    // Closed by a success: first in line from then on.
    expect(outcomes(await turn(user, id, "[stub: tokens=2] healthy again"))).toEqual([`${registry.primary} ok`]);
    expect(outcomes(await turn(user, id, "[stub: tokens=2] still healthy"))).toEqual([`${registry.primary} ok`]);
  });
});

describe("what a reply records and costs", () => {
  it("stores provider, attempts and cost_usd in the object and in D1, and counts the cost in the day's usage", async () => {
    const registry = twoProviders();
    const { user, id } = await conversationWith(registry.env);
    const reply = await turn(user, id, `[stub: tokens=7] [stub@${registry.primary}: status=502] price me`);
    const { prompt_tokens, completion_tokens } = reply.usage;
    const expected = (prompt_tokens * PRICE.input + completion_tokens * PRICE.output) / 1_000_000;
    expect(reply.cost_usd).toBeCloseTo(expected, 10);
    expect(reply.provider).toBe(registry.backup);

    const listed = await callJson(`/conversations/${id}/messages/`, { token: user.access, status: 200 });
    expect(listed.results[1]).toMatchObject({ provider: registry.backup, cost_usd: reply.cost_usd });

    const [stored] = await eventually(
      () => rowsInShards<{ provider: string; attempts: string; cost_usd: number }>("SELECT provider, attempts, cost_usd FROM ai_responses WHERE id = ?", reply.id),
      (rows) => rows[0]?.cost_usd != null,
    );
    expect(stored!.provider).toBe(registry.backup);
    expect(JSON.parse(stored!.attempts)).toEqual(reply.attempts);
    expect(stored!.cost_usd).toBeCloseTo(expected, 10);
    const usage = await eventually(
      () => callJson("/users/me/usage/", { token: user.access, status: 200 }),
      (today) => today.cost_usd > 0,
    );
    expect(usage).toMatchObject({ tokens_used: reply.usage.total_tokens, daily_cost_limit_usd: null });
    expect(usage.cost_usd).toBeCloseTo(expected, 10);
    const [day] = await eventually(
      () => rowsInShards<{ cost_usd: number }>("SELECT cost_usd FROM usage_daily WHERE user_id = ?", user.id),
      (rows) => (rows[0]?.cost_usd ?? 0) > 0,
    );
    expect(day!.cost_usd).toBeCloseTo(expected, 10);
  });

  it("refuses turns once USER_DAILY_COST_USD is spent, with 429 budget_exceeded", async () => {
    const registry = twoProviders();
    const { user, id } = await conversationWith(registry.env);
    const reply = await turn(user, id, "[stub: tokens=5] spend");
    await eventually(() => callJson("/users/me/usage/", { token: user.access, status: 200 }), (today) => today.cost_usd > 0);
    const refused = await createApp().request(
      `/conversations/${id}/add_message/`,
      { method: "POST", headers: { Authorization: `Bearer ${user.access}`, "Content-Type": "application/json" }, body: JSON.stringify({ content: "one more" }) },
      { ...registry.env, USER_DAILY_COST_USD: String(reply.cost_usd) },
    );
    const error = await expectError(refused, 429, "budget_exceeded");
    expect(error.message).toContain(`$${reply.cost_usd} budget`);
    expect(error.details).toMatchObject({ daily_cost_limit_usd: reply.cost_usd, daily_limit: 2_000_000 });
    expect(error.details.cost_usd).toBeCloseTo(reply.cost_usd, 10);
  });

  it("sends the model's own output allowance upstream, or what the turn or conversation asks for", async () => {
    const registry = twoProviders();
    const { user, id } = await conversationWith(registry.env);
    const long = await turn(user, id, "[stub: tokens=3500 delay=0] write at length");
    expect(long).toMatchObject({ status: "Completed", finish_reason: "stop", max_output_tokens: 20_000 });
    expect(long.usage.completion_tokens).toBe(3_500);

    const response = await send(user, id, "[stub: tokens=100 delay=0] a short one", { max_output_tokens: 40 });
    const short = (await response.json<any>()).ai_response;
    expect(short).toMatchObject({ finish_reason: "length", max_output_tokens: 40 });
    expect(short.usage.completion_tokens).toBe(40);

    const patched = await callJson(`/conversations/${id}/`, { method: "PATCH", token: user.access, body: { max_output_tokens: 30 }, status: 200 });
    expect(patched.max_output_tokens).toBe(30);
    expect(await turn(user, id, "[stub: tokens=100 delay=0] the conversation's")).toMatchObject({ finish_reason: "length", max_output_tokens: 30 });

    const tooMuch = await expectError(await send(user, id, "more than the model writes", { max_output_tokens: 20_001 }), 400, "validation_failed");
    expect(JSON.stringify(tooMuch.details)).toContain("max_output_tokens");
  });
});

describe("the registry in configuration", () => {
  const withRegistry = (providers: unknown, models: unknown, extra: Record<string, unknown> = {}) => ({ ...env, PROVIDERS: providers, MODELS: models, ...extra }) as unknown as Env;
  const gpt4o = { id: "gpt-4o", providers: ["openai"], context_window: 128_000, max_output_tokens: 16_384, vision: true, tools: true, price: { input: 2.5, output: 10 } };

  it("takes a TOML table (an object) or a JSON string, and reads each provider's key from the secret it names", () => {
    const providers = { openai: { base_url: "https://api.openai.com/v1", api_key: "OPENAI_KEY" }, local: { base_url: "http://localhost:11434/v1" } };
    const models = [gpt4o, { id: "llama3.1", providers: ["local"], context_window: 131_072, max_output_tokens: 8_192 }];
    for (const config of [
      getConfig(withRegistry(providers, models, { OPENAI_KEY: "sk-test" })),
      getConfig(withRegistry(JSON.stringify(providers), JSON.stringify(models), { OPENAI_KEY: "sk-test" })),
    ]) {
      expect(config.defaultModel).toBe("gpt-4o");
      expect(config.allowedModels).toEqual(["gpt-4o", "llama3.1"]);
      expect(config.registry.providers.get("openai")).toMatchObject({ apiKey: "sk-test", standIn: false });
      expect(config.registry.providers.get("local")).toMatchObject({ apiKey: null, baseURL: "http://localhost:11434/v1" });
      expect(config.modelEntry("llama3.1")).toMatchObject({ capabilities: { vision: false, tools: false, reasoning: false }, price: null, upstreamModel: "llama3.1" });
      expect(config.modelBudget("gpt-4o")).toEqual({ contextTokens: 128_000, maxOutputTokens: 16_384 });
    }
  });

  it("keeps the one-provider shorthand: OPENAI_BASE_URL with OPENAI_API_KEY, or the stand-in without a key", () => {
    const standIn = getConfig(env);
    expect([...standIn.registry.providers.values()]).toEqual([{ name: "stand-in", baseURL: "stand-in", apiKey: null, standIn: true }]);
    expect(standIn.modelEntry("gpt-4o")).toMatchObject({ providers: ["stand-in"], capabilities: { vision: true, tools: true } });
    const openai = getConfig({ ...env, OPENAI_API_KEY: "sk-live", OPENAI_BASE_URL: "https://gateway.example/v1" } as Env);
    expect([...openai.registry.providers.values()]).toEqual([{ name: "openai", baseURL: "https://gateway.example/v1", apiKey: "sk-live", standIn: false }]);
  });

  for (const [problem, providers, models, message] of [
    ["an unknown provider", { openai: { base_url: "https://api.openai.com/v1" } }, [{ ...gpt4o, providers: ["openai", "azure"] }], 'MODELS[0].providers[1]: unknown provider "azure".'],
    ["a window smaller than its output allowance", { openai: { base_url: "https://x.example/v1" } }, [{ ...gpt4o, context_window: 8_000 }], "MODELS[0].context_window:"],
    ["a missing secret", { openai: { base_url: "https://x.example/v1", api_key: "NO_SUCH_SECRET" } }, [gpt4o], "PROVIDERS.openai.api_key: the secret NO_SUCH_SECRET is not set."],
    ["a field of the wrong type", { openai: { base_url: "https://x.example/v1" } }, [{ ...gpt4o, max_output_tokens: "lots" }], "MODELS[0].max_output_tokens:"],
    ["a base URL that is not http(s)", { openai: { base_url: "file:///etc/passwd" } }, [gpt4o], "PROVIDERS.openai.base_url: must be an http(s) URL"],
    ["JSON that does not parse", "{not json", [gpt4o], "PROVIDERS: not valid JSON."],
    ["MODELS without PROVIDERS", "", [gpt4o], "PROVIDERS: required when MODELS is set."],
  ] as const) {
    it(`refuses ${problem}, naming the field`, async () => {
      const broken = withRegistry(providers, models);
      expect(() => getConfig(broken)).toThrow(message);
      const error = await expectError(await createApp().request("/models/", {}, broken), 500, "misconfigured");
      expect(error.message).toContain(message);
    });
  }

  it("lists each model with its capabilities, window, output allowance and prices", async () => {
    const registry = twoProviders();
    const listed = await (await createApp().request("/models/", {}, registry.env)).json();
    expect(listed).toEqual({
      default_model: "gpt-4",
      allowed_models: ["gpt-4"],
      models: [
        {
          id: "gpt-4",
          context_window: 128_000,
          max_output_tokens: 20_000,
          capabilities: { vision: false, tools: true, reasoning: false },
          price: PRICE,
          providers: 2,
        },
      ],
    });
  });
});
