#!/usr/bin/env node
// `npm run serve`: self-hosted production serving. Builds the bundle `wrangler deploy` would upload,
// applies the D1 migrations, and runs the Worker on workerd with Durable Objects and D1 stored on
// disk under a data directory, without wrangler's development proxy.
//
//   ADMIN_API_KEY=... npm run serve                          # http://127.0.0.1:8787, state in ./data
//   ADMIN_API_KEY=... npm run serve -- --host 0.0.0.0 --port 9000 --data /var/lib/edgemeter
//
// Environment: ADMIN_API_KEY (required; never generated), HOST, PORT, EDGEMETER_DATA_DIR, and any
// variable declared under [vars] in wrangler.toml (e.g. EVENT_RETENTION_DAYS) to override it.
// .dev.vars is never read: it is `npm start`'s. Flags win over the environment.
//
// SIGTERM / SIGINT: stop taking connections, finish requests in flight (up to 10 s), exit 0.
// Everything answered 2xx is on disk before the answer (Durable Object output gates; D1 is a
// SQLite-backed Durable Object too), so even SIGKILL loses nothing acknowledged.
// Design, numbers and operations: README "Self-hosting".
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const PREPARE = path.join(ROOT, "scripts", "serve", "prepare.mjs");
const BUILDS = path.join(ROOT, ".wrangler", "serve");
const DEFAULT_HOST = "127.0.0.1";
const DEFAULT_PORT = 8787;
const SHUTDOWN_GRACE_MS = 10_000;
const SIGNALS = ["SIGTERM", "SIGINT", "SIGHUP"];

const USAGE = `usage: npm run serve -- [--host ADDR] [--port N] [--data DIR]

  --host ADDR      address to listen on (default: $HOST or ${DEFAULT_HOST})
  --port, -p N     port (default: $PORT or ${DEFAULT_PORT}; 0 = any free port)
  --data, -d DIR   Durable Object + D1 storage (default: $EDGEMETER_DATA_DIR or ./data)

  ADMIN_API_KEY must be set in the environment. Variables declared under [vars] in
  wrangler.toml (EVENT_RETENTION_DAYS, CONFIG_CACHE_SECONDS, ...) may be overridden from it.
`;

function fail(message, code = 2) {
  console.error(`edgemeter serve: ${message}`);
  process.exit(code);
}

function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const eq = arg.startsWith("--") ? arg.indexOf("=") : -1;
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    const value = () => {
      const v = eq > 0 ? arg.slice(eq + 1) : argv[++i];
      if (v === undefined || v === "") fail(`${flag} needs a value\n\n${USAGE}`);
      return v;
    };
    if (flag === "--host") out.host = value();
    else if (flag === "--port" || flag === "-p") out.port = value();
    else if (flag === "--data" || flag === "-d") out.data = value();
    else if (flag === "--help" || flag === "-h") out.help = true;
    else fail(`unknown argument ${JSON.stringify(arg)}\n\n${USAGE}`);
  }
  return out;
}

function parsePort(raw, source) {
  const text = String(raw).trim();
  const port = Number(text);
  if (!/^\d+$/.test(text) || port > 65535) fail(`invalid port ${JSON.stringify(raw)} (from ${source})`);
  return port;
}

function parseHost(raw, source) {
  const host = String(raw).trim().replace(/^\[(.*)\]$/, "$1");
  if (!net.isIP(host) && host !== "localhost") fail(`invalid host ${JSON.stringify(raw)} (from ${source}): give an IP address`);
  return host === "localhost" ? "127.0.0.1" : host;
}

const version = (file) => JSON.parse(readFileSync(path.join(ROOT, file), "utf8")).version;
const pidAlive = (pid) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === "EPERM";
  }
};

/**
 * One server per data directory: two workerd processes on the same Durable Object files would each
 * believe they own every object. The lock names the holder's pid; a lock whose process is gone (or,
 * on Linux, is no longer a serve process: pids are reused after a crash) is taken over.
 */
function lockDataDir(dataDir) {
  const file = path.join(dataDir, "serve.lock");
  if (existsSync(file)) {
    const pid = Number(readFileSync(file, "utf8").trim());
    let holder = Number.isInteger(pid) && pid > 0 && pid !== process.pid && pidAlive(pid);
    if (holder && process.platform === "linux") {
      try {
        holder = readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("serve.mjs");
      } catch {
        holder = false;
      }
    }
    if (holder) fail(`data directory ${dataDir} is in use by another edgemeter serve (pid ${pid}); stop it first`, 1);
  }
  writeFileSync(file, `${process.pid}\n`);
  return () => {
    try {
      if (readFileSync(file, "utf8").trim() === String(process.pid)) rmSync(file);
    } catch {}
  };
}

/** A fresh build folder per process; folders of processes that are gone (e.g. SIGKILL) are removed. */
function buildDir() {
  mkdirSync(BUILDS, { recursive: true });
  for (const name of readdirSync(BUILDS)) {
    if (/^\d+$/.test(name) && !pidAlive(Number(name))) rmSync(path.join(BUILDS, name), { recursive: true, force: true });
  }
  const dir = path.join(BUILDS, String(process.pid));
  rmSync(dir, { recursive: true, force: true });
  return dir;
}

/** Runs ./serve/prepare.mjs (bundle + config + migrations); its output is shown only if it fails. */
function prepare(dir, state) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [PREPARE, dir], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    state.child = child;
    let output = "";
    child.stdout.on("data", (c) => (output += c));
    child.stderr.on("data", (c) => (output += c));
    child.on("error", reject);
    child.on("exit", (code, signal) => {
      state.child = null;
      if (code === 0) resolve(JSON.parse(readFileSync(path.join(dir, "manifest.json"), "utf8")));
      else reject(new Error(`build failed (${signal ?? `exit ${code}`}):\n${output.trim()}`));
    });
  });
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  if (args.help) return void process.stdout.write(USAGE);
  if (Number(process.versions.node.split(".")[0]) < 22) fail(`Node >= 22 is needed (this is ${process.version}); run it as \`npm run serve\`, which brings Node 22`);

  const adminKey = process.env.ADMIN_API_KEY?.trim();
  if (!adminKey) fail("ADMIN_API_KEY is not set: a production server never invents its admin key. Set it in the environment (e.g. from your secret store) and start again.");
  const host = args.host !== undefined ? parseHost(args.host, "--host") : process.env.HOST ? parseHost(process.env.HOST, "$HOST") : DEFAULT_HOST;
  const port = args.port !== undefined ? parsePort(args.port, "--port") : process.env.PORT ? parsePort(process.env.PORT, "$PORT") : DEFAULT_PORT;
  const dataDir = path.resolve(args.data ?? (process.env.EDGEMETER_DATA_DIR || "data"));
  mkdirSync(dataDir, { recursive: true });
  const unlock = lockDataDir(dataDir);
  const build = buildDir();

  // A log pipe whose reader is gone (npm or a terminal that went away) must not crash the server.
  process.stdout.on("error", () => {});
  process.stderr.on("error", () => {});

  // Signals are ours from here on: a stop during the build or the migrations ends cleanly too.
  const state = { child: null, server: null, stopping: false };
  const cleanup = () => {
    unlock();
    rmSync(build, { recursive: true, force: true });
  };
  const shutdown = async (why, code = 0) => {
    if (state.stopping) return;
    state.stopping = true;
    (code === 0 ? console.log : console.error)(`edgemeter serve: ${why}, shutting down`);
    state.child?.kill("SIGTERM");
    if (state.server) await state.server.stop(SHUTDOWN_GRACE_MS).catch((err) => console.error(`edgemeter serve: stop: ${err.message}`));
    process.exit(code);
  };
  const handler = (signal) => void shutdown(signal);
  handler.edgemeterServe = true; // see dropForeignSignalHandlers in ./serve/runtime.mjs
  for (const s of SIGNALS) process.on(s, handler);
  process.on("exit", cleanup); // also on a failed start
  watchLifeline(() => void shutdown("parent went away (stdin closed)"));
  watchNpm(() => void shutdown("npm stopped"));

  let manifest;
  try {
    manifest = await prepare(build, state);
  } catch (err) {
    fail(err.message, 1);
  }

  // [vars] from wrangler.toml, each overridable from the environment; the admin key only from it.
  const vars = { ...manifest.vars };
  for (const name of Object.keys(vars)) if (process.env[name] !== undefined) vars[name] = process.env[name];
  vars.ADMIN_API_KEY = adminKey;

  // Imported only now: miniflare takes ~2 s to load, and --help or a missing key should not wait.
  const runtime = await import("./serve/runtime.mjs");
  const log = new runtime.Log(runtime.LogLevel.WARN, { prefix: "edgemeter serve" });
  let applied;
  try {
    runtime.checkCrons(manifest.crons);
    applied = await runtime.applyMigrations({ manifest, dataDir, log });
    const inspectorPort = process.env.EDGEMETER_INSPECTOR_PORT ? parsePort(process.env.EDGEMETER_INSPECTOR_PORT, "$EDGEMETER_INSPECTOR_PORT") : undefined;
    state.server = await runtime.startServer({ buildDir: build, manifest, dataDir, host, port, vars, log, onStopped: shutdown, inspectorPort });
  } catch (err) {
    fail(err.message, 1);
  }

  const insecure = /^(true|1)$/.test(vars.ALLOW_INSECURE_WEBHOOKS ?? "");
  console.log(
    `edgemeter serve: listening on ${state.server.url} · data ${dataDir} · edgemeter ${version("package.json")} · ` +
      `workerd ${version("node_modules/workerd/package.json")} · miniflare ${version("node_modules/miniflare/package.json")} · ` +
      `node ${process.version} · migrations applied ${applied.length ? applied.join(", ") : "none (up to date)"} · ` +
      `crons ${manifest.crons.length ? manifest.crons.join(", ") : "none"}${insecure ? " · ALLOW_INSECURE_WEBHOOKS=true" : ""}`,
  );
  if (!/^(127\.|::1$)/.test(host)) {
    console.error("edgemeter serve: warning: not on loopback; serve plain HTTP only behind a TLS proxy that does not forward CONNECT (README: Self-hosting, Exposure)");
  }
}

/**
 * Under `npm run serve`, a SIGTERM to npm ends npm and its `sh -c`, but nothing reaches this process
 * (npm forwards the signal to the shell only). Being re-parented then means npm is gone: stop too.
 * Only under npm: started directly (systemd, nohup, Docker), a parent's exit means nothing.
 */
function watchNpm(onGone) {
  if (!process.env.npm_lifecycle_event) return;
  const parent = process.ppid;
  setInterval(() => process.ppid !== parent && onGone(), 500).unref();
}

/** EDGEMETER_STDIN_LIFELINE=1 (set by test/e2e/harness.mjs): stdin closing means the parent died. */
function watchLifeline(onLost) {
  if (process.env.EDGEMETER_STDIN_LIFELINE !== "1") return;
  for (const event of ["end", "close", "error"]) process.stdin.on(event, onLost);
  process.stdin.resume();
}

await main();
