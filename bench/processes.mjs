// The processes a benchmark starts (the fake upstream, wrangler dev), and stopping them all by
// process group when it ends, however it ends.
import { execFileSync, spawn } from "node:child_process";
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

const ROOT = path.resolve(import.meta.dirname, "..");
const started = [];

/** Starts `command` in its own process group and resolves once its output matches `readyPattern`. */
export function startProcess(name, command, commandArgs, env, readyPattern) {
  const child = spawn(command, commandArgs, { cwd: ROOT, env: { ...process.env, ...env }, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  started.push(child);
  let output = "";
  if (process.env.BENCH_LOG) for (const stream of [child.stdout, child.stderr]) stream.on("data", (data) => appendFileSync(process.env.BENCH_LOG, data));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start:\n${output.slice(-2000)}`)), 60_000);
    const onData = (data) => {
      output += data;
      const match = readyPattern.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve({ child, match });
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("exit", (code) => reject(new Error(`${name} exited with ${code}:\n${output.slice(-2000)}`)));
  });
}

/** Resolves once `url` answers at all (wrangler's own log lines may be silenced). */
async function waitUntilServing(url) {
  for (const deadline = Date.now() + 60_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 100))) {
    try {
      await (await fetch(url)).arrayBuffer();
      return;
    } catch {}
  }
  throw new Error(`${url} did not answer within 60 s`);
}

/** Stops everything `startProcess` started (each process group: wrangler's workerd children too). */
export function stopAll() {
  for (const child of started.splice(0)) {
    try {
      process.kill(-child.pid, "SIGTERM");
    } catch {}
  }
}

process.on("exit", stopAll);

/**
 * The fake upstream (`upstreamEnv`: its knobs) and the API under `wrangler dev` on `port` against
 * it, on a fresh local state with every database migrated; `vars` go into the API's env file,
 * `devArgs` onto wrangler dev's command line; `beforeStart(state)` runs once the databases are migrated.
 * Returns the upstream's URL, the wrangler process and `cleanup` (stops both, removes the state).
 */
export async function startApiOnFakeUpstream({ port, upstreamEnv = {}, vars = {}, devArgs = [], beforeStart = () => {}, rateLimits = {} }) {
  const upstream = await startFakeUpstream(upstreamEnv);
  const { api, cleanup } = await startApi({ port, vars: { OPENAI_API_KEY: "bench", OPENAI_BASE_URL: `${upstream}/v1`, ...vars }, devArgs, beforeStart, rateLimits });
  return { upstream, api, cleanup };
}

/** bench/fake-openai.mjs with `upstreamEnv` as its knobs; resolves to its base URL. */
export async function startFakeUpstream(upstreamEnv = {}) {
  const upstreamProcess = await startProcess("fake upstream", process.execPath, ["bench/fake-openai.mjs"], upstreamEnv, /listening (\d+)/);
  return `http://127.0.0.1:${upstreamProcess.match[1]}`;
}

/**
 * wrangler.toml with other limits for the named rate limiting bindings, as a config file beside it
 * (its relative paths stay right); null when nothing is changed.
 */
function configWithRateLimits(rateLimits) {
  if (Object.keys(rateLimits).length === 0) return null;
  let config = readFileSync(path.join(ROOT, "wrangler.toml"), "utf8");
  for (const [name, limit] of Object.entries(rateLimits)) {
    config = config.replace(new RegExp(`(name = "${name}"[^\\[]*?simple = \\{ limit = )\\d+`), `$1${limit}`);
  }
  const file = path.join(ROOT, `.wrangler-bench-${process.pid}.toml`);
  writeFileSync(file, config);
  return file;
}

/** The API under `wrangler dev` on `port`, on a fresh local state with every database migrated, `vars` in its env file. */
export async function startApi({ port, vars = {}, devArgs = [], beforeStart = () => {}, rateLimits = {} }) {
  const config = configWithRateLimits(rateLimits);
  const state = mkdtempSync(path.join(tmpdir(), "genai-edge-bench-"));
  const settings = { JWT_SECRET: "b".repeat(43), LOG_LEVEL: "warn", MODEL_MAX_RETRIES: "0", ...vars };
  writeFileSync(path.join(state, "env"), Object.entries(settings).map(([k, v]) => `${k}=${v}`).join("\n"));
  const wrangler = path.join(ROOT, "node_modules", ".bin", "wrangler");
  // Also runs from an older checkout (one `DB` database), for before/after comparisons.
  if (existsSync(path.join(ROOT, "scripts", "apply-migrations.mjs"))) {
    execFileSync(process.execPath, ["scripts/apply-migrations.mjs", "--local", "--persist-to", state], { cwd: ROOT, stdio: "ignore" });
  } else {
    execFileSync(wrangler, ["d1", "migrations", "apply", "DB", "--local", "--persist-to", state], { cwd: ROOT, stdio: "ignore" });
  }
  beforeStart(state);
  const args = ["dev", "--ip", "127.0.0.1", "--port", String(port), "--persist-to", state, "--env-file", path.join(state, "env"), "--show-interactive-dev-session=false", ...(config ? ["--config", config] : []), ...devArgs];
  const api = await startProcess("wrangler dev", wrangler, args, { WRANGLER_SEND_METRICS: "false" }, /./); // any output: the process started; then wait until it serves
  await waitUntilServing(`http://127.0.0.1:${port}/health`);
  const cleanup = () => {
    stopAll();
    rmSync(state, { recursive: true, force: true });
    if (config) rmSync(config, { force: true });
  };
  return { api: api.child, cleanup };
}

/**
 * bench/passthrough-worker.js under its own `wrangler dev` on `port`, piping `upstream`'s stream
 * (or answering a constant to GET): the floor of the runtime itself. Resolves to its process.
 */
export async function startPassthrough(port, upstream) {
  const args = ["dev", "--config", "bench/passthrough.wrangler.toml", "--ip", "127.0.0.1", "--port", String(port), "--var", `UPSTREAM:${upstream}`, "--show-interactive-dev-session=false"];
  const { child } = await startProcess("passthrough wrangler dev", path.join(ROOT, "node_modules", ".bin", "wrangler"), args, { WRANGLER_SEND_METRICS: "false", CI: "1" }, /./);
  await waitUntilServing(`http://127.0.0.1:${port}/health`);
  return child;
}

