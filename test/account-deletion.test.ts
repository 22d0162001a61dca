import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { call, callJson, conversationStub, countInShards, createUser, expectError } from "./helpers";

describe("deleting an account", () => {
  it("needs the password, then removes conversations, messages, files and their bytes, shares, sessions and the user", async () => {
    const user = await createUser();
    const file = await callJson("/files/?filename=notes.md", { token: user.access, body: "# Notes\n- one\n", headers: { "Content-Type": "text/markdown" }, status: 201 });
    const turn = await callJson("/start_conversation/", { token: user.access, body: { content: "[stub: tokens=3] keep this", attachments: [file.id] }, status: 201 });
    const id = turn.conversation.id;
    await callJson(`/conversations/${id}/add_message/`, { token: user.access, body: { content: "[stub: tokens=2] and this" }, status: 201 });
    const link = await callJson(`/conversations/${id}/share/`, { token: user.access, method: "POST", status: 201 });
    const other = await createUser();
    await callJson("/start_conversation/", { token: other.access, body: { content: "[stub: tokens=1] someone else's" }, status: 201 });

    await expectError(await call("/users/me/", { token: user.access, method: "DELETE", body: { password: "not my password" } }), 400, "validation_failed");
    expect((await call("/users/me/", { token: user.access, method: "DELETE", body: { password: user.password } })).status).toBe(204);

    for (const table of ["conversations", "messages", "ai_responses", "files", "shares", "usage_daily"]) {
      expect(await countInShards(`SELECT count(*) AS n FROM ${table} WHERE user_id = ?`, user.id), table).toBe(0);
    }
    expect(await countInShards("SELECT count(*) AS n FROM conversations WHERE user_id = ?", other.id)).toBe(1);
    expect((await env.FILES.list({ prefix: `users/${user.id}/` })).objects).toEqual([]);
    const directory = await env.DIRECTORY.prepare("SELECT (SELECT count(*) FROM users WHERE id = ?1) + (SELECT count(*) FROM refresh_tokens WHERE user_id = ?1) AS n").bind(user.id).first<{ n: number }>();
    expect(directory!.n).toBe(0);
    // The conversation's object holds nothing any more, and answers as if it never did.
    const stored = await runInDurableObject(conversationStub(id), (_instance, state) => state.storage.sql.exec("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'store_messages'").toArray());
    expect(stored).toEqual([]);

    await expectError(await call("/shared/", { headers: { Accept: "application/json", "X-Share-Token": link.token } }), 404, "not_found");
    await expectError(await call("/auth/token/", { body: { email: user.email, password: user.password } }), 401, "unauthorized");
    await expectError(await call("/auth/token/refresh/", { body: { refresh: user.refresh } }), 401, "unauthorized");
    // The access token outlives the account by minutes: it can start nothing.
    await expectError(await call("/start_conversation/", { token: user.access, body: { content: "still here?" } }), 401, "unauthorized");
    await expectError(await call(`/conversations/${id}/messages/`, { token: user.access }), 404, "not_found");
    await expectError(await call("/files/?filename=x.md", { token: user.access, body: "# x", headers: { "Content-Type": "text/markdown" } }), 401, "unauthorized");
    // The email is free again.
    expect((await call("/auth/register/", { body: { email: user.email, password: "another good password" } })).status).toBe(201);
  });
});
