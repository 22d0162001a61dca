// `npm run bench -- --files [--uploads=10] [--turns=20]`: under `wrangler dev`, upload throughput
// (MiB/s, one upload at a time) for 1 MiB and 10 MiB files, and the time to first token of a turn
// that sends a 1 MiB image against one that sends none (each the first turn of a new
// conversation), against the fake upstream (50 ms to its first token).
import { crc32, deflateSync } from "node:zlib";
import os from "node:os";
import { percentiles, readSse, requestJson } from "./load.mjs";
import { startApiOnFakeUpstream } from "./processes.mjs";

const PORT = 8818;
const API = `http://127.0.0.1:${PORT}`;

/** A PNG of random pixels (it does not compress): `side`×`side` RGB, about 3 × side² bytes. */
function noisePng(side) {
  const chunk = (type, data) => {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([length, body, crc]);
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(side, 0);
  header.writeUInt32BE(side, 4);
  header.set([8, 2, 0, 0, 0], 8);
  const rows = Buffer.alloc(side * (1 + side * 3));
  for (let i = 0; i < rows.length; i++) rows[i] = i % (1 + side * 3) === 0 ? 0 : Math.floor(Math.random() * 256);
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk("IHDR", header), chunk("IDAT", deflateSync(rows)), chunk("IEND", Buffer.alloc(0))]);
}

async function upload(token, bytes, contentType, filename) {
  const t0 = performance.now();
  const response = await fetch(`${API}/files/?filename=${filename}`, { method: "POST", headers: { Authorization: `Bearer ${token}`, "Content-Type": contentType }, body: bytes });
  const body = await response.json();
  if (response.status !== 201) throw new Error(`upload: ${response.status} ${JSON.stringify(body)}`);
  return { ms: performance.now() - t0, file: body };
}

async function ttft(token, conversationId, attachments) {
  const t0 = performance.now();
  const response = await fetch(`${API}/conversations/${conversationId}/add_message/`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "text/event-stream", Authorization: `Bearer ${token}` },
    body: JSON.stringify({ content: "Describe it.", ...(attachments ? { attachments } : {}) }),
  });
  let first;
  await readSse(response, (event, _data, at) => {
    if (event === "delta") first ??= at;
  });
  return first - t0;
}

export async function filesBench({ uploads = 10, turns = 20 } = {}) {
  const { cleanup } = await startApiOnFakeUpstream({ port: PORT, upstreamEnv: { FAKE_TOKENS: "20" }, vars: { MODEL_CONTEXT_TOKENS: "*:128000" } });
  try {
    const body = { email: "files-bench@example.com", password: "bench password 1" };
    await requestJson(API, "/auth/register/", { body });
    const { access } = await requestJson(API, "/auth/token/", { body });
    const rows = [];
    for (const mib of [1, 10]) {
      const times = [];
      // Different bytes each time: the same bytes would be stored once and not uploaded to R2 again.
      for (let i = 0; i < uploads; i++) times.push((await upload(access, Buffer.from(`${i} `.padEnd(mib * 2 ** 20 - 64, "x")), "text/plain", `f${mib}-${i}.txt`)).ms);
      const { p50, p99 } = percentiles(times);
      rows.push(`| ${mib} MiB text file | ${p50.toFixed(0)} ms | ${p99.toFixed(0)} ms | ${((mib * 1000) / p50).toFixed(1)} MiB/s |`);
    }
    const png = noisePng(600);
    const { file: image } = await upload(access, png, "image/png", "noise.png");
    const newConversation = async () => (await requestJson(API, "/conversations/", { token: access, body: { title: "files bench", model_version: "gpt-4o" } })).id;
    const plain = [];
    const withImage = [];
    // Each turn the first of its conversation: a later turn would carry the branch's images too.
    for (let i = 0; i < turns; i++) {
      plain.push(await ttft(access, await newConversation(), null));
      withImage.push(await ttft(access, await newConversation(), [image.id]));
    }
    const [a, b] = [percentiles(plain), percentiles(withImage)];
    return [
      `## Files (${new Date().toISOString().slice(0, 10)})`,
      "",
      `Command: \`npm run bench -- --files --uploads=${uploads} --turns=${turns}\`. Machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? "cpu"}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}; wrangler dev, local R2.`,
      "",
      "| upload, one at a time | p50 | p99 | throughput at p50 |",
      "| --- | --- | --- | --- |",
      ...rows,
      "",
      `First turns of new conversations, alternating: a message alone, and one that sends a ${(png.length / 2 ** 20).toFixed(2)} MiB PNG (600×600, random pixels); fake upstream, 50 ms to its first token.`,
      "",
      "| turn | TTFT p50 | TTFT p99 |",
      "| --- | --- | --- |",
      `| text only (the floor) | ${a.p50.toFixed(1)} ms | ${a.p99.toFixed(1)} ms |`,
      `| with a 1 MiB image | ${b.p50.toFixed(1)} ms (+${(b.p50 - a.p50).toFixed(1)} ms, ${(b.p50 / a.p50).toFixed(2)}×) | ${b.p99.toFixed(1)} ms |`,
    ].join("\n");
  } finally {
    cleanup();
  }
}
