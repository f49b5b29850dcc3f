// What `npm run serve`'s runtime (scripts/serve/runtime.mjs) promises beyond serving requests,
// shown on a tiny fixture Worker whose timings the test controls (the edgemeter scenarios are in
// serve.e2e.test.ts): D1 migrations apply once, cron triggers fire, a Durable Object alarm armed
// before a SIGKILL fires after the restart, SIGTERM lets a request in flight finish, and a Worker
// that logs more than a pipe holds while a cron is dispatched does not hang the server.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { freePort } from "./harness.mjs";

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), "fixtures", "runtime-child.mjs");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Running {
  proc: ChildProcess;
  url: string;
  applied: string[];
  exited: Promise<number | null>;
}

const live = new Set<number>();

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

async function waitGroupGone(pgid: number, ms = 10_000) {
  const deadline = Date.now() + ms;
  while (groupAlive(pgid) && Date.now() < deadline) await sleep(50);
  expect(groupAlive(pgid), `process group ${pgid} still alive`).toBe(false);
  live.delete(pgid);
}

/** The fixture on runtime.mjs, in its own process group (so a SIGKILL reaches workerd too). */
async function start(dataDir: string, port: number): Promise<Running> {
  const proc = spawn(process.execPath, [CHILD, dataDir, String(port)], { detached: true, stdio: ["ignore", "pipe", "pipe"] });
  live.add(proc.pid!);
  let output = "";
  const exited = new Promise<number | null>((resolve) => proc.once("exit", (code) => resolve(code)));
  const up = new Promise<RegExpMatchArray>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output = (output + chunk).slice(-65_536); // the log-flood test writes hundreds of MB
      const m = /^up (\S+) applied=(.*)$/m.exec(output);
      if (m) resolve(m);
    };
    proc.stdout!.on("data", onData);
    proc.stderr!.on("data", (c) => (output = (output + c).slice(-65_536)));
    void exited.then((code) => reject(new Error(`fixture exited (${code}) before it was up:\n${output}`)));
  });
  const m = await Promise.race([up, sleep(60_000).then(() => Promise.reject(new Error(`fixture not up after 60 s:\n${output}`)))]);
  return { proc, url: m[1]!, applied: JSON.parse(m[2]!), exited };
}

const state = async (r: Running) => (await fetch(`${r.url}/state`)).json() as Promise<{ alarms: number; crons: number; migrations: string[] }>;

async function eventually<T>(read: () => Promise<T>, ok: (v: T) => boolean, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await read();
    if (ok(v) || Date.now() > deadline) return v;
    await sleep(100);
  }
}

describe("serve runtime (scripts/serve/runtime.mjs)", () => {
  const dataDir = mkdtempSync(path.join(tmpdir(), "edgemeter-serve-runtime-"));

  afterAll(() => {
    for (const pgid of live) {
      try {
        process.kill(-pgid, "SIGKILL");
      } catch {}
    }
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("applies migrations once, fires crons and alarms (also after SIGKILL), and drains on SIGTERM", async () => {
    const port = await freePort();
    let r = await start(dataDir, port);
    expect(r.applied).toEqual(["DB/0000_cron_runs.sql"]);
    expect((await state(r)).migrations).toEqual(["0000_cron_runs.sql"]);

    // Cron triggers are dispatched to scheduled() (the fixture's cron fires every second).
    expect((await eventually(() => state(r), (s) => s.crons >= 2)).crons).toBeGreaterThanOrEqual(2);

    // An alarm armed just before a SIGKILL of everything fires after the restart.
    expect(await (await fetch(`${r.url}/arm?ms=1500`)).text()).toBe("armed");
    process.kill(-r.proc.pid!, "SIGKILL");
    await waitGroupGone(r.proc.pid!);
    r = await start(dataDir, port);
    expect(r.applied).toEqual([]); // recorded in d1_migrations: not applied twice
    expect((await eventually(() => state(r), (s) => s.alarms === 1)).alarms).toBe(1);

    // SIGTERM (to the serve process only): the request in flight is answered, then all processes exit.
    const slow = fetch(`${r.url}/slow?ms=1500`).then(async (res) => [res.status, await res.text()] as const);
    await sleep(300);
    process.kill(r.proc.pid!, "SIGTERM");
    expect(await slow).toEqual([200, "slow done"]);
    expect(await r.exited).toBe(0);
    await waitGroupGone(r.proc.pid!);
  });

  it("keeps serving and firing crons while the Worker logs more than a pipe holds", async () => {
    const r = await start(dataDir, await freePort());
    const before = (await state(r)).crons;
    // ~2 MB of log lines per request for 4 s: every cron dispatch (one a second) meets a full pipe.
    // Dispatched through miniflare's blocking proxy, this hung workerd and Node for good.
    const until = Date.now() + 4_000;
    while (Date.now() < until) {
      const res = await fetch(`${r.url}/log?lines=2000`, { signal: AbortSignal.timeout(10_000) });
      expect(await res.text()).toBe("logged");
    }
    const after = await eventually(() => state(r), (s) => s.crons >= before + 3);
    expect(after.crons).toBeGreaterThanOrEqual(before + 3);
    process.kill(r.proc.pid!, "SIGTERM");
    expect(await r.exited).toBe(0);
    await waitGroupGone(r.proc.pid!);
  });
});
