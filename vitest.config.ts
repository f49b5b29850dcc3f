import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";
import { inspect, outbound } from "./test/receiver";

/** Runs with the production settings that the main suite relaxes: see the "production" project below. */
const PRODUCTION_TESTS = ["test/http/production-policy.test.ts"];

export default defineConfig(async () => {
  const migrations = await readD1Migrations("./migrations");
  /** The Worker in workerd, configured from wrangler.toml plus `bindings` and other miniflare options. */
  const worker = (bindings: Record<string, string>, miniflare: Record<string, unknown> = {}) =>
    cloudflareTest({
      wrangler: { configPath: "./wrangler.toml" },
      miniflare: {
        // Webhooks go to a receiver in this process; tests read what it got through RECEIVER.
        outboundService: outbound,
        serviceBindings: { RECEIVER: inspect },
        bindings: {
          TEST_MIGRATIONS: migrations,
          ADMIN_API_KEY: "test-admin-key",
          // Definition changes reach Durable Objects at once in tests.
          CONFIG_CACHE_SECONDS: "0",
          ...bindings,
        },
        ...miniflare,
      },
    });
  return {
    test: {
      projects: [
        {
          plugins: [
            // Local receivers are plain http; the many files share one admin key, so no per-key rate limit.
            worker({ ALLOW_INSECURE_WEBHOOKS: "true", RATE_LIMIT_ENABLED: "false" }),
          ],
          test: { name: "workerd", include: ["test/**/*.test.ts"], exclude: ["test/e2e/**", ...PRODUCTION_TESTS], setupFiles: ["./test/setup.ts"] },
        },
        {
          plugins: [
            // wrangler.toml's production values (webhook URL policy, rate limiting on), with a rate limit
            // small enough to reach in a test. Only PRODUCTION_TESTS run here, so nothing else shares it.
            worker(
              { ALLOW_INSECURE_WEBHOOKS: "false", RATE_LIMIT_ENABLED: "true" },
              { ratelimits: { RATE_LIMITER: { namespace_id: "1001", simple: { limit: 25, period: 60 } } } },
            ),
          ],
          test: { name: "production", include: PRODUCTION_TESTS, setupFiles: ["./test/setup.ts"] },
        },
      ],
    },
  };
});
