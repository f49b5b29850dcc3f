// Small helpers shared by the benchmark scripts (plain Node, no dependencies).
import { fork, spawn } from "node:child_process";
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

/**
 * Counts the fsync and pread calls of a process group's workerd processes from now until stop().
 * An fsync is one storage commit of a local SQLite database (a Durable Object's or D1's), which
 * workerd syncs to disk before the answer. Commits are shared by the requests that reach one Durable
 * Object in the same turn, so fsyncs per request say how much of that batching a workload gets
 * (README "Performance", 1,000 subjects). A pread is a page SQLite's page cache did not hold, read
 * from the OS (docs/performance.md, duplicates). Uses `perf stat` on the syscall tracepoints: no
 * slowdown, but Linux with perf and tracefs only; stop() resolves null anywhere else.
 */
export function storageCalls(pgid) {
  const pids = process.platform === "linux" && pgid ? groupStats(pgid).filter((f) => f.comm === "workerd").map((f) => f.pid) : [];
  if (pids.length === 0) return { stop: async () => null };
  let out = "";
  let failed = false;
  const perf = spawn("perf", ["stat", "-x", ",", "-e", "syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync,syscalls:sys_enter_pread64", "-p", pids.join(",")], { stdio: ["ignore", "ignore", "pipe"] });
  perf.on("error", () => (failed = true));
  perf.stderr.on("data", (c) => (out += c));
  const exited = new Promise((resolve) => perf.once("close", resolve));
  return {
    async stop() {
      if (!failed) perf.kill("SIGINT");
      await exited;
      const count = (event) => Number(out.match(new RegExp(`^(\\d+),[^,]*,syscalls:sys_enter_${event}\\b`, "m"))?.[1] ?? NaN);
      const [fsync, fdatasync, reads] = ["fsync", "fdatasync", "pread64"].map(count);
      return failed || [fsync, fdatasync, reads].some(Number.isNaN) ? null : { syncs: fsync + fdatasync, reads };
    },
  };
}

/** The 1-minute load average, to say how busy the (shared) machine was during a measurement. */
export const load1 = () => round(loadavg()[0]);

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Wall clock with sub-ms resolution that two processes on one machine agree on. */
export const nowMs = () => performance.timeOrigin + performance.now();

/**
 * Each of `queries` ([label, path]; FROM_DAY in a path becomes 24 hours ago) `rounds` times against the
 * gateway, printed as it goes: per label the answer's rows and their sum, p50 and max ms (query-scale,
 * report-scale).
 */
export async function timeQueries(gw, name, queries, rounds) {
  const out = {};
  for (const [label, p] of queries) {
    const url = p.replace("FROM_DAY", encodeURIComponent(new Date(Date.now() - 86_400_000).toISOString()));
    const samples = [];
    let total = null;
    for (let i = 0; i < rounds; i++) {
      const t = nowMs();
      const res = await gw.fetch(url);
      const body = await res.json();
      samples.push(nowMs() - t);
      if (res.status !== 200) throw new Error(`${label}: ${res.status} ${JSON.stringify(body).slice(0, 300)}`);
      total = { rows: body.data.length, sum: body.data.reduce((n, r) => n + r.value, 0) };
    }
    samples.sort((a, b) => a - b);
    out[label] = { ...total, p50Ms: round(percentile(samples, 50), 1), maxMs: round(samples.at(-1), 1) };
    console.log(`${name} · ${label}: p50 ${out[label].p50Ms} ms · max ${out[label].maxMs} ms · ${total.rows} rows summing to ${total.sum}`);
  }
  return out;
}

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
