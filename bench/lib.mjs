// Small helpers shared by the benchmark scripts (plain Node, no dependencies).
import { fork } from "node:child_process";
import { loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import { groupStats } from "../test/e2e/harness.mjs";

// The workload's meters (bench/scenarios.mjs creates them): load, webhook latency, snapshot lag.
export const METER = "bench_tokens";
export const EVENT_TYPE = "bench.prompt";
export const HOOK_METER = "bench_calls";
export const HOOK_TYPE = "bench.call";
export const LAG_METER = "bench_lag";
export const LAG_TYPE = "bench.lag";

/** Nearest-rank percentile of an ascending array. */
export const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];

export const round = (x, digits = 2) => (x === null || x === undefined || !Number.isFinite(x) ? null : Math.round(x * 10 ** digits) / 10 ** digits);

/** p50/p90/p99/mean/max of latency samples in ms. */
export function summary(samples) {
  if (samples.length === 0) return { n: 0, p50: null, p90: null, p99: null, mean: null, max: null };
  const s = Float64Array.from(samples).sort();
  const mean = s.reduce((a, b) => a + b, 0) / s.length;
  return { n: s.length, p50: round(percentile(s, 50)), p90: round(percentile(s, 90)), p99: round(percentile(s, 99)), mean: round(mean), max: round(s[s.length - 1]) };
}

const CLOCK_TICKS = 100; // USER_HZ on Linux

/**
 * CPU time (ms, user + system) used so far by every live process of a process group: the gateway
 * runs in its own group (test/e2e/harness.mjs), so this is what Node, wrangler and workerd spent.
 * CPU per request is disturbed far less by other load on the machine than throughput is. null off Linux.
 */
export function groupCpuMs(pgid) {
  if (process.platform !== "linux" || !pgid) return null;
  const ticks = groupStats(pgid).reduce((n, f) => n + Number(f[11]) + Number(f[12]), 0); // utime + stime
  return (ticks * 1000) / CLOCK_TICKS;
}

/** The 1-minute load average, to say how busy the (shared) machine was during a measurement. */
export const load1 = () => round(loadavg()[0]);

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Wall clock with sub-ms resolution that two processes on one machine agree on. */
export const nowMs = () => performance.timeOrigin + performance.now();

/** The load generator process, and a way to run one command on it with its progress shown. */
export function startLoad(progress) {
  const child = fork(fileURLToPath(new URL("./load.mjs", import.meta.url)), [], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  let busy = Promise.resolve();
  const run = (runtime, label, cmd) => {
    const job = busy.then(
      () =>
        new Promise((resolve, reject) => {
          const onMessage = (m) => {
            if (m.type === "progress") {
              const rate = m.seconds > 0 ? ` · ${Math.round(m.events / m.seconds).toLocaleString("en-US")} ev/s` : "";
              progress(runtime, m.done !== undefined ? `${label}: ${m.done}/${m.total} rounds` : `${label}: ${m.phase} ${m.elapsed.toFixed(0)}/${m.total.toFixed(0)} s${rate}`);
              return;
            }
            child.off("message", onMessage);
            child.off("exit", onExit);
            if (m.type === "result") resolve(m.result);
            else reject(new Error(`${label}: ${m.error}`));
          };
          const onExit = (code) => reject(new Error(`load generator exited (${code}) during ${label}`));
          child.on("message", onMessage);
          child.once("exit", onExit);
          progress(runtime, `${label}: starting`);
          child.send(cmd);
        }),
    );
    busy = job.catch(() => {});
    return job;
  };
  return { run, stop: () => child.connected && child.send({ cmd: "exit" }), pid: child.pid };
}
