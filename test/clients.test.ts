import { env } from "cloudflare:workers";
import { SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import { call, callJson, createUser, expectError } from "./helpers";
import { collectFrames, deltaText } from "./sse";

describe("stream tickets (EventSource cannot send Authorization)", () => {
  it("open one conversation's stream for 60 s, resume with Last-Event-ID, and nothing else", async () => {
    const user = await createUser();
    const turn = await callJson("/start_conversation/", { token: user.access, body: { content: "[stub: tokens=6] ticketed" }, status: 201 });
    const id = turn.conversation.id;
    const issued = await callJson(`/conversations/${id}/stream_ticket/`, { token: user.access, method: "POST", status: 201 });
    expect(issued.expires_in).toBe(60);
    const ticket = encodeURIComponent(issued.ticket);

    // Resume the stored reply after its second frame, with the ticket instead of a token.
    const full = await collectFrames(await call(`/conversations/${id}/add_message/?stream=true`, { token: user.access, body: { content: "[stub: tokens=6] more" } }));
    const resumed = await collectFrames(await call(`/conversations/${id}/stream/?ticket=${ticket}`, { headers: { "Last-Event-ID": full[2]!.id! } }));
    expect(deltaText(full.slice(0, 3)) + deltaText(resumed)).toBe("w1 w2 w3 w4 w5 w6");
    expect((await call(`/conversations/${id}/stream/?ticket=${ticket}`)).status).toBe(204);

    // Nowhere else, and not for another conversation.
    await expectError(await call(`/conversations/${id}/`, { token: issued.ticket }), 401, "unauthorized");
    await expectError(await call(`/conversations/${id}/messages/?ticket=${ticket}`), 401, "unauthorized");
    const other = await callJson("/conversations/", { token: user.access, body: {}, status: 201 });
    await expectError(await call(`/conversations/${other.id}/stream/?ticket=${ticket}`), 401, "unauthorized");
    await expectError(await call(`/conversations/${id}/stream/?ticket=garbage`), 401, "unauthorized");
    // An access token is not a ticket either.
    await expectError(await call(`/conversations/${id}/stream/?ticket=${user.access}`), 401, "unauthorized");

    // Another user's conversation: no ticket.
    const stranger = await createUser();
    await expectError(await call(`/conversations/${id}/stream_ticket/`, { token: stranger.access, method: "POST" }), 404, "not_found");
  });

  it("refuse an expired ticket", async () => {
    const user = await createUser();
    const { id } = await callJson("/conversations/", { token: user.access, body: {}, status: 201 });
    const key = new TextEncoder().encode(env.JWT_SECRET);
    const expired = await new SignJWT({ typ: "stream_ticket", cnv: id })
      .setProtectedHeader({ alg: "HS256" })
      .setSubject(user.id)
      .setIssuer("genai-edge")
      .setIssuedAt(Math.floor(Date.now() / 1000) - 120)
      .setExpirationTime(Math.floor(Date.now() / 1000) - 60)
      .sign(key);
    const error = await expectError(await call(`/conversations/${id}/stream/?ticket=${expired}`), 401, "unauthorized");
    expect(error.message).toMatch(/expired/);
  });
});

describe("small things newcomers trip on", () => {
  it('takes "stream": true in the body like an OpenAI client, and keeps JSON without it', async () => {
    const user = await createUser();
    const response = await call("/start_conversation/", { token: user.access, body: { content: "[stub: tokens=3] openai style", stream: true } });
    expect(response.headers.get("Content-Type")).toMatch(/^text\/event-stream/);
    const frames = await collectFrames(response);
    expect(frames.map((f) => f.event)).toEqual(["message", "delta", "delta", "delta", "done"]);
    const id = frames[0]!.data.conversation.id;
    const json = await call(`/conversations/${id}/add_message/`, { token: user.access, body: { content: "[stub: tokens=2] plain", stream: false } });
    expect(json.status).toBe(201);
    expect(json.headers.get("Content-Type")).toMatch(/^application\/json/);
    await expectError(await call(`/conversations/${id}/add_message/`, { token: user.access, body: { content: "x", stream: "yes" } }), 400, "validation_failed");
  });

  it("pages every list with ?page_size= from 1 to 100, keeping the DRF shape", async () => {
    const user = await createUser();
    for (let i = 0; i < 12; i++) await callJson("/conversations/", { token: user.access, body: { title: `c${i}` }, status: 201 });
    const page = await callJson("/conversations/?page_size=5&page=2", { token: user.access, status: 200 });
    expect(page.count).toBe(12);
    expect(page.results).toHaveLength(5);
    expect(new URL(page.next).searchParams.get("page_size")).toBe("5");
    expect(new URL(page.next).searchParams.get("page")).toBe("3");
    expect((await callJson("/conversations/?page_size=100", { token: user.access, status: 200 })).results).toHaveLength(12);
    for (const bad of ["0", "101", "ten", "", "2.5"]) {
      const error = await expectError(await call(`/conversations/?page_size=${bad}`, { token: user.access }), 400, "validation_failed");
      expect(error.details[0].field).toBe("page_size");
    }
    const turn = await callJson("/start_conversation/", { token: user.access, body: { content: "[stub: tokens=1] paged" }, status: 201 });
    const messages = await callJson(`/conversations/${turn.conversation.id}/messages/?page_size=1`, { token: user.access, status: 200 });
    expect(messages.results).toHaveLength(1);
    expect(messages.next).not.toBeNull();
    expect((await callJson("/messages/?page_size=2", { token: user.access, status: 200 })).results).toHaveLength(2);
  });
});
