// The quick variant of `npm run chaos` (scripts/chaos.mjs): producer processes send events while
// the gateway is SIGKILLed and restarted; every total must then equal the producers' own oracle.
// The script does the comparing; this test only runs it and shows its report when it fails.
import { spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, expect, it } from "vitest";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

let child: ReturnType<typeof spawn> | undefined;
// Stopped by pid if the test ends early (timeout); the script stops its own gateway when it dies.
afterAll(() => {
  if (child && child.exitCode === null) child.kill("SIGTERM");
});

it("counts every event exactly once while the gateway is killed and restarted (npm run chaos -- --quick)", async () => {
  child = spawn(process.execPath, [path.join(ROOT, "scripts", "chaos.mjs"), "--quick"], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout!.on("data", (d) => (output += d));
  child.stderr!.on("data", (d) => (output += d));
  const code = await new Promise<number | null>((resolve) => child!.once("exit", (c) => resolve(c)));
  expect(code, output).toBe(0);
  expect(output).toMatch(/chaos quick: pass .* 0 differences/);
}, 300_000);
