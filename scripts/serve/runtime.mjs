// The serving runtime of `npm run serve`: the prepared bundle (./prepare.mjs) on workerd, through
// miniflare used as a library. Why miniflare, and why its "direct socket": see README
// "Self-hosting" and bench/serve-compare.mjs. In short, miniflare is the maintained provider of
// local D1 and Durable Object storage on disk (the same code `wrangler dev` uses, the same on-disk
// layout), and a direct socket binds the Worker itself on the public address, so a request never
// passes through miniflare's entry Worker or through Node: bare-workerd speed.
import child_process from "node:child_process";
import path from "node:path";
import { Cron } from "croner";
import { Log, LogLevel, Miniflare, convertV4MiniflareOptions } from "miniflare";

/** Where a data directory keeps its state: the layout of `wrangler dev --persist-to DIR`. */
export const persistRoot = (dataDir) => path.join(dataDir, "v3");

const base = (dataDir, log) => ({
  resourcePersistencePath: persistRoot(dataDir),
  enableDevRegistry: false, // no cross-process discovery: this is a server, not a dev session
  cf: false, // placeholder request.cf, never fetched from the network
  log,
  handleStructuredLogs: ({ level, message }) => (level === "error" || level === "warn" ? console.error(message) : console.log(message)),
});

/**
 * Applies every migration not yet recorded, in order, exactly as `wrangler d1 migrations apply
 * --local` does: same table (CREATE TABLE statement copied from wrangler), and each file plus its
 * bookkeeping row in one D1 batch, so a migration is applied completely or not at all. Runs in its
 * own short-lived miniflare (as wrangler's does) before the server opens its port, so no request
 * ever sees a half-migrated database. Returns the names applied.
 */
export async function applyMigrations({ manifest, dataDir, log }) {
  const targets = manifest.d1Migrations.filter((t) => t.migrations.length > 0);
  if (targets.length === 0) return [];
  const d1Databases = Object.fromEntries(targets.map((t) => [t.binding, manifest.d1Databases[t.binding].id]));
  const mf = new Miniflare(convertV4MiniflareOptions({ ...base(dataDir, log), modules: true, script: "", d1Databases }));
  dropForeignSignalHandlers();
  const applied = [];
  try {
    for (const target of targets) {
      const db = await mf.getD1Database(target.binding);
      const table = `"${target.table.replace(/"/g, '""')}"`;
      await db.exec(
        `CREATE TABLE IF NOT EXISTS ${table}( id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT UNIQUE, applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL );`,
      );
      const done = new Set((await db.prepare(`SELECT name FROM ${table} ORDER BY id`).all()).results.map((r) => r.name));
      for (const m of target.migrations) {
        if (done.has(m.name)) continue;
        try {
          await db.batch([...m.queries.map((q) => db.prepare(q)), db.prepare(`INSERT INTO ${table} (name) VALUES (?)`).bind(m.name)]);
        } catch (err) {
          throw new Error(`D1 migration ${target.binding}/${m.name} failed: ${err?.cause?.message ?? err?.message ?? err}`);
        }
        applied.push(`${target.binding}/${m.name}`);
      }
    }
  } finally {
    await mf.dispose();
  }
  return applied;
}

/**
 * miniflare runs workerd as a child process but does not hand it out, stops it only with SIGKILL,
 * and restarts it whenever it exits. workerd itself drains on SIGTERM (stops accepting, finishes
 * the requests in flight, exits 0), which is what a graceful stop needs, so the workerd processes
 * miniflare spawns are tracked here (child_process.spawn is wrapped; miniflare calls it through the
 * shared module object).
 */
const workerds = new Set();
const exitListeners = new Set();
let spawnWrapped = false;
function trackWorkerdProcesses() {
  if (spawnWrapped) return;
  spawnWrapped = true;
  const spawn = child_process.spawn;
  child_process.spawn = function trackedSpawn(command, ...rest) {
    const child = spawn.call(this, command, ...rest);
    if (typeof command === "string" && /^workerd(\.exe)?$/.test(path.basename(command))) {
      workerds.add(child);
      child.once("exit", (code, signal) => {
        workerds.delete(child);
        for (const listener of exitListeners) listener(code, signal);
      });
    }
    return child;
  };
}
const liveWorkerds = () => [...workerds].filter((c) => c.exitCode === null && c.signalCode === null);

/**
 * An exit that someone asked for: workerd drained after a SIGTERM (exit 0), or was interrupted
 * (SIGINT / SIGTERM / SIGHUP, e.g. Ctrl-C reaches the whole process group). Anything else (a crash,
 * the OOM killer's SIGKILL) is left to miniflare, which starts a new workerd on the same storage.
 */
const RESTART_WATCH_MS = 30_000;
const requestedExit = (code, signal) => code === 0 || signal === "SIGINT" || signal === "SIGTERM" || signal === "SIGHUP";

/**
 * Starts the Worker on host:port with its storage under dataDir. Resolves once the port answers.
 * `socket: "entry"` puts miniflare's entry Worker in front instead (its default set-up; kept for
 * bench/serve-compare.mjs, which measures what the direct socket saves).
 * @returns {Promise<{ url: string, stop: (graceMs?: number) => Promise<void>, mf: Miniflare }>}
 */
export async function startServer({ buildDir, manifest, dataDir, host, port, vars, log, onStopped, onCronError, socket = "direct", inspectorPort }) {
  const direct = socket === "direct";
  trackWorkerdProcesses();
  const mf = new Miniflare(
    convertV4MiniflareOptions({
      ...base(dataDir, log),
      // miniflare's own entry socket (used from Node for cron dispatch) stays on loopback, any port.
      host: direct ? "127.0.0.1" : host,
      port: direct ? 0 : port,
      logRequests: false,
      // Cron dispatch goes through this socket (scheduleCrons). Only in direct mode, where it is
      // miniflare's own loopback socket (any local process may fire a cron through it; the public
      // socket answers that path 404): in entry mode it is the public one.
      unsafeTriggerHandlers: direct,
      // Profiling only (README "Performance"): Chrome DevTools protocol on 127.0.0.1 for CPU profiles.
      ...(inspectorPort ? { inspectorPort } : {}),
      workers: [
        {
          name: manifest.name, // with the class name, this names the DO storage folder, as wrangler does
          scriptPath: path.join(buildDir, manifest.script),
          modulesRoot: buildDir,
          modules: true,
          compatibilityDate: manifest.compatibilityDate,
          compatibilityFlags: manifest.compatibilityFlags,
          bindings: vars,
          durableObjects: manifest.durableObjects,
          d1Databases: manifest.d1Databases,
          ratelimits: manifest.ratelimits ?? {},
          ...(direct ? { unsafeDirectSockets: [{ host, port }] } : {}),
        },
      ],
    }),
  );
  dropForeignSignalHandlers();
  let stopping = null;
  let disposed = null;
  const dispose = () => (disposed ??= mf.dispose());
  // Called in the exit event itself, before miniflare's own (promise-based) exit handling runs: a
  // dispose() started here stops miniflare from taking the exit for a crash and restarting workerd.
  const onWorkerdExit = (code, signal) => {
    if (stopping || requestedExit(code, signal)) {
      dispose();
      if (!stopping) onStopped?.(`workerd stopped (${signal ?? `exit ${code}`})`, 0);
      return;
    }
    // A crash: miniflare restarts workerd. If no workerd is running a while later, give up, so that
    // a supervisor (systemd, Docker) sees the failure and restarts the whole service.
    setTimeout(() => {
      if (!stopping && liveWorkerds().length === 0) onStopped?.("workerd crashed and could not be restarted", 1);
    }, RESTART_WATCH_MS).unref();
  };
  exitListeners.add(onWorkerdExit);
  try {
    await mf.ready;
  } catch (err) {
    exitListeners.delete(onWorkerdExit);
    await dispose().catch(() => {});
    throw err;
  }
  const url = (direct ? await mf.unsafeGetDirectURL(manifest.name) : await mf.ready).href.replace(/\/$/, "");
  // Entry mode (bench/serve-compare.mjs only) runs no crons: see unsafeTriggerHandlers above.
  const crons = scheduleCrons(mf, direct ? manifest.crons : [], onCronError);

  async function stop(graceMs = 10_000) {
    if (stopping) return stopping;
    stopping = (async () => {
      crons.stop(); // no new runs; one in flight is a request inside workerd and is drained with the rest
      const live = liveWorkerds();
      const exited = Promise.all(live.map((c) => new Promise((resolve) => c.once("exit", resolve))));
      for (const c of live) c.kill("SIGTERM"); // its exit disposes (onWorkerdExit)
      let timer;
      await Promise.race([exited, new Promise((resolve) => (timer = setTimeout(resolve, graceMs)))]);
      clearTimeout(timer);
      await dispose(); // after the grace period: SIGKILL whatever is left (acknowledged writes are on disk)
      exitListeners.delete(onWorkerdExit);
    })();
    return stopping;
  }
  return { url, stop, mf };
}

/**
 * Cron triggers: miniflare (like `wrangler dev`) never fires them by itself. Each expression of
 * wrangler.toml [triggers] crons is scheduled here with croner, in UTC as on Cloudflare, and
 * dispatched to the Worker's scheduled() handler. A run that is still going when the next is due
 * is not doubled (protect); a missed run (process down) is not caught up, as on Cloudflare.
 *
 * Dispatched by an ordinary (async) request to miniflare's trigger path, never through
 * `mf.getWorker()`: that proxy blocks Node's main thread (Atomics.wait) until workerd answers, and
 * a workerd whose log output filled the pipe meanwhile waits for Node to read it. The two then wait
 * for each other forever: the server hung, SIGTERM included (serve-runtime.e2e.test.ts).
 */
function scheduleCrons(mf, expressions, onError) {
  let stopped = false;
  const report = (cron, err) => {
    if (stopped) return; // a run cut short by shutdown is not a failure worth a line
    if (onError) onError(cron, err);
    else console.error(`edgemeter serve: cron "${cron}" failed: ${err}`);
  };
  const jobs = expressions.map(
    (cron) =>
      new Cron(cron, { timezone: "Etc/UTC", protect: true }, async (self) => {
        try {
          const at = (self.currentRun() ?? new Date()).getTime();
          const res = await mf.dispatchFetch(`http://localhost/cdn-cgi/local/scheduled?format=json&cron=${encodeURIComponent(cron)}&time=${at}`);
          const text = await res.text();
          let outcome;
          try {
            outcome = JSON.parse(text).outcome;
          } catch {
            outcome = undefined;
          }
          if (outcome !== "ok") report(cron, outcome ? `outcome ${outcome}` : `HTTP ${res.status}: ${text.slice(0, 200)}`);
        } catch (err) {
          report(cron, err?.message ?? err);
        }
      }),
  );
  return {
    stop() {
      stopped = true;
      for (const job of jobs) job.stop();
    },
  };
}

/** Validates cron expressions before anything starts (croner's parser, UTC). */
export function checkCrons(expressions) {
  for (const cron of expressions) {
    try {
      new Cron(cron, { timezone: "Etc/UTC", paused: true }).stop();
    } catch (err) {
      throw new Error(`invalid cron expression "${cron}" in wrangler.toml: ${err.message}`);
    }
  }
}

/**
 * miniflare installs SIGINT/SIGTERM/SIGHUP handlers that SIGKILL workerd and exit at once. Where the
 * process has its own handler (a function marked `edgemeterServe`, see scripts/serve.mjs), those
 * are removed so that the graceful stop above can run. Its "exit" hook stays: workerd never
 * outlives Node.
 */
function dropForeignSignalHandlers() {
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
    const listeners = process.listeners(signal);
    if (!listeners.some((l) => l.edgemeterServe)) continue;
    for (const l of listeners) if (!l.edgemeterServe) process.off(signal, l);
  }
}

export { Log, LogLevel };
