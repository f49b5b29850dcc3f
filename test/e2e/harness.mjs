// Start a real edgemeter gateway for end-to-end tests and benchmarks, with either runtime:
//   "dev"   `npm start`:     scripts/start.mjs → `wrangler dev` → workerd (the default)
//   "serve" `npm run serve`: scripts/serve.mjs → production bundle on workerd, no dev proxy
// Both keep their state in the same layout, so one state dir can be used by either.
// Plain ESM with Node built-ins only, so bench/ scripts can import it too.
//
//   let gw = await startGateway();      // free port, fresh temp state dir, random admin key
//   let gw = await startGateway({ runtime: "serve" });
//   await fetch(`${gw.baseUrl}/healthz`);
//   gw = await gw.restart();            // SIGTERM, then a new process: same port, state dir, key
//   await gw.kill9();                   // crash: SIGKILL to the whole process group
//   gw = await gw.start();              // back up on the same state
//   await gw.cleanup();                 // stop, and remove the temp state dir
//
// Each gateway runs in its own process group (spawned detached), so stop() / kill9() take down
// start.mjs / serve.mjs and every wrangler and workerd child together, by group id.
// Set EDGEMETER_E2E_LOG=1 to stream the gateway's output to stderr; otherwise the last lines are kept
// and attached to the error when startup fails.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
/** How each runtime is started, and the line it prints once it serves on `port`. */
const RUNTIMES = {
  dev: {
    script: path.join(ROOT, "scripts", "start.mjs"),
    args: (port, stateDir) => ["--port", String(port), "--persist-to", stateDir],
    ready: (port) => new RegExp(`Ready on https?://127\\.0\\.0\\.1:${port}\\b`),
  },
  serve: {
    script: path.join(ROOT, "scripts", "serve.mjs"),
    args: (port, stateDir) => ["--host", "127.0.0.1", "--port", String(port), "--data", stateDir],
    ready: (port) => new RegExp(`edgemeter serve: listening on http://127\\.0\\.0\\.1:${port}\\b`),
  },
};
const STOP_GRACE_MS = 5_000;
const OUTPUT_LINES_KEPT = 200;

/** Live gateways, killed if the test process exits without stopping them. */
const live = new Set();
process.once("exit", () => {
  for (const pid of live) killGroup(pid, "SIGKILL");
});

/**
 * Types and option docs: ./harness.d.mts.
 * @param {import("./harness.d.mts").GatewayOptions} [options]
 * @returns {Promise<import("./harness.d.mts").Gateway>}
 */
export async function startGateway(options = {}) {
  const port = options.port ?? (await freePort());
  const ownsStateDir = options.stateDir === undefined;
  const stateDir = options.stateDir ?? mkdtempSync(path.join(tmpdir(), "edgemeter-e2e-"));
  const adminKey = options.adminKey ?? `em_admin_${randomBytes(32).toString("base64url")}`;
  const runtime = options.runtime ?? "dev";
  if (!RUNTIMES[runtime]) throw new Error(`unknown runtime ${JSON.stringify(runtime)} (dev or serve)`);
  try {
    return await launch({
      runtime,
      port,
      stateDir,
      ownsStateDir,
      adminKey,
      env: options.env ?? {},
      timeoutMs: options.timeoutMs ?? 60_000,
      log: options.log ?? Boolean(process.env.EDGEMETER_E2E_LOG),
    });
  } catch (err) {
    if (ownsStateDir) rmSync(stateDir, { recursive: true, force: true });
    throw err;
  }
}

async function launch(cfg) {
  const { port, stateDir, adminKey, timeoutMs, log } = cfg;
  const runtime = RUNTIMES[cfg.runtime];
  const baseUrl = `http://127.0.0.1:${port}`;
  const env = {
    ...process.env,
    // Webhook receivers in tests are plain http on 127.0.0.1.
    ALLOW_INSECURE_WEBHOOKS: "true",
    ...cfg.env,
    ADMIN_API_KEY: adminKey,
    // start.mjs shuts the gateway down when this pipe closes, i.e. when this process dies in any way
    // (Ctrl-C on vitest, a crash, SIGKILL) without calling stop(): no workerd left holding the port.
    EDGEMETER_STDIN_LIFELINE: "1",
    FORCE_COLOR: "0",
  };
  // The flags below decide; don't let the caller's shell pick another address, port or state dir.
  for (const name of ["HOST", "PORT", "EDGEMETER_STATE_DIR", "EDGEMETER_DATA_DIR"]) delete env[name];

  // process.execPath: vitest (via npm) already runs on the bundled Node 22 (serve.mjs needs it;
  // start.mjs falls back to it by itself).
  const child = spawn(process.execPath, [runtime.script, ...runtime.args(port, stateDir)], {
    cwd: ROOT,
    env,
    detached: true, // own process group: one kill reaches wrangler and workerd too
    stdio: ["pipe", "pipe", "pipe"], // stdin: the lifeline, never written to
  });
  child.stdin.on("error", () => {});
  const pid = child.pid;
  if (pid === undefined) {
    await new Promise((resolve) => child.once("error", resolve));
    throw new Error(`could not spawn ${runtime.script}`);
  }
  live.add(pid);

  const lines = [];
  const state = { buildFailed: false, ready: false };
  const readyLine = runtime.ready(port);
  const collector = () => {
    let partial = "";
    return (chunk) => {
      const text = chunk.toString();
      if (log) process.stderr.write(text);
      const parts = (partial + text).split("\n");
      partial = parts.pop() ?? "";
      for (const line of parts) {
        if (!line.trim()) continue;
        lines.push(line);
        // Only our own server's ready line counts: a foreign server that grabbed the port between
        // freePort() and our bind would answer /healthz too, while ours exits.
        if (readyLine.test(line)) state.ready = true;
        // wrangler dev does not exit on a build error (it waits for a file change): fail fast instead.
        if (line.includes("Build failed")) state.buildFailed = true;
      }
      if (lines.length > OUTPUT_LINES_KEPT) lines.splice(0, lines.length - OUTPUT_LINES_KEPT);
    };
  };
  child.stdout.on("data", collector());
  child.stderr.on("data", collector());
  const output = () => lines.join("\n");

  /** @type {Promise<{ code: number | null, signal: string | null }>} */
  const exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));

  async function terminate(signal) {
    if (!groupAlive(pid)) return forget();
    killGroup(pid, signal);
    if (signal !== "SIGKILL" && !(await waitGroupGone(pid, STOP_GRACE_MS))) killGroup(pid, "SIGKILL");
    if (!(await waitGroupGone(pid, STOP_GRACE_MS))) throw new Error(`gateway process group ${pid} did not exit`);
    forget();
  }
  function forget() {
    live.delete(pid);
    child.stdin.destroy();
  }

  /** @type {import("./harness.d.mts").Gateway} */
  const gateway = {
    runtime: cfg.runtime,
    baseUrl,
    port,
    adminKey,
    stateDir,
    pid,
    stop: () => terminate("SIGTERM"),
    kill9: () => terminate("SIGKILL"),
    start: () => launch(cfg),
    restart: async () => {
      await terminate("SIGTERM");
      return launch(cfg);
    },
    cleanup: async () => {
      await terminate("SIGTERM");
      if (cfg.ownsStateDir) rmSync(stateDir, { recursive: true, force: true });
    },
    output,
    fetch: (p, init = {}) => {
      const headers = new Headers(init.headers);
      if (!headers.has("authorization")) headers.set("authorization", `Bearer ${adminKey}`);
      return fetch(new URL(p, baseUrl), { ...init, headers });
    },
  };

  try {
    await waitHealthy(baseUrl, exited, timeoutMs, state);
  } catch (err) {
    await terminate("SIGKILL").catch(() => {});
    throw new Error(`${err.message}\n--- gateway output (last lines) ---\n${output()}`);
  }
  return gateway;
}

async function waitHealthy(baseUrl, exited, timeoutMs, state) {
  const deadline = Date.now() + timeoutMs;
  let early = null;
  exited.then((e) => (early = e));
  let lastProblem = "the gateway has not reported that it is ready yet";
  while (Date.now() < deadline) {
    if (early) throw new Error(`gateway exited before it was healthy (code ${early.code}, signal ${early.signal})`);
    if (state.buildFailed) throw new Error("wrangler could not build the Worker");
    if (state.ready) {
      try {
        const res = await fetch(`${baseUrl}/healthz`, { signal: AbortSignal.timeout(2_000) });
        await res.arrayBuffer().catch(() => {});
        if (res.status === 200 && !early) return;
        lastProblem = `GET /healthz answered ${res.status}`;
      } catch (err) {
        lastProblem = `GET /healthz: ${err.cause?.code ?? err.message}`;
      }
    }
    await sleep(250);
  }
  throw new Error(`gateway at ${baseUrl} not healthy after ${timeoutMs} ms (${lastProblem})`);
}

/** A port that was free a moment ago on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = /** @type {import("node:net").AddressInfo} */ (srv.address());
      srv.close(() => resolve(port));
    });
  });
}

function killGroup(pid, signal) {
  try {
    process.kill(-pid, signal);
  } catch (err) {
    if (err.code !== "ESRCH") throw err;
  }
}

/**
 * The /proc/<pid>/stat fields of each process of group `pgid`, from the third on (state, ppid, pgrp, …,
 * utime at [11], stime at [12]). Linux only: throws where there is no /proc.
 */
export function groupStats(pgid) {
  const out = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let stat;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue; // exited meanwhile
    }
    // "pid (comm) state ppid pgrp ..."; comm may contain spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (Number(fields[2]) === pgid) out.push(Object.assign(fields, { pid: Number(entry), comm: stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")")) }));
  }
  return out;
}

/** True while any process of the group is alive (zombies waiting to be reaped don't count). */
function groupAlive(pid) {
  if (process.platform === "linux") {
    try {
      return groupStats(pid).some(([state]) => state !== "Z");
    } catch {
      // no /proc: fall back to kill(2)
    }
  }
  try {
    process.kill(-pid, 0);
    return true;
  } catch (err) {
    return err.code === "EPERM";
  }
}

async function waitGroupGone(pid, ms) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (!groupAlive(pid)) return true;
    await sleep(50);
  }
  return !groupAlive(pid);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
