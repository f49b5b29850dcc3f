import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";
import { inspect, outbound } from "./test/receiver";

export default defineConfig(async () => {
  const migrations = await readD1Migrations("./migrations");
  return {
    plugins: [
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
            ALLOW_INSECURE_WEBHOOKS: "true",
          },
        },
      }),
    ],
    test: {
      include: ["test/**/*.test.ts"],
      exclude: ["test/e2e/**"],
      setupFiles: ["./test/setup.ts"],
    },
  };
});
