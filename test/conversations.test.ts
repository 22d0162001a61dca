import { describe, expect, it } from "vitest";
import { call, callJson, createUser, expectError, rowsInShards } from "./helpers";

describe("conversations", () => {
  it("creates, reads, updates and soft-deletes a conversation", async () => {
    const user = await createUser();
    const created = await callJson("/conversations/", { token: user.access, body: { title: "Trip to Lisbon" }, status: 201 });
    expect(created).toMatchObject({ title: "Trip to Lisbon", status: "Active", model_version: "gpt-4", system_prompt: null });

    expect(await callJson(`/conversations/${created.id}/`, { token: user.access, status: 200 })).toEqual(created);
    expect(await callJson(`/conversations/${created.id}`, { token: user.access, status: 200 })).toEqual(created);

    const put = await callJson(`/conversations/${created.id}/`, { token: user.access, method: "PUT", body: { title: "Porto", status: "Active" }, status: 200 });
    expect(put).toMatchObject({ title: "Porto", status: "Active" });
    const patched = await callJson(`/conversations/${created.id}/`, { token: user.access, method: "PATCH", body: { title: null }, status: 200 });
    expect(patched.title).toBeNull();

    const deleted = await call(`/conversations/${created.id}/`, { token: user.access, method: "DELETE" });
    expect(deleted.status).toBe(204);
    const after = await callJson(`/conversations/${created.id}/`, { token: user.access, status: 200 });
    expect(after.status).toBe("Deleted");
  });

  it("accepts only allowed model versions", async () => {
    const user = await createUser();
    const ok = await callJson("/conversations/", { token: user.access, body: { model_version: "gpt-4o-mini" }, status: 201 });
    expect(ok.model_version).toBe("gpt-4o-mini");
    const error = await expectError(await call("/conversations/", { token: user.access, body: { model_version: "gpt-99" } }), 400, "validation_failed");
    expect(error.details).toEqual([{ field: "model_version", message: expect.stringContaining("gpt-4") }]);
  });

  it("rejects fields the client must not set", async () => {
    const user = await createUser();
    for (const body of [{ user: "someone" }, { created_at: "2020-01-01" }, { id: "x" }]) {
      await expectError(await call("/conversations/", { token: user.access, body }), 400, "validation_failed");
    }
    const { count } = await callJson("/conversations/", { token: user.access, status: 200 });
    expect(count).toBe(0);
  });

  it("PUT requires title and status; PATCH takes either", async () => {
    const user = await createUser();
    const { id } = await callJson("/conversations/", { token: user.access, body: {}, status: 201 });
    await expectError(await call(`/conversations/${id}/`, { token: user.access, method: "PUT", body: { title: "x" } }), 400, "validation_failed");
    await expectError(await call(`/conversations/${id}/`, { token: user.access, method: "PATCH", body: { status: "Archived" } }), 400, "validation_failed");
    const restored = await callJson(`/conversations/${id}/`, { token: user.access, method: "PATCH", body: { status: "Deleted" }, status: 200 });
    expect(restored.status).toBe("Deleted");
  });
});

describe("listing conversations", () => {
  it("pages by 10, newest activity first, with DRF next/previous links", async () => {
    const user = await createUser();
    const ids: string[] = [];
    for (let i = 0; i < 23; i++) ids.push((await callJson("/conversations/", { token: user.access, body: { title: `c${i}` }, status: 201 })).id);
    // Renaming counts as activity: the oldest conversation moves to the front.
    await callJson(`/conversations/${ids[0]}/`, { token: user.access, method: "PATCH", body: { title: "renamed" }, status: 200 });

    const first = await callJson("/conversations/", { token: user.access, status: 200 });
    expect(first.count).toBe(23);
    expect(first.results).toHaveLength(10);
    expect(first.results[0].id).toBe(ids[0]);
    expect(first.results[1].id).toBe(ids[22]);
    expect(first.previous).toBeNull();
    expect(first.next).toBe("http://api.test/conversations/?page=2");

    const third = await callJson(new URL(first.next).pathname + "?page=3", { token: user.access, status: 200 });
    expect(third.results.map((c: { id: string }) => c.id)).toEqual([ids[3], ids[2], ids[1]]);
    expect(third.next).toBeNull();
    expect(third.previous).toBe("http://api.test/conversations/?page=2");

    const seen = new Set<string>();
    for (const page of [1, 2, 3]) {
      const body = await callJson(`/conversations/?page=${page}`, { token: user.access, status: 200 });
      for (const c of body.results) seen.add(c.id);
    }
    expect(seen.size).toBe(23);
  });

  it("answers 404 past the last page and 400 for a bad page number", async () => {
    const user = await createUser();
    expect((await callJson("/conversations/?page=1", { token: user.access, status: 200 })).results).toEqual([]);
    await expectError(await call("/conversations/?page=2", { token: user.access }), 404, "invalid_page");
    for (const page of ["0", "-1", "abc", "1.5", "99999999999"]) {
      await expectError(await call(`/conversations/?page=${page}`, { token: user.access }), 400, "validation_failed");
    }
  });

  it("searches titles case-insensitively with % and _ taken literally", async () => {
    const user = await createUser();
    for (const title of ["100% Done", "100 percent", "snake_case", "snakeXcase", "ÉCOLE d'été", null]) {
      await callJson("/conversations/", { token: user.access, body: { title }, status: 201 });
    }
    const titles = async (search: string) =>
      (await callJson(`/conversations/?search=${encodeURIComponent(search)}`, { token: user.access, status: 200 })).results.map((c: { title: string }) => c.title);
    expect(await titles("100%")).toEqual(["100% Done"]);
    expect(await titles("_")).toEqual(["snake_case"]);
    expect(await titles("SNAKE")).toEqual(["snakeXcase", "snake_case"]);
    expect(await titles("école")).toEqual(["ÉCOLE d'été"]);
    expect(await titles("%")).toEqual(["100% Done"]);
    expect(await titles("nothing")).toEqual([]);
    expect((await titles("")).length).toBe(6);
  });

  it("filters by status", async () => {
    const user = await createUser();
    const a = await callJson("/conversations/", { token: user.access, body: { title: "a" }, status: 201 });
    await callJson("/conversations/", { token: user.access, body: { title: "b" }, status: 201 });
    await call(`/conversations/${a.id}/`, { token: user.access, method: "DELETE" });
    const active = await callJson("/conversations/", { token: user.access, status: 200 });
    const deleted = await callJson("/conversations/?status=Deleted", { token: user.access, status: 200 });
    expect(active.results.map((c: { title: string }) => c.title)).toEqual(["b"]);
    expect(deleted.results.map((c: { title: string }) => c.title)).toEqual(["a"]);
    await expectError(await call("/conversations/?status=Gone", { token: user.access }), 400, "validation_failed");
  });
});

describe("isolation between users", () => {
  it("treats another user's conversation as missing on every route", async () => {
    const owner = await createUser("owner");
    const other = await createUser("other");
    const { id } = await callJson("/conversations/", { token: owner.access, body: { title: "private" }, status: 201 });
    const attempts: [string, string, unknown?][] = [
      ["GET", `/conversations/${id}/`],
      ["PUT", `/conversations/${id}/`, { title: "hijack", status: "Active" }],
      ["PATCH", `/conversations/${id}/`, { title: "hijack" }],
      ["DELETE", `/conversations/${id}/`],
      ["GET", `/conversations/${id}/messages/`],
      ["POST", `/conversations/${id}/add_message/`, { content: "hello" }],
      ["GET", `/conversations/${id}/stream/`],
      ["POST", `/conversations/${id}/cancel/`],
    ];
    for (const [method, path, body] of attempts) {
      const stranger = await expectError(await call(path, { method, token: other.access, body }), 404, "not_found");
      const missing = await expectError(await call(path.replace(id, crypto.randomUUID()), { method, token: other.access, body }), 404, "not_found");
      expect(stranger.message).toBe(missing.message);
    }
    expect((await callJson("/conversations/", { token: other.access, status: 200 })).count).toBe(0);
    const stored = (await rowsInShards("SELECT title, status FROM conversations WHERE id = ?", id))[0];
    expect(stored).toEqual({ title: "private", status: "Active" });
  });

  it("requires a token on every conversation route", async () => {
    for (const [method, path] of [["GET", "/conversations/"], ["POST", "/conversations/"], ["GET", "/messages/"], ["POST", "/start_conversation/"]]) {
      const response = await call(path!, { method, body: method === "POST" ? {} : undefined });
      expect(response.headers.get("WWW-Authenticate")).toMatch(/^Bearer/);
      await expectError(response, 401, "unauthorized");
    }
  });
});
