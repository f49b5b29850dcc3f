// End-to-end suite: plain Node (not the workerd plugin), against real `wrangler dev` processes
// started by ./harness.mjs. Run with `npm run test:e2e`.
import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

export default defineConfig({
  // Paths below are relative to the repository root, wherever vitest is started from.
  root: fileURLToPath(new URL("../..", import.meta.url)),
  test: {
    include: ["test/e2e/**/*.test.ts"],
    environment: "node",
    // Each file starts its own gateways (workerd processes, ports, state dirs): one file at a time.
    fileParallelism: false,
    // Starting wrangler dev (bundling + workerd boot + D1 migrations) takes seconds, more on cold CI.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    teardownTimeout: 30_000,
  },
});
