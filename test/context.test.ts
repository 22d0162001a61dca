import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { getConfig } from "../src/http/config";
import { call, callJson, countInShards, createUser, expectError, rowsInShards, shardOf, type TestUser } from "./helpers";
import { collectFrames } from "./sse";

// vitest.config.ts: `small-window` has a 1,200-token window and a 100-token output allowance;
// gpt-4 8,192 and 1,024. The offline stand-in enforces the same windows with its own count.
const SMALL = { context: 1200, output: 100 };

const bytes = (text: string) => new TextEncoder().encode(text).length;
/** The stand-in's count of a prompt (src/model/offline-model.ts). */
const standInCount = (contents: string[]) => contents.reduce((n, c) => n + Math.ceil(bytes(c) / 4) + 4, 3);

const filler = (words: number, seed: number) => Array.from({ length: words }, (_, i) => `word${(i * 7 + seed) % 97}`).join(" ");

async function listAll(user: TestUser, conversationId: string) {
  const messages: any[] = [];
  for (let page = 1; ; page++) {
    const body = await callJson(`/conversations/${conversationId}/messages/?page=${page}`, { token: user.access, status: 200 });
    messages.push(...body.results);
    if (!body.next) return messages;
  }
}

afterEach(() => vi.restoreAllMocks());

describe("long conversations", () => {
  it("keep working for 200 turns through a small window: newest messages always sent, the rest summarised", { timeout: 120_000 }, async () => {
    // 200 turns from one user would pass the 100-a-minute turn limit, which is not under test here.
    vi.spyOn(env.TURN_RATE_LIMITER, "limit").mockResolvedValue({ success: true });
    const user = await createUser();
    const { id } = await callJson("/conversations/", { token: user.access, body: { model_version: "small-window" }, status: 201 });
    const turns: any[] = [];
    for (let i = 0; i < 200; i++) {
      const content = `[stub: tokens=5 delay=0] turn ${i}: ${filler(60 + (i % 5) * 20, i)}`;
      const turn = await callJson(`/conversations/${id}/add_message/`, { token: user.access, body: { content }, status: 201 });
      turns.push(turn);
      const { context, status } = turn.ai_response;
      expect(status).toBe("Completed");
      // What was sent, plus the output allowance, fits the window (the stand-in would have refused otherwise).
      expect(context.prompt_tokens + SMALL.output).toBeLessThanOrEqual(SMALL.context);
      // The window is a run of the newest messages, ending with the one just sent.
      expect(context.first_order + context.messages - 1).toBe(turn.user_message.order);
    }
    const last = turns.at(-1).ai_response.context;
    expect(last.first_order).toBeGreaterThan(300);
    expect(last.messages).toBeGreaterThanOrEqual(3);

    const summaries = await shardOf(user.id)
      .prepare(`SELECT through_order, content FROM summaries WHERE conversation_id = ? ORDER BY through_order`)
      .bind(id)
      .all<{ through_order: number; content: string }>();
    expect(summaries.results.length).toBeGreaterThan(10);
    const summarised = turns.slice(20).filter((t) => t.ai_response.context.summary_through_order !== null);
    expect(summarised.length).toBeGreaterThan(150);
    for (const turn of summarised) expect(turn.ai_response.context.summary_through_order).toBeLessThan(turn.ai_response.context.first_order);

    // `context` is exactly what the upstream received: recount the last prompt as the stand-in does.
    const summary = summaries.results.find((s) => s.through_order === last.summary_through_order)!;
    const branch = await listAll(user, id);
    const sent = branch.filter((m) => m.order >= last.first_order && m.order <= turns.at(-1).user_message.order);
    expect(sent).toHaveLength(last.messages);
    expect(last.prompt_tokens).toBe(standInCount([`Summary of the earlier conversation:\n${summary.content}`, ...sent.map((m) => m.content)]));

    // Listings show what each reply's model was given.
    expect(branch.at(-1)).toMatchObject({ sender: "ai", finish_reason: "stop", context: last });

    // A regenerate far back in the tree uses that branch's own window and summary.
    const old = turns[100];
    const regenerated = await callJson(`/messages/${old.ai_message.id}/regenerate/`, { token: user.access, method: "POST", status: 201 });
    const window = regenerated.ai_response.context;
    expect(window.first_order + window.messages - 1).toBe(old.user_message.order);
    if (window.summary_through_order !== null) expect(window.summary_through_order).toBeLessThan(window.first_order);
  });

  it("keeps answering when summarising fails", async () => {
    const user = await createUser();
    const { id } = await callJson("/conversations/", { token: user.access, body: { model_version: "small-window" }, status: 201 });
    // Every summary request starts with this message, and the stand-in obeys its directive: HTTP 500.
    await callJson(`/conversations/${id}/add_message/`, { token: user.access, body: { content: "[stub: status=500] first" }, status: 502 });
    for (let i = 0; i < 12; i++) {
      const turn = await callJson(`/conversations/${id}/add_message/`, { token: user.access, body: { content: `[stub: tokens=3 delay=0] ${filler(90, i)}` }, status: 201 });
      expect(turn.ai_response.status).toBe("Completed");
    }
    const last = await callJson(`/conversations/${id}/add_message/`, { token: user.access, body: { content: "[stub: tokens=3] last" }, status: 201 });
    expect(last.ai_response.context).toMatchObject({ summary_through_order: null });
    expect(last.ai_response.context.first_order).toBeGreaterThan(3);
    const summaries = await countInShards("SELECT count(*) AS n FROM summaries WHERE conversation_id = ?", id);
    expect(summaries).toBe(0);
  });

  it("answers 413 context_length_exceeded and stores nothing when the message alone cannot fit", async () => {
    const user = await createUser();
    const system_prompt = filler(470, 1); // about 1,020 tokens by our count, of 1,097 for the prompt
    const message = `[stub: tokens=2] ${filler(100, 2)}`; // about 220 more
    const error = await expectError(
      await call("/start_conversation/", { token: user.access, body: { content: message, model_version: "small-window", system_prompt } }),
      413,
      "context_length_exceeded",
    );
    expect(error.message).toContain("small-window");
    expect((await callJson("/conversations/", { token: user.access, status: 200 })).count).toBe(0);

    const { id } = await callJson("/conversations/", { token: user.access, body: { model_version: "small-window", system_prompt }, status: 201 });
    await expectError(await call(`/conversations/${id}/add_message/`, { token: user.access, body: { content: message } }), 413, "context_length_exceeded");
    const stored = await countInShards("SELECT count(*) AS n FROM messages WHERE conversation_id = ?", id);
    expect(stored).toBe(0);
    // A short one still fits.
    await callJson(`/conversations/${id}/add_message/`, { token: user.access, body: { content: "[stub: tokens=2] hi" }, status: 201 });
  });

  it("retries once with a tighter budget when the provider counts more than we do, then fails as context_length_exceeded", async () => {
    const user = await createUser();
    const { id } = await callJson("/conversations/", { token: user.access, body: { model_version: "gpt-4" }, status: 201 });
    for (let i = 0; i < 12; i++) {
      await callJson(`/conversations/${id}/add_message/`, { token: user.access, body: { content: `[stub: tokens=2] ${filler(220, i)}`.slice(0, 2000) }, status: 201 });
    }
    // Here the stand-in counts 1.3 times what it usually does (and what we learnt from it): the
    // full selection, about 7,100 tokens by our count, is refused; the one at 75% of our budget fits.
    const retried = await callJson(`/conversations/${id}/add_message/`, { token: user.access, body: { content: "[stub: tokens=2 prompt_factor=1.3] again" }, status: 201 });
    expect(retried.ai_response).toMatchObject({ status: "Completed", finish_reason: "stop" });
    expect(retried.ai_response.context.prompt_tokens + 1024).toBeLessThanOrEqual(8192);
    const untightened = await callJson(`/conversations/${id}/add_message/`, { token: user.access, body: { content: "[stub: tokens=2] and again" }, status: 201 });
    expect(untightened.ai_response.context.messages).toBeGreaterThan(retried.ai_response.context.messages);

    const failed = await call(`/conversations/${id}/add_message/`, { token: user.access, body: { content: "[stub: tokens=2 context=1500] once more" } });
    const body = await failed.json<any>();
    expect(failed.status).toBe(502);
    expect(body.error.details).toEqual({ code: "context_length_exceeded" });
    expect(body.ai_response).toMatchObject({ status: "Error", error_code: "context_length_exceeded" });
    expect(body.user_message.content).toBe("[stub: tokens=2 context=1500] once more");
  });

  it("stores a reply cut off by the output limit as Completed with finish_reason length, and sends context in the SSE frames", async () => {
    const user = await createUser();
    const frames = await collectFrames(
      await call("/start_conversation/", {
        token: user.access,
        headers: { Accept: "text/event-stream" },
        body: { content: "[stub: tokens=150 delay=0] go long", model_version: "small-window" },
      }),
    );
    const done = frames.at(-1)!;
    expect(done.event).toBe("done");
    expect(done.data.ai_response).toMatchObject({ status: "Completed", finish_reason: "length", usage: { completion_tokens: SMALL.output } });
    expect(done.data.ai_message.content.split(" ")).toHaveLength(SMALL.output);
    expect(frames[0]!.data.context).toMatchObject({ first_order: 1, messages: 1, summary_through_order: null });
    expect(done.data.ai_response.context).toMatchObject({ first_order: 1, messages: 1, prompt_tokens: standInCount(["[stub: tokens=150 delay=0] go long"]) });
  });

  it("counts a user message with the provider's numbers once its turn has run, and forgets the count on an edit", async () => {
    const user = await createUser();
    const turn = await callJson("/start_conversation/", { token: user.access, body: { content: `[stub: tokens=3] ${filler(50, 3)}` }, status: 201 });
    const counted = async (messageId: string) =>
      ((await rowsInShards<{ tokens: number | null }>("SELECT tokens FROM messages WHERE id = ?", messageId))[0])!.tokens;
    // The stand-in's count of the prompt, less the message's overhead and the reply priming.
    expect(await counted(turn.user_message.id)).toBe(standInCount([turn.user_message.content]) - 4 - 3);
    expect(await counted(turn.ai_message.id)).toBe(3);
    await callJson(`/messages/${turn.user_message.id}/edit_message/`, { token: user.access, method: "PATCH", body: { content: "shorter" }, status: 200 });
    expect(await counted(turn.user_message.id)).toBeNull();
  });
});

describe("output allowance", () => {
  it("defaults to each model's own output limit (capped at half its window), not 1,024 tokens for every model", () => {
    const { modelBudget } = getConfig({ ...env, MODEL_MAX_OUTPUT_TOKENS: "" } as Env);
    expect(modelBudget("gpt-4o").maxOutputTokens).toBe(16_384);
    expect(modelBudget("gpt-4.1").maxOutputTokens).toBe(32_768);
    expect(modelBudget("gpt-4").maxOutputTokens).toBe(4_096);
    // A configured table still wins.
    expect(getConfig({ ...env, MODEL_MAX_OUTPUT_TOKENS: "gpt-4o:2000" } as Env).modelBudget("gpt-4o").maxOutputTokens).toBe(2_000);
  });

  it("lets a reply of 3,500 tokens finish on a model whose allowance is larger (gpt-4.1 here)", { timeout: 30_000 }, async () => {
    const user = await createUser();
    const { id } = await callJson("/conversations/", { token: user.access, body: { model_version: "gpt-4.1" }, status: 201 });
    const turn = await callJson(`/conversations/${id}/add_message/`, { token: user.access, body: { content: "[stub: tokens=3500 delay=0] a long essay" }, status: 201 });
    expect(turn.ai_response).toMatchObject({ status: "Completed", finish_reason: "stop", usage: { completion_tokens: 3500 } });
  });
});
