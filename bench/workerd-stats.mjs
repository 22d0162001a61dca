// CPU time and memory of the workerd processes a `wrangler dev` runs, read from /proc.
import { execFileSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";

const CLK_TCK = Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim());

/** The workerd processes under `rootPid` (wrangler runs them as its descendants). */
export function workerdPids(rootPid) {
  const processes = new Map();
  for (const entry of readdirSync("/proc").filter((e) => /^\d+$/.test(e))) {
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      processes.set(Number(entry), { ppid, comm });
    } catch {}
  }
  const tree = [rootPid];
  for (let i = 0; i < tree.length; i++) for (const [pid, p] of processes) if (p.ppid === tree[i]) tree.push(pid);
  return tree.filter((pid) => processes.get(pid)?.comm.startsWith("workerd"));
}

/** User + system CPU seconds the processes have used so far. */
export function cpuSeconds(pids) {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      ticks += Number(fields[11]) + Number(fields[12]); // utime, stime
    } catch {}
  }
  return ticks / CLK_TCK;
}

/** MiB of the processes together: `VmRSS` (resident now) or `VmHWM` (peak resident). */
export function memoryMiB(pids, field = "VmRSS") {
  let kib = 0;
  for (const pid of pids) {
    try {
      kib += Number(new RegExp(`${field}:\\s+(\\d+)`).exec(readFileSync(`/proc/${pid}/status`, "utf8"))[1]);
    } catch {}
  }
  return kib / 1024;
}
