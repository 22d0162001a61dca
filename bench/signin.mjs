// `npm run bench -- --signin [--requests=30]`: what signing up and signing in cost the Worker.
// Both run PBKDF2-SHA256 at 100,000 iterations (the most production workerd allows) in the Worker.
// Sends the requests one at a time under `wrangler dev` and reads the workerd processes' CPU time
// from /proc around each kind; `GET /users/me/` (a verified JWT and one D1 read) is the baseline
// of a request that does not hash. Node's own PBKDF2 on this machine is shown for scale.
import { pbkdf2Sync } from "node:crypto";
import { percentiles, requestJson } from "./load.mjs";
import { startApiOnFakeUpstream } from "./processes.mjs";
import { cpuSeconds, workerdPids } from "./workerd-stats.mjs";

const PORT = 8816;
const API = `http://127.0.0.1:${PORT}`;
const PASSWORD = "sign-in bench password";
let addresses = 0;

/** A request from a fresh address (the per-address sign-in limit is not what is measured), timed. */
async function send(method, pathname, { body, token } = {}) {
  const t0 = performance.now();
  const clientIp = `10.20.${(addresses >> 8) & 255}.${addresses++ & 255}`;
  const json = await requestJson(API, pathname, { method, body, token, clientIp });
  return { json, ms: performance.now() - t0 };
}

/** `count` requests made by `makeRequest(i)`, one after another: workerd CPU per request and latency. */
async function measure(pids, count, makeRequest) {
  const cpuBefore = cpuSeconds(pids);
  const latencies = [];
  for (let i = 0; i < count; i++) latencies.push((await makeRequest(i)).ms);
  return { cpuMs: ((cpuSeconds(pids) - cpuBefore) * 1000) / count, p50: percentiles(latencies).p50 };
}

export async function signInBench({ requests = 30 } = {}) {
  const { api, cleanup } = await startApiOnFakeUpstream({ port: PORT });
  try {
    const pids = workerdPids(api.pid);
    const email = (i) => `signin-${i}@example.com`;
    for (let i = 0; i < 3; i++) await send("POST", "/auth/register/", { body: { email: email(`warm${i}`), password: PASSWORD } });
    const register = await measure(pids, requests, (i) => send("POST", "/auth/register/", { body: { email: email(i), password: PASSWORD } }));
    const tokens = [];
    const login = await measure(pids, requests, async (i) => {
      const result = await send("POST", "/auth/token/", { body: { email: email(i), password: PASSWORD } });
      tokens.push(result.json.access);
      return result;
    });
    const me = await measure(pids, requests, (i) => send("GET", "/users/me/", { token: tokens[i] }));
    const t0 = performance.now();
    for (let i = 0; i < 10; i++) pbkdf2Sync(PASSWORD, "0123456789abcdef", 100_000, 32, "sha256");
    const nodePbkdf2 = (performance.now() - t0) / 10;
    const row = (name, m) => `| ${name} | ${m.cpuMs.toFixed(1)} | ${m.p50.toFixed(1)} |`;
    return [
      `${requests} requests of each kind, one at a time, under \`wrangler dev\`.`,
      "",
      "| request | workerd CPU per request (ms) | latency p50 (ms) |",
      "| --- | --- | --- |",
      row("`POST /auth/register/` (PBKDF2, 100,000 iterations)", register),
      row("`POST /auth/token/` (PBKDF2, 100,000 iterations)", login),
      row("`GET /users/me/` (no hashing: a JWT and one D1 read)", me),
      `| for scale: Node's \`pbkdf2Sync\`, 100,000 iterations, this machine | ${nodePbkdf2.toFixed(1)} | – |`,
    ].join("\n");
  } finally {
    cleanup();
  }
}
