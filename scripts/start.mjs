#!/usr/bin/env node
// `npm start`: run edgemeter locally in workerd, on 127.0.0.1, with local D1 and Durable Objects
// kept on disk. No Cloudflare account is needed.
//
//   npm start                              # http://127.0.0.1:8787, state in .wrangler/state
//   npm start -- --port 9000               # or -p 9000, or PORT=9000
//   npm start -- --persist-to /tmp/em      # or EDGEMETER_STATE_DIR=/tmp/em
//
// Admin key: taken from the ADMIN_API_KEY environment variable when set (then .dev.vars is neither
// read for it nor written, and the key reaches the Worker as `wrangler dev --var`); otherwise from
// .dev.vars, which is created on first run with a random key. Any variable declared under [vars] in
// wrangler.toml that is set in the environment (e.g. ALLOW_INSECURE_WEBHOOKS, CONFIG_CACHE_SECONDS)
// is passed the same way, so the e2e harness can configure a gateway without touching .dev.vars.
//
// Only Node built-ins here: this runs before anything is known to work.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync, appendFileSync, chmodSync } from "node:fs";
import { constants as osConstants } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const DEV_VARS = path.join(ROOT, ".dev.vars");
const WRANGLER_JS = path.join(ROOT, "node_modules", "wrangler", "bin", "wrangler.js");
const DEFAULT_PORT = 8787;
const DEFAULT_STATE_DIR = path.join(ROOT, ".wrangler", "state");

const USAGE = `usage: npm start -- [--port N | -p N] [--persist-to DIR]

  --port, -p N        port on 127.0.0.1 (default: $PORT or ${DEFAULT_PORT})
  --persist-to DIR    local D1 + Durable Object state (default: $EDGEMETER_STATE_DIR or .wrangler/state)
`;

function fail(message) {
  console.error(`edgemeter: ${message}`);
  process.exit(2);
}

function parseArgs(argv) {
  const out = { port: undefined, stateDir: undefined, help: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const [flag, inline] = arg.startsWith("--") && arg.includes("=") ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)] : [arg, undefined];
    const value = () => {
      if (inline !== undefined) return inline;
      const next = argv[++i];
      if (next === undefined || next === "") fail(`${flag} needs a value\n\n${USAGE}`);
      return next;
    };
    switch (flag) {
      case "--port":
      case "-p":
        out.port = value();
        break;
      case "--persist-to":
        out.stateDir = value();
        break;
      case "--help":
      case "-h":
        out.help = true;
        break;
      default:
        fail(`unknown argument ${JSON.stringify(arg)}\n\n${USAGE}`);
    }
  }
  return out;
}

function parsePort(raw, source) {
  const text = String(raw).trim();
  const port = Number(text);
  if (!/^\d+$/.test(text) || port < 1 || port > 65535) fail(`invalid port ${JSON.stringify(raw)} (from ${source})`);
  return port;
}

// wrangler 4 needs Node >= 22. `npm start` puts node_modules/.bin (the `node` 22 package) first on
// PATH, so process.execPath is normally right; when the script is run by hand with an older system
// Node, fall back to the bundled binary.
function nodeForWrangler() {
  const major = Number(process.versions.node.split(".")[0]);
  if (major >= 22) return process.execPath;
  const bundled = path.join(ROOT, "node_modules", "node", "bin", "node");
  if (existsSync(bundled)) return bundled;
  fail(`wrangler needs Node >= 22 (this is ${process.version}); run \`npm install\` to get the bundled one`);
}

// Minimal dotenv reading: KEY=value lines, optional `export `, optional quotes.
function readDotEnvValue(text, key) {
  for (const line of text.split(/\r?\n/)) {
    const m = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (!m || m[1] !== key) continue;
    let v = m[2].trim();
    if ((v.startsWith('"') && v.endsWith('"')) || (v.startsWith("'") && v.endsWith("'"))) v = v.slice(1, -1);
    else v = v.replace(/\s+#.*$/, "");
    return v;
  }
  return undefined;
}

const newAdminKey = () => `em_admin_${randomBytes(32).toString("base64url")}`;

/** Returns { key, origin } and creates or completes .dev.vars unless the key comes from the environment. */
function resolveAdminKey() {
  const fromEnv = process.env.ADMIN_API_KEY;
  if (fromEnv) return { key: fromEnv, origin: "env" };

  if (!existsSync(DEV_VARS)) {
    const key = newAdminKey();
    const body = [
      "# Local secrets for `wrangler dev` (created by `npm start`; gitignored).",
      `ADMIN_API_KEY=${key}`,
      "# Local webhook receivers are plain http on localhost.",
      "ALLOW_INSECURE_WEBHOOKS=true",
      "",
    ].join("\n");
    writeFileSync(DEV_VARS, body, { mode: 0o600, flag: "wx" });
    chmodSync(DEV_VARS, 0o600); // the umask may have masked the create mode
    return { key, origin: "created" };
  }

  const text = readFileSync(DEV_VARS, "utf8");
  const existing = readDotEnvValue(text, "ADMIN_API_KEY");
  if (existing) return { key: existing, origin: "existing" };

  const key = newAdminKey();
  appendFileSync(DEV_VARS, `${text.length > 0 && !text.endsWith("\n") ? "\n" : ""}ADMIN_API_KEY=${key}\n`);
  chmodSync(DEV_VARS, 0o600); // it holds a secret now
  return { key, origin: "appended" };
}

// Names declared under [vars] in wrangler.toml (a tiny TOML reader: enough for `NAME = "value"` lines).
function declaredVarNames() {
  let text;
  try {
    text = readFileSync(path.join(ROOT, "wrangler.toml"), "utf8");
  } catch {
    return [];
  }
  const names = [];
  let inVars = false;
  for (const line of text.split(/\r?\n/)) {
    const header = /^\s*\[+\s*([^\]]+?)\s*\]+\s*(#.*)?$/.exec(line);
    if (header) {
      inVars = header[1] === "vars";
      continue;
    }
    const kv = inVars && /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=/.exec(line);
    if (kv) names.push(kv[1]);
  }
  return names;
}

let current = null; // the wrangler process running now, if any
let stopping = false;

// Runs one wrangler command; resolves with its exit status. While it runs, SIGINT/SIGTERM/SIGHUP
// sent to this process are passed on to it, so `kill <pid>` on `npm start` stops the server cleanly.
function runWrangler(node, args, env) {
  return new Promise((resolve) => {
    const child = spawn(node, [WRANGLER_JS, ...args], { cwd: ROOT, env, stdio: ["ignore", "inherit", "inherit"] });
    current = child;
    const forward = (signal) => {
      stopping = true;
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    };
    const signals = ["SIGINT", "SIGTERM", "SIGHUP"];
    for (const s of signals) process.on(s, forward);
    const done = (result) => {
      for (const s of signals) process.off(s, forward);
      current = null;
      resolve(result);
    };
    child.on("error", (error) => done({ code: 1, signal: null, error }));
    child.on("exit", (code, signal) => done({ code, signal }));
  });
}

// EDGEMETER_STDIN_LIFELINE=1 (set by test/e2e/harness.mjs, which holds our stdin open): when stdin
// closes, whoever started us is gone, even if it died by SIGKILL, so shut down instead of leaving a
// detached workerd holding the port.
function watchLifeline() {
  if (process.env.EDGEMETER_STDIN_LIFELINE !== "1") return;
  const lost = () => {
    if (stopping) return;
    stopping = true;
    const child = current;
    if (!child) process.exit(1);
    child.kill("SIGTERM");
    setTimeout(() => child.kill("SIGKILL"), 5_000).unref();
    console.error("edgemeter: parent went away (stdin closed), shutting down");
  };
  // Our stdout/stderr are pipes to that parent too: a write after it died must not crash us (EPIPE)
  // before the child is stopped.
  process.stdout.on("error", () => {});
  process.stderr.on("error", () => {});
  process.stdin.on("end", lost);
  process.stdin.on("close", lost);
  process.stdin.on("error", lost);
  process.stdin.resume();
}

function exitLike({ code, signal }) {
  if (signal) process.exit(128 + (osConstants.signals[signal] ?? 1));
  process.exit(code ?? 1);
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  if (args.help) {
    process.stdout.write(USAGE);
    return;
  }
  const port =
    args.port !== undefined ? parsePort(args.port, "--port") : process.env.PORT ? parsePort(process.env.PORT, "$PORT") : DEFAULT_PORT;
  const stateDir = args.stateDir
    ? path.resolve(args.stateDir)
    : process.env.EDGEMETER_STATE_DIR
      ? path.resolve(process.env.EDGEMETER_STATE_DIR)
      : DEFAULT_STATE_DIR;

  if (!existsSync(WRANGLER_JS)) fail(`wrangler is not installed (${path.relative(ROOT, WRANGLER_JS)} missing): run \`npm install\``);
  const node = nodeForWrangler();
  mkdirSync(stateDir, { recursive: true });

  watchLifeline();
  const admin = resolveAdminKey();
  const vars = [];
  if (admin.origin === "env") vars.push(["ADMIN_API_KEY", admin.key]);
  for (const name of declaredVarNames()) {
    if (name !== "ADMIN_API_KEY" && process.env[name] !== undefined) vars.push([name, process.env[name]]);
  }

  const baseEnv = {
    ...process.env,
    // No telemetry prompt, no skills prompt, nothing that waits for a keypress.
    WRANGLER_SEND_METRICS: "false",
    WRANGLER_NO_SKILLS_UPDATE_PROMPTS: "true",
  };

  const rel = (p) => (path.relative(ROOT, p).startsWith("..") ? p : path.relative(ROOT, p) || ".");
  console.log("edgemeter: starting local gateway");
  if (admin.origin === "env") console.log("  admin key: taken from $ADMIN_API_KEY (.dev.vars not used for it)");
  else
    console.log(
      `  admin key: ${admin.key}, stored in ${rel(DEV_VARS)}${admin.origin === "created" ? " (new)" : admin.origin === "appended" ? " (added)" : ""}`,
    );
  if (vars.length > (admin.origin === "env" ? 1 : 0))
    console.log(`  vars from environment: ${vars.map(([k]) => k).filter((k) => k !== "ADMIN_API_KEY").join(", ")}`);
  // Local receivers are plain http on 127.0.0.1: allowed unless the environment or .dev.vars says
  // otherwise (wrangler.toml's production default would refuse them).
  if (process.env.ALLOW_INSECURE_WEBHOOKS === undefined && readDotEnvValue(existsSync(DEV_VARS) ? readFileSync(DEV_VARS, "utf8") : "", "ALLOW_INSECURE_WEBHOOKS") === undefined) {
    vars.push(["ALLOW_INSECURE_WEBHOOKS", "true"]);
    console.log("  webhooks: http and local receivers allowed (ALLOW_INSECURE_WEBHOOKS=true)");
  }
  console.log(`  state (D1 + Durable Objects): ${rel(stateDir)}`);
  console.log(`  listening on: http://127.0.0.1:${port}`);
  console.log("");

  // 1. Local D1 migrations. CI=true makes wrangler skip its confirmation prompt; stdin is closed anyway.
  console.log("edgemeter: applying local D1 migrations");
  const migrate = await runWrangler(node, ["d1", "migrations", "apply", "DB", "--local", "--persist-to", stateDir], {
    ...baseEnv,
    CI: "true",
  });
  if (migrate.error) fail(`could not run wrangler: ${migrate.error.message}`);
  if (migrate.signal || stopping) exitLike(migrate);
  if (migrate.code !== 0) {
    console.error(`edgemeter: D1 migrations failed (exit ${migrate.code})`);
    process.exit(migrate.code ?? 1);
  }

  // 2. The server itself. --var values override wrangler.toml [vars] and .dev.vars.
  const devArgs = [
    "dev",
    "--ip",
    "127.0.0.1",
    "--port",
    String(port),
    "--persist-to",
    stateDir,
    "--show-interactive-dev-session=false",
    ...vars.flatMap(([k, v]) => ["--var", `${k}:${v}`]),
  ];
  const dev = await runWrangler(node, devArgs, baseEnv);
  if (dev.error) fail(`could not run wrangler: ${dev.error.message}`);
  exitLike(dev);
}

await main();
