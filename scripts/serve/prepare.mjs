#!/usr/bin/env node
// Build step of `npm run serve`, run as a child process by scripts/serve.mjs:
//
//   node scripts/serve/prepare.mjs OUTDIR
//
// 1. bundles the Worker exactly as `wrangler deploy` does (`wrangler deploy --dry-run --outdir`),
// 2. reads wrangler.toml through wrangler's own parser (the same one deploy uses),
// 3. reads the D1 migrations and splits them with wrangler's SQL splitter,
// and writes OUTDIR/index.js + OUTDIR/manifest.json. It is a separate process so that wrangler
// (~3 s to import, ~270 MB resident) is not kept in the memory of a long-running server.
//
// Deliberately NOT read: .dev.vars / .env. They belong to `npm start`; a production server takes
// its secrets and overrides from its own environment only (scripts/serve.mjs).
import { spawn } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, writeFileSync, existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const CONFIG = path.join(ROOT, "wrangler.toml");
const WRANGLER_JS = path.join(ROOT, "node_modules", "wrangler", "bin", "wrangler.js");

// What `wrangler dev` would configure besides code, compatibility, vars, Durable Objects, D1 and
// crons. The serve runtime provides only those (storage that lives in the data directory); any other
// binding in wrangler.toml stops the start with a clear message instead of a Worker that fails at
// its first request.
const HANDLED = new Set([
  "rootPath", "compatibilityDate", "compatibilityFlags", "modulesRules", "zone", "access", "cronTriggers",
  "bindings", "durableObjects", "d1Databases", "ratelimits",
]);

function fail(message) {
  process.stderr.write(`edgemeter serve (prepare): ${message}\n`);
  process.exit(1);
}

/** `wrangler deploy --dry-run --outdir DIR`: the production bundle, nothing uploaded. */
function bundle(outdir) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WRANGLER_JS, "deploy", "--dry-run", "--outdir", outdir], {
      cwd: ROOT,
      env: { ...process.env, CI: "true", WRANGLER_SEND_METRICS: "false", WRANGLER_NO_SKILLS_UPDATE_PROMPTS: "true", FORCE_COLOR: "0" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (c) => (output += c));
    child.stderr.on("data", (c) => (output += c));
    child.on("error", reject);
    child.on("exit", (code, signal) =>
      code === 0 ? resolve() : reject(new Error(`wrangler deploy --dry-run failed (${signal ?? `exit ${code}`}):\n${output}`)),
    );
  });
}

/** undefined, null, [], {} or an object of such (e.g. `email: { send_email: [] }`). */
function isEmpty(value) {
  if (value === undefined || value === null) return true;
  if (Array.isArray(value)) return value.length === 0;
  if (typeof value === "object") return Object.values(value).every(isEmpty);
  return false;
}

/** Migration files as wrangler lists them by default (`<migrations_dir>/*.sql`, in name order). */
function readMigrations(db, splitSql) {
  if (db.migrations_pattern) fail(`d1_databases.${db.binding}: migrations_pattern is not supported by npm run serve`);
  const dir = path.resolve(ROOT, db.migrations_dir ?? "migrations");
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((name) => name.endsWith(".sql"))
    .sort()
    .map((name) => ({ name, queries: splitSql(readFileSync(path.join(dir, name), "utf8")) }));
}

async function main() {
  const outdir = process.argv[2];
  if (!outdir) fail("usage: prepare.mjs OUTDIR");
  mkdirSync(outdir, { recursive: true });

  // Bundling runs in its own process; reading the config meanwhile overlaps the two start-up costs.
  const built = bundle(outdir);
  const wrangler = await import("wrangler");
  const config = wrangler.unstable_readConfig({ config: CONFIG });

  // Durable Object and D1 bindings exactly as `wrangler dev` derives them (SQLite classes from
  // [[migrations]], D1 ids), so a data directory is interchangeable with `npm start --persist-to`.
  // Its `bindings` field is ignored on purpose: it includes .dev.vars.
  const { workerOptions } = wrangler.unstable_getMiniflareWorkerOptions(config);
  const unsupported = Object.keys(workerOptions).filter((k) => !HANDLED.has(k) && !isEmpty(workerOptions[k]));
  if (unsupported.length > 0) fail(`wrangler.toml needs ${unsupported.join(", ")}; npm run serve provides vars, Durable Objects, D1, rate limiters and crons only`);
  if (config.assets || config.site) fail("static assets / sites are not supported by npm run serve");
  const vars = {};
  for (const [name, value] of Object.entries(config.vars ?? {})) vars[name] = typeof value === "string" ? value : JSON.stringify(value);

  const manifest = {
    name: config.name,
    script: "index.js",
    compatibilityDate: config.compatibility_date,
    compatibilityFlags: config.compatibility_flags ?? [],
    vars,
    crons: config.triggers?.crons ?? [],
    durableObjects: workerOptions.durableObjects ?? {},
    d1Databases: workerOptions.d1Databases ?? {},
    // Rate limiters run in-process in workerd, like on one Cloudflare location.
    ratelimits: workerOptions.ratelimits ?? {},
    d1Migrations: (config.d1_databases ?? []).map((db) => ({
      binding: db.binding,
      table: db.migrations_table ?? "d1_migrations",
      migrations: readMigrations(db, wrangler.unstable_splitSqlQuery),
    })),
  };
  await built;
  writeFileSync(path.join(outdir, "manifest.json"), JSON.stringify(manifest, null, 2));
}

main().catch((err) => fail(err?.stack ?? String(err)));
