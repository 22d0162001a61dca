import { SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import { PBKDF2_ITERATIONS } from "../src/lib/password";
import { call, callJson, createUser, expectError } from "./helpers";

describe("register", () => {
  it("creates a user with a normalised email and never returns the hash", async () => {
    const body = await callJson("/auth/register/", {
      body: { email: "  Ada.Lovelace@Example.COM ", password: "analytical engine", name: "Ada" },
      status: 201,
    });
    expect(body).toEqual({ id: expect.any(String), email: "ada.lovelace@example.com", name: "Ada", is_active: true, date_joined: expect.any(String) });
    expect(JSON.stringify(body)).not.toContain("pbkdf2");
  });

  it("refuses a taken email whatever its case with 409", async () => {
    await callJson("/auth/register/", { body: { email: "taken@example.com", password: "a good password" }, status: 201 });
    await expectError(await call("/auth/register/", { body: { email: "TAKEN@example.com", password: "another password" } }), 409, "conflict");
  });

  it.each([
    [{ email: "not-an-email", password: "a good password" }, "email"],
    [{ email: "short@example.com", password: "short" }, "password"],
    [{ email: "numeric@example.com", password: "1234567890" }, "password"],
    [{ email: "common@example.com", password: "password" }, "password"],
    [{ email: "extra@example.com", password: "a good password", is_active: false }, ""],
  ])("answers 400 with field details for %j", async (body, field) => {
    const error = await expectError(await call("/auth/register/", { body }), 400, "validation_failed");
    expect(error.details).toEqual(expect.arrayContaining([expect.objectContaining({ field: expect.stringContaining(field) })]));
  });

  it("stores PBKDF2 with at most the 100,000 iterations production workerd allows", () => {
    expect(PBKDF2_ITERATIONS).toBeGreaterThanOrEqual(100_000);
    expect(PBKDF2_ITERATIONS).toBeLessThanOrEqual(100_000);
  });
});

describe("tokens", () => {
  it("logs in, reads /users/me, and refreshes", async () => {
    const user = await createUser();
    const me = await callJson("/users/me/", { token: user.access, status: 200 });
    expect(me).toMatchObject({ id: user.id, email: user.email });

    const refreshed = await callJson("/auth/token/refresh/", { body: { refresh: user.refresh }, status: 200 });
    expect(refreshed).toMatchObject({ token_type: "Bearer", expires_in: 900, access: expect.any(String), refresh: expect.any(String) });
    expect(refreshed.refresh).not.toBe(user.refresh);
    await callJson("/users/me", { token: refreshed.access, status: 200 });
  });

  it("gives the same 401 for an unknown email and a wrong password", async () => {
    const user = await createUser();
    const unknown = await expectError(await call("/auth/token/", { body: { email: "nobody@example.com", password: "whatever123" } }), 401);
    const wrong = await expectError(await call("/auth/token/", { body: { email: user.email, password: "wrong password" } }), 401);
    expect(unknown.message).toBe(wrong.message);
  });

  it("never accepts a refresh token as an access token, or the reverse", async () => {
    const user = await createUser();
    const asAccess = await call("/users/me/", { token: user.refresh });
    expect(asAccess.headers.get("WWW-Authenticate")).toMatch(/^Bearer/);
    await expectError(asAccess, 401, "unauthorized");
    await expectError(await call("/auth/token/refresh/", { body: { refresh: user.access } }), 401, "unauthorized");
  });

  it.each([
    ["missing", undefined],
    ["malformed", "not.a.jwt"],
    ["forged", "forge"],
    ["expired", "expired"],
    ["HS512", "hs512"],
  ])("answers 401 with WWW-Authenticate for a %s token", async (_, kind) => {
    const user = await createUser();
    const secret = new TextEncoder().encode("test-secret-that-is-long-enough-for-hs256-signing");
    const claims = { typ: "access", fam: "f" };
    const base = () => new SignJWT(claims).setSubject(user.id).setJti("j").setIssuer("genai-edge").setIssuedAt();
    const tokens: Record<string, string | undefined> = {
      forge: await base().setProtectedHeader({ alg: "HS256" }).setExpirationTime("5m").sign(new TextEncoder().encode("some-other-secret-of-enough-length")),
      expired: await base().setProtectedHeader({ alg: "HS256" }).setExpirationTime(Math.floor(Date.now() / 1000) - 60).sign(secret),
      hs512: await base().setProtectedHeader({ alg: "HS512" }).setExpirationTime("5m").sign(secret),
    };
    const token = kind && kind in tokens ? tokens[kind] : kind;
    const response = await call("/users/me/", { token });
    expect(response.headers.get("WWW-Authenticate")).toMatch(/^Bearer/);
    await expectError(response, 401, "unauthorized");
  });
});

describe("sessions", () => {
  it("rotates refresh tokens: each works once, and reusing a used one revokes the whole family", async () => {
    const user = await createUser();
    const second = await callJson("/auth/token/refresh/", { body: { refresh: user.refresh }, status: 200 });
    const third = await callJson("/auth/token/refresh/", { body: { refresh: second.refresh }, status: 200 });

    // The first token is presented again: a thief or a replay. The family dies.
    await expectError(await call("/auth/token/refresh/", { body: { refresh: user.refresh } }), 401, "unauthorized");
    await expectError(await call("/auth/token/refresh/", { body: { refresh: third.refresh } }), 401, "unauthorized");

    // Another login is another family, unaffected.
    const other = await callJson("/auth/token/", { body: { email: user.email, password: user.password }, status: 200 });
    await callJson("/auth/token/refresh/", { body: { refresh: other.refresh }, status: 200 });
  });

  it("lets only one of two concurrent refreshes with the same token win", async () => {
    const user = await createUser();
    const responses = await Promise.all([0, 1, 2].map(() => call("/auth/token/refresh/", { body: { refresh: user.refresh } })));
    expect(responses.map((r) => r.status).sort()).toEqual([200, 401, 401]);
  });

  it("logout revokes the caller's session only", async () => {
    const user = await createUser();
    const other = await callJson("/auth/token/", { body: { email: user.email, password: user.password }, status: 200 });
    const response = await call("/auth/logout/", { method: "POST", token: user.access });
    expect(response.status).toBe(204);
    await expectError(await call("/auth/token/refresh/", { body: { refresh: user.refresh } }), 401);
    await callJson("/auth/token/refresh/", { body: { refresh: other.refresh }, status: 200 });
  });

  it("changing the password needs the old one and revokes every session", async () => {
    const user = await createUser();
    const other = await callJson("/auth/token/", { body: { email: user.email, password: user.password }, status: 200 });
    const wrong = await expectError(
      await call("/users/me/password/", { token: user.access, body: { old_password: "not it", new_password: "a brand new secret" } }),
      400,
      "validation_failed",
    );
    expect(wrong.details).toEqual([{ field: "old_password", message: "Incorrect password." }]);
    await expectError(await call("/users/me/password/", { token: user.access, body: { old_password: user.password, new_password: "short" } }), 400);

    const changed = await call("/users/me/password/", { token: user.access, body: { old_password: user.password, new_password: "a brand new secret" } });
    expect(changed.status).toBe(204);
    for (const refresh of [user.refresh, other.refresh]) {
      await expectError(await call("/auth/token/refresh/", { body: { refresh } }), 401);
    }
    await expectError(await call("/auth/token/", { body: { email: user.email, password: user.password } }), 401);
    await callJson("/auth/token/", { body: { email: user.email, password: "a brand new secret" }, status: 200 });
  });
});
