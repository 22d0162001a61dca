// Load helpers shared by the benchmarks.

export function percentiles(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] : NaN);
  return { n: sorted.length, p50: at(0.5), p95: at(0.95), p99: at(0.99), max: sorted.at(-1) ?? NaN };
}

/** `connections` clients sending GET `makePath()` to `base` one after another for `seconds`. */
export async function loadEndpoint(base, token, makePath, seconds, connections = 50) {
  const latencies = [];
  let errors = 0;
  const deadline = performance.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (performance.now() < deadline) {
        const t0 = performance.now();
        const response = await fetch(`${base}${makePath()}`, { headers: { Authorization: `Bearer ${token}` } });
        await response.arrayBuffer();
        if (response.status !== 200) errors++;
        latencies.push(performance.now() - t0);
      }
    }),
  );
  return { rps: latencies.length / seconds, latency: percentiles(latencies), errors };
}
