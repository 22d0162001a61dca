// The processes a benchmark starts (the fake upstream, wrangler dev), and stopping them all by
// process group when it ends, however it ends.
import { spawn } from "node:child_process";
import path from "node:path";

const ROOT = path.resolve(import.meta.dirname, "..");
const started = [];

/** Starts `command` in its own process group and resolves once its output matches `readyPattern`. */
export function startProcess(name, command, commandArgs, env, readyPattern) {
  const child = spawn(command, commandArgs, { cwd: ROOT, env: { ...process.env, ...env }, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  started.push(child);
  let output = "";
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

/** Stops everything `startProcess` started (each process group: wrangler's workerd children too). */
export function stopAll() {
  for (const child of started.splice(0)) {
    try {
      process.kill(-child.pid, "SIGTERM");
    } catch {}
  }
}

process.on("exit", stopAll);
