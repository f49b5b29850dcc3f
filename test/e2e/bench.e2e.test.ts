// Smoke test of `npm run bench` (bench/run.mjs): the quick mode runs end to end against `npm start`
// and writes a result file with every scenario of issue 8. No assertion on any timing: on shared CI
// machines figures are noise, and a benchmark that "fails" on a slow runner helps no one.
import { spawn } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = path.resolve(import.meta.dirname, "..", "..");
const SCENARIOS = ["1_ingest", "2_duplicates", "3_subjects", "4_latency", "5_webhook", "6_snapshot_lag", "7_storage", "8_ceiling", "9_cost"];

function run(args: string[], script = "run.mjs"): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(ROOT, "bench", script), ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c) => (stdout += c));
    child.stderr.on("data", (c) => (stderr += c));
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("npm run bench -- --quick", () => {
  it("runs every scenario against npm start and writes them all to bench/results", { timeout: 240_000 }, async () => {
    const { code, stdout, stderr } = await run(["--quick", "--runtime", "dev"]);
    expect(code, `${stdout}\n${stderr}`).toBe(0);
    const saved = /saved (bench\/results\/\S+\.json)/.exec(stdout)?.[1];
    expect(saved, stdout).toBeDefined();
    const file = path.join(ROOT, saved!);
    try {
      const report = JSON.parse(readFileSync(file, "utf8"));
      expect(report.quick).toBe(true);
      const dev = report.runtimes.dev;
      expect(dev.error).toBeUndefined();
      expect(Object.keys(dev.scenarios)).toEqual(SCENARIOS);
      for (const name of SCENARIOS) expect(dev.scenarios[name], name).toBeTruthy();
      // Each target is reported with a verdict, whatever it is.
      expect(dev.targets.length).toBe(8);
      for (const t of dev.targets) expect(typeof t.pass).toBe("boolean");
      // The table and the verdicts are printed.
      expect(stdout).toContain("1 ingest, 1,000 ev/req");
      expect(stdout).toMatch(/(PASS|MISS) {2}batch ingest/);
    } finally {
      rmSync(file, { force: true });
    }
  });
});

describe("npm run bench:profile", () => {
  it("profiles the serve runtime under ingest load and saves a DevTools CPU profile", { timeout: 180_000 }, async () => {
    const { code, stdout, stderr } = await run(["--seconds", "1", "--batch", "100", "--top", "5"], "profile.mjs");
    expect(code, `${stdout}\n${stderr}`).toBe(0);
    expect(stdout).toContain("self time");
    expect(stdout).toContain("inclusive time");
    const saved = /saved (bench\/results\/profile-\S+\.cpuprofile)/.exec(stdout)?.[1];
    expect(saved, stdout).toBeDefined();
    const file = path.join(ROOT, saved!);
    try {
      const profile = JSON.parse(readFileSync(file, "utf8"));
      expect(profile.samples.length).toBeGreaterThan(0);
      // The Worker's own code was sampled (the bundle), not only the runtime's idle loop.
      expect(profile.nodes.some((n: any) => n.callFrame.functionName === "ingestEvents")).toBe(true);
    } finally {
      rmSync(file, { force: true });
    }
  });
});
