import { env, exports } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { HTTPException } from "hono/http-exception";
import { createApp } from "../src/app";
import { BASE, call, callJson, createUser, expectError } from "./helpers";

describe("HTTP errors share one JSON shape", () => {
  it("maps Hono's own exceptions by status, and hides any it has no code for", async () => {
    const app = createApp();
    app.get("/teapot/:status", (c) => {
      throw new HTTPException(Number(c.req.param("status")) as 404, { message: "from Hono" });
    });
    await expectError(await app.request("/teapot/404", {}, env), 404, "not_found");
    await expectError(await app.request("/teapot/415", {}, env), 415, "unsupported_media_type");
    const hidden = await expectError(await app.request("/teapot/418", {}, env), 500, "internal_error");
    expect(hidden.message).toBe("Internal server error.");
  });

  it("answers 404 for an unknown route and 405 with Allow for a wrong method", async () => {
    await expectError(await call("/nope"), 404, "not_found");
    const wrong = await call("/auth/register/", { method: "GET" });
    expect(wrong.headers.get("Allow")).toContain("POST");
    await expectError(wrong, 405, "method_not_allowed");
    const user = await createUser();
    await expectError(await call("/conversations/", { method: "DELETE", token: user.access }), 405, "method_not_allowed");
  });

  it("answers 400 for malformed JSON, 415 for another content type, 413 for a huge body", async () => {
    const user = await createUser();
    await expectError(await call("/conversations/", { token: user.access, body: "{not json" }), 400, "bad_request");
    await expectError(
      await call("/conversations/", { token: user.access, body: "title=x", headers: { "Content-Type": "application/x-www-form-urlencoded" } }),
      415,
      "unsupported_media_type",
    );
    await expectError(await call("/conversations/", { token: user.access, body: "title: x", headers: { "Content-Type": "text/plain" } }), 415);
    await expectError(await call("/conversations/", { token: user.access, body: { title: "x".repeat(200 * 1024) } }), 413, "payload_too_large");
    await expectError(await call("/conversations/", { token: user.access, body: "[1,2]" }), 400, "validation_failed");
    expect((await callJson("/conversations/", { token: user.access, status: 200 })).count).toBe(0);
  });

  it("accepts every path with or without the trailing slash", async () => {
    const user = await createUser();
    for (const path of ["/users/me", "/users/me/", "/conversations", "/conversations/", "/messages", "/messages/"]) {
      expect((await call(path, { token: user.access })).status, path).toBe(200);
    }
  });

  it("echoes a client's X-Request-Id and generates one otherwise", async () => {
    const echoed = await exports.default.fetch(new Request(`${BASE}/nope`, { headers: { "X-Request-Id": "client-id-123" } }));
    expect(echoed.headers.get("X-Request-Id")).toBe("client-id-123");
    expect((await echoed.json<any>()).error.request_id).toBe("client-id-123");
    const generated = await call("/health");
    expect(generated.headers.get("X-Request-Id")).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("sets security headers on JSON responses", async () => {
    const response = await call("/health");
    expect(await response.json()).toEqual({ status: "ok" });
    expect(response.headers.get("X-Content-Type-Options")).toBe("nosniff");
    expect(response.headers.get("X-Frame-Options")).toBe("DENY");
  });
});

describe("API documentation", () => {
  it("serves an OpenAPI 3.1 document with every route and the error shape", async () => {
    const doc = await callJson("/openapi.json", { status: 200 });
    expect(doc.openapi).toBe("3.1.0");
    const paths = Object.keys(doc.paths);
    for (const path of [
      "/auth/register",
      "/auth/token",
      "/auth/token/refresh",
      "/users/me",
      "/conversations",
      "/conversations/{id}",
      "/conversations/{id}/messages",
      "/messages",
      "/messages/{id}/mark_deleted",
      "/messages/{id}/edit_message",
      "/start_conversation",
      "/conversations/{id}/add_message",
      "/conversations/{id}/stream",
      "/conversations/{id}/cancel",
      "/auth/logout",
      "/users/me/password",
      "/models",
    ]) {
      expect(paths).toContain(path);
    }
    expect(doc.components.schemas.Error).toBeDefined();
    expect(doc.components.securitySchemes.Bearer).toMatchObject({ type: "http", scheme: "bearer" });
    expect(doc.paths["/conversations"].post.requestBody.content["application/json"]).toBeDefined();
  });

  it("lists the allowed models without authentication", async () => {
    const listed = await callJson("/models/", { status: 200 });
    expect(listed).toMatchObject({
      default_model: "gpt-4",
      // ALLOWED_MODELS of vitest.config.ts
      allowed_models: ["gpt-4", "gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "small-window"],
    });
    expect(listed.models.map((model: { id: string }) => model.id)).toEqual(listed.allowed_models);
  });

  it("serves an API reference page that may reach this origin only, with Scalar's cloud features off", async () => {
    const response = await call("/docs");
    expect(response.status).toBe(200);
    expect(response.headers.get("Content-Type")).toMatch(/text\/html/);
    const csp = response.headers.get("Content-Security-Policy") ?? "";
    expect(csp).toContain("connect-src 'self'");
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(response.headers.get("X-Frame-Options")).toBe("DENY");
    const page = await response.text();
    expect(page).toContain("/openapi.json");
    expect(page).toMatch(/"agent":\s*\{\s*"disabled":\s*true\s*\}/);
    expect(page).toMatch(/"mcp":\s*\{\s*"disabled":\s*true\s*\}/);
    // Every script of the page carries the response's nonce.
    const nonce = /'nonce-([^']+)'/.exec(csp)?.[1];
    expect(nonce).toBeTruthy();
    expect(page.match(/<script[^>]*>/g)?.every((tag) => tag.includes(`nonce="${nonce}"`))).toBe(true);
  });

  it("forbids framing of API responses like of the static assets", async () => {
    const response = await call("/models/");
    expect(response.headers.get("X-Frame-Options")).toBe("DENY");
    expect(response.headers.get("Strict-Transport-Security")).toMatch(/max-age=\d+/);
  });
});

describe("unexpected errors", () => {
  it("answers 500 in the error shape without internals when JWT_SECRET is missing, and logs which secret", async () => {
    const user = await createUser();
    const logged = vi.spyOn(console, "error").mockImplementation(() => undefined);
    const response = await createApp().request("/auth/token/", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ email: user.email, password: user.password }),
    }, { ...env, JWT_SECRET: "" });
    const error = await expectError(response, 500, "internal_error");
    expect(error.message).toBe("Internal server error.");
    expect(JSON.stringify(error)).not.toMatch(/JWT_SECRET|stack/);
    expect(logged.mock.calls.flat().join("\n")).toContain("JWT_SECRET");
    logged.mockRestore();
  });
});
