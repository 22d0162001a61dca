import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { createApp } from "../src/app";
import { deleteUnusedFiles, UNUSED_FILE_GRACE_MS } from "../src/db/housekeeping";
import { BASE, call, callJson, createUser, expectError, setObjectEnv, type TestUser } from "./helpers";

/** A valid 3×2 PNG (8-bit RGB, one IDAT). */
const PNG_3x2 = Uint8Array.from(
  atob("iVBORw0KGgoAAAANSUhEUgAAAAMAAAACCAIAAAASFvFNAAAAE0lEQVR4nGP4z8DAwMDAxMDAAAAbJgIEVxYpMQAAAABJRU5ErkJggg=="),
  (c) => c.charCodeAt(0),
);
const PDF = new TextEncoder().encode("%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n");

function upload(user: TestUser, body: BodyInit, contentType: string | null, filename?: string): Promise<Response> {
  const headers: Record<string, string> = { Authorization: `Bearer ${user.access}` };
  if (contentType) headers["Content-Type"] = contentType;
  const query = filename === undefined ? "" : `?filename=${encodeURIComponent(filename)}`;
  return exports.default.fetch(new Request(`${BASE}/files/${query}`, { method: "POST", headers, body }));
}

async function uploaded(user: TestUser, body: BodyInit, contentType: string | null, filename?: string) {
  const response = await upload(user, body, contentType, filename);
  const json = await response.json<any>();
  expect(response.status, JSON.stringify(json)).toBe(201);
  return json;
}

describe("files", () => {
  it("stores an image with the type and dimensions its bytes show, lists it, and serves it inline and safely", async () => {
    const user = await createUser();
    const file = await uploaded(user, PNG_3x2, "image/png", "../../photos/cat.png");
    expect(file).toMatchObject({ filename: "cat.png", media_type: "image/png", size: PNG_3x2.byteLength, width: 3, height: 2 });
    expect(file.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(await callJson(`/files/${file.id}/`, { token: user.access, status: 200 })).toEqual(file);
    const listed = await callJson("/files/", { token: user.access, status: 200 });
    expect(listed).toMatchObject({ count: 1, results: [file] });

    const content = await call(`/files/${file.id}/content`, { token: user.access });
    expect(content.status).toBe(200);
    expect(content.headers.get("Content-Type")).toBe("image/png");
    expect(content.headers.get("X-Content-Type-Options")).toBe("nosniff");
    expect(content.headers.get("Content-Disposition")).toMatch(/^inline; filename\*=UTF-8''cat\.png$/);
    expect(content.headers.get("Content-Security-Policy")).toContain("sandbox");
    expect(content.headers.get("Cache-Control")).toContain("private");
    expect(new Uint8Array(await content.arrayBuffer())).toEqual(PNG_3x2);
  });

  it("takes multipart uploads, PDFs and text, and serves anything but images as a download", async () => {
    const user = await createUser();
    const form = new FormData();
    form.append("file", new File([PDF], "report.pdf", { type: "application/pdf" }));
    const pdf = await uploaded(user, form, null);
    expect(pdf).toMatchObject({ filename: "report.pdf", media_type: "application/pdf" });
    const notes = await uploaded(user, "# Notes\n- one\n", "text/markdown", "notes.md");
    expect(notes.media_type).toBe("text/markdown");
    const code = await uploaded(user, "export const x = 1;\n", "application/typescript", "x.ts");
    expect(code.media_type).toBe("text/plain");
    const data = await uploaded(user, '{"a": 1}', "application/json", "data.json");
    expect(data.media_type).toBe("application/json");
    // HTML is text like any other: it is stored and served as text/plain, as a download.
    const page = await uploaded(user, "<script>alert(1)</script>", "text/html", "page.html");
    expect(page.media_type).toBe("text/plain");
    const served = await call(`/files/${page.id}/content`, { token: user.access });
    expect(served.headers.get("Content-Type")).toBe("text/plain; charset=utf-8");
    expect(served.headers.get("Content-Disposition")).toMatch(/^attachment;/);
    expect((await call(`/files/${pdf.id}/content`, { token: user.access })).headers.get("Content-Disposition")).toMatch(/^attachment;/);
  });

  it("refuses bytes that contradict their declared type, or are of no accepted kind, with 415", async () => {
    const user = await createUser();
    await expectError(await upload(user, "<html><script>alert(1)</script></html>", "image/png", "x.png"), 415, "unsupported_media_type");
    await expectError(await upload(user, PNG_3x2, "application/pdf", "x.pdf"), 415, "unsupported_media_type");
    const zip = Uint8Array.from([0x50, 0x4b, 0x03, 0x04, 20, 0, 0, 0, 8, 0, ...new Array(40).fill(0)]);
    await expectError(await upload(user, zip, "application/zip", "a.zip"), 415, "unsupported_media_type");
    await expectError(await upload(user, Uint8Array.from([0xff, 0xfe, 0x00, 0x01, 0x02]), "text/plain", "bin.txt"), 415, "unsupported_media_type");
    await expectError(await upload(user, new Uint8Array(), "text/plain", "empty.txt"), 400, "bad_request");
    expect((await callJson("/files/", { token: user.access, status: 200 })).count).toBe(0);
  });

  it("stores the same bytes once per user, counts them against USER_STORAGE_BYTES, and refuses a file past MAX_FILE_BYTES", async () => {
    const user = await createUser();
    const limited = { ...env, USER_STORAGE_BYTES: "100", MAX_FILE_BYTES: "80" } as Env;
    const post = (body: string, filename: string) =>
      createApp().request(`/files/?filename=${filename}`, { method: "POST", headers: { Authorization: `Bearer ${user.access}`, "Content-Type": "text/plain" }, body }, limited);
    const first = await post("a".repeat(60), "a.txt");
    expect(first.status).toBe(201);
    // The same bytes again: a second file, no second copy, nothing more counted.
    const again = await post("a".repeat(60), "again.txt");
    expect(again.status).toBe(201);
    const over = await expectError(await post("b".repeat(60), "b.txt"), 413, "storage_quota_exceeded");
    expect(over.details).toMatchObject({ bytes_used: 60, bytes_limit: 100 });
    await expectError(await post("c".repeat(81), "c.txt"), 413, "payload_too_large");
    // Deleting both files of the shared bytes gives the room back.
    for (const file of (await callJson("/files/", { token: user.access, status: 200 })).results) {
      expect((await call(`/files/${file.id}/`, { token: user.access, method: "DELETE" })).status).toBe(204);
    }
    expect((await post("b".repeat(60), "b.txt")).status).toBe(201);
  });

  it("deletes the bytes with the last file that holds them, and keeps other users out", async () => {
    const user = await createUser();
    const stranger = await createUser();
    const one = await uploaded(user, PNG_3x2, "image/png", "one.png");
    const two = await uploaded(user, PNG_3x2, "image/png", "two.png");
    for (const path of [`/files/${one.id}/`, `/files/${one.id}/content`]) await expectError(await call(path, { token: stranger.access }), 404, "not_found");
    await expectError(await call(`/files/${one.id}/`, { token: stranger.access, method: "DELETE" }), 404, "not_found");
    expect((await call(`/files/${one.id}/`, { token: user.access, method: "DELETE" })).status).toBe(204);
    await expectError(await call(`/files/${one.id}/content`, { token: user.access }), 404, "not_found");
    expect((await call(`/files/${two.id}/content`, { token: user.access })).status).toBe(200);
    expect((await call(`/files/${two.id}/`, { token: user.access, method: "DELETE" })).status).toBe(204);
    expect(await env.FILES.get(`users/${user.id}/${two.sha256}`)).toBeNull();
  });
});

describe("files sent with a message", () => {
  it("reach the model with the message and with every later turn of the branch, and show in listings", async () => {
    const user = await createUser();
    const image = await uploaded(user, PNG_3x2, "image/png", "cat.png");
    const notes = await uploaded(user, "# Shopping\n- milk\n", "text/markdown", "notes.md");
    const { id } = await callJson("/conversations/", { token: user.access, body: {}, status: 201 });
    const turn = await callJson(`/conversations/${id}/add_message/`, { token: user.access, body: { content: "What is in these?", attachments: [image.id, notes.id] }, status: 201 });
    expect(turn.ai_message.content).toContain('I received an image, 3×2 PNG, named cat.png; a text file, notes.md, starting "# Shopping"');
    const attached = [
      { id: image.id, filename: "cat.png", media_type: "image/png", size: PNG_3x2.byteLength, width: 3, height: 2 },
      { id: notes.id, filename: "notes.md", media_type: "text/markdown", size: notes.size },
    ];
    expect(turn.user_message.attachments).toEqual(attached);
    const listed = await callJson(`/conversations/${id}/messages/`, { token: user.access, status: 200 });
    expect(listed.results[0].attachments).toEqual(attached);

    // A later turn sends them again; a deleted file is named as deleted.
    expect((await call(`/files/${notes.id}/`, { token: user.access, method: "DELETE" })).status).toBe(204);
    const later = await callJson(`/conversations/${id}/add_message/`, { token: user.access, body: { content: "[stub: echo=history] and now?" }, status: 201 });
    expect(later.ai_message.content).toContain("[cat.png]");
    expect(later.ai_message.content).toContain("[The file notes.md was attached here and has since been deleted.]");
    const after = await callJson(`/conversations/${id}/messages/`, { token: user.access, status: 200 });
    expect(after.results[0].attachments).toEqual([attached[0], { id: notes.id, filename: "notes.md", deleted: true }]);
  });

  it("refuses files that are not the caller's, more than 10, and images for a model without vision, storing nothing", async () => {
    const user = await createUser();
    const stranger = await createUser();
    const theirs = await uploaded(stranger, PNG_3x2, "image/png", "theirs.png");
    const { id } = await callJson("/conversations/", { token: user.access, body: {}, status: 201 });
    const send = (attachments: string[]) => call(`/conversations/${id}/add_message/`, { token: user.access, body: { content: "look", attachments } });
    const notMine = await expectError(await send([theirs.id]), 400, "validation_failed");
    expect(JSON.stringify(notMine.details)).toContain("attachments");
    await expectError(await send(Array.from({ length: 11 }, (_, i) => `id-${i}`)), 400, "validation_failed");

    const image = await uploaded(user, PNG_3x2, "image/png", "mine.png");
    const blind = {
      ...env,
      PROVIDERS: JSON.stringify({ local: { base_url: "stand-in" } }),
      MODELS: JSON.stringify([{ id: "gpt-4", providers: ["local"], context_window: 8_192, max_output_tokens: 1_024, vision: false }]),
    } as Env;
    await setObjectEnv(id, blind);
    const refused = await expectError(await send([image.id]), 400, "model_unsupported");
    expect(refused.details).toEqual({ model: "gpt-4", missing: "vision" });
    expect((await callJson(`/conversations/${id}/messages/`, { token: user.access, status: 200 })).count).toBe(0);
  });
});

describe("files everywhere else", () => {
  it("are listed by the account export and by a conversation's, and a fork keeps the references without copying bytes", async () => {
    const user = await createUser();
    const image = await uploaded(user, PNG_3x2, "image/png", "cat.png");
    const turn = await callJson("/start_conversation/", { token: user.access, body: { content: "[stub: tokens=1] see", attachments: [image.id] }, status: 201 });
    const exported = await callJson(`/conversations/${turn.conversation.id}/export/`, { token: user.access, status: 200 });
    expect(exported.messages[0].attachments).toEqual([{ id: image.id, filename: "cat.png", media_type: "image/png", size: PNG_3x2.byteLength, width: 3, height: 2 }]);
    const lines = (await (await call("/users/me/export/", { token: user.access })).text()).trim().split("\n").map((line) => JSON.parse(line));
    expect(lines.filter((line) => line.type === "file")).toEqual([{ type: "file", ...image }]);

    const fork = await callJson(`/conversations/${turn.conversation.id}/fork/`, { token: user.access, body: { message: turn.ai_message.id }, status: 201 });
    const forked = await callJson(`/conversations/${fork.id}/messages/`, { token: user.access, status: 200 });
    expect(forked.results[0].attachments).toEqual(exported.messages[0].attachments);
    const listed = await env.FILES.list({ prefix: `users/${user.id}/` });
    expect(listed.objects).toHaveLength(1);
  });

  it("refuses at admission a message whose files cannot fit the model's window", async () => {
    const user = await createUser();
    const big = await uploaded(user, "word ".repeat(8_000), "text/plain", "big.txt");
    const { id } = await callJson("/conversations/", { token: user.access, body: {}, status: 201 });
    const refused = await expectError(await call(`/conversations/${id}/add_message/`, { token: user.access, body: { content: "read this", attachments: [big.id] } }), 413, "context_length_exceeded");
    expect(refused.message).toContain("with its files");
    expect((await callJson(`/conversations/${id}/messages/`, { token: user.access, status: 200 })).count).toBe(0);
  });
});

describe("files on a share link", () => {
  it("shows a shared message's images through the link's token only, without their file ids", async () => {
    const user = await createUser();
    const image = await uploaded(user, PNG_3x2, "image/png", "cat.png");
    const notes = await uploaded(user, "plain notes", "text/plain", "notes.txt");
    const turn = await callJson("/start_conversation/", { token: user.access, body: { content: "[stub: tokens=1] look", attachments: [image.id, notes.id] }, status: 201 });
    const { token } = await callJson(`/conversations/${turn.conversation.id}/share/`, { token: user.access, method: "POST", status: 201 });
    const shared = await callJson("/shared/", { headers: { Accept: "application/json", "X-Share-Token": token }, status: 200 });
    expect(shared.messages[0].images).toEqual([{ filename: "cat.png", width: 3, height: 2 }]);
    expect(JSON.stringify(shared)).not.toContain(image.id);
    const bytes = await call("/shared/images/0/0", { headers: { "X-Share-Token": token } });
    expect(bytes.status).toBe(200);
    expect(bytes.headers.get("Content-Type")).toBe("image/png");
    expect(new Uint8Array(await bytes.arrayBuffer())).toEqual(PNG_3x2);
    await expectError(await call("/shared/images/0/1", { headers: { "X-Share-Token": token } }), 404, "not_found");
    await expectError(await call("/shared/images/0/0", { headers: { "X-Share-Token": "A".repeat(22) } }), 404, "not_found");
    // Without auth, the file's own URL is no way in.
    await expectError(await call(`/files/${image.id}/content`), 401, "unauthorized");
  });
});

describe("housekeeping of files", () => {
  it("removes uploads no message carries once the grace period is over, and keeps those a message carries", async () => {
    const user = await createUser();
    const unused = await uploaded(user, "never sent", "text/plain", "unused.txt");
    const used = await uploaded(user, PNG_3x2, "image/png", "used.png");
    await callJson("/start_conversation/", { token: user.access, body: { content: "[stub: tokens=1] with a file", attachments: [used.id] }, status: 201 });
    expect(await deleteUnusedFiles(env)).toBe(0);
    expect(await deleteUnusedFiles(env, Date.now() + UNUSED_FILE_GRACE_MS + 60_000)).toBeGreaterThanOrEqual(1);
    await expectError(await call(`/files/${unused.id}/`, { token: user.access }), 404, "not_found");
    expect(await env.FILES.get(`users/${user.id}/${unused.sha256}`)).toBeNull();
    expect((await call(`/files/${used.id}/content`, { token: user.access })).status).toBe(200);
  });
});
