import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { createApp } from "../src/app";
import { call, callJson, createUser, expectError, setObjectEnv, withinOneRateWindow, RATE_WINDOW_TEST_TIMEOUT_MS } from "./helpers";

describe("what a user may store without spending tokens", () => {
  it("counts a fork's copied text against USER_STORAGE_BYTES, refusing the fork that would not fit with nothing copied", async () => {
    const user = await createUser();
    const turn = await callJson("/start_conversation/", { token: user.access, body: { content: `[stub: tokens=2] ${"a".repeat(500)}` }, status: 201 });
    const fork = () =>
      createApp().request(
        `/conversations/${turn.conversation.id}/fork/`,
        { method: "POST", headers: { Authorization: `Bearer ${user.access}`, "Content-Type": "application/json" }, body: JSON.stringify({ message: turn.ai_message.id }) },
        { ...env, USER_STORAGE_BYTES: "1200" } as Env,
      );
    // About 522 bytes a fork: two fit, the third does not.
    expect((await fork()).status).toBe(201);
    expect((await fork()).status).toBe(201);
    const refused = await expectError(await fork(), 413, "storage_quota_exceeded");
    expect(refused.details).toMatchObject({ bytes_limit: 1200, bytes_needed: 522 });
    expect((await callJson("/conversations/", { token: user.access, status: 200 })).count).toBe(3);
  });

  it("counts what an edit grows a message by, and gives back what one shrinks it by", async () => {
    const user = await createUser();
    const turn = await callJson("/start_conversation/", { token: user.access, body: { content: "[stub: tokens=1] short" }, status: 201 });
    await setObjectEnv(turn.conversation.id, { ...env, USER_STORAGE_BYTES: "1000" } as Env);
    const edit = (content: string) => call(`/messages/${turn.user_message.id}/edit_message/`, { token: user.access, method: "PATCH", body: { content } });
    expect((await edit("b".repeat(900))).status).toBe(200);
    // 878 bytes more than the 22 it held: 200 more do not fit.
    await expectError(await edit("d".repeat(1_100)), 413, "storage_quota_exceeded");
    expect((await edit("c".repeat(100))).status).toBe(200);
    // Shrunk by 800: now they do.
    expect((await edit("e".repeat(1_000))).status).toBe(200);
    const listed = await callJson(`/conversations/${turn.conversation.id}/messages/`, { token: user.access, status: 200 });
    expect(listed.results[0].content).toBe("e".repeat(1_000));
  });

  it("limits forks per user", { timeout: RATE_WINDOW_TEST_TIMEOUT_MS }, async () => {
    await withinOneRateWindow(20);
    const user = await createUser();
    const turn = await callJson("/start_conversation/", { token: user.access, body: { content: "[stub: tokens=1] fork me" }, status: 201 });
    const fork = () => call(`/conversations/${turn.conversation.id}/fork/`, { token: user.access, body: { message: turn.ai_message.id } });
    const statuses = [];
    for (let i = 0; i < 11; i++) statuses.push((await fork()).status);
    expect(statuses.filter((status) => status === 201).length).toBeLessThanOrEqual(10);
    await expectError(await fork(), 429, "rate_limited");
  });
});
