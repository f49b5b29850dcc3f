import { z } from "zod";
import type { CustomerDO } from "./customer/do";

/** Bindings and variables, as declared in wrangler.toml (secrets: ADMIN_API_KEY). */
export interface EdgemeterEnv {
  DB: D1Database;
  CUSTOMER: DurableObjectNamespace<CustomerDO>;
  ADMIN_API_KEY?: string;
  EVENT_RETENTION_DAYS?: string;
  CONFIG_CACHE_SECONDS?: string;
  SNAPSHOT_INTERVAL_SECONDS?: string;
  SNAPSHOT_RETENTION_DAYS?: string;
  ALLOW_INSECURE_WEBHOOKS?: string;
  /** The `[[ratelimits]]` binding of wrangler.toml: per-key request rate (src/http/auth.ts). */
  RATE_LIMITER?: RateLimit;
  RATE_LIMIT_ENABLED?: string;
  WEBHOOK_TIMEOUT_MS?: string;
  WEBHOOK_RETRY_SCALE?: string;
  BENCH_PARSE_ONLY?: string;
  LOG_SNAPSHOT_FLUSHES?: string;
}

export type Env = EdgemeterEnv;

declare global {
  namespace Cloudflare {
    interface Env extends EdgemeterEnv {}
  }
}

const flag = z
  .enum(["true", "false", "1", "0", ""])
  .optional()
  .transform((v) => v === "true" || v === "1");
const seconds = (def: number, max: number) =>
  z.coerce.number().int().min(0).max(max).optional().transform((v) => v ?? def);

/** Settings read from the environment once per isolate; a bad value fails loudly at the first request. */
export const settingsSchema = z.object({
  EVENT_RETENTION_DAYS: z.coerce.number().int().min(1).max(3650).optional().transform((v) => v ?? 35),
  CONFIG_CACHE_SECONDS: seconds(5, 300),
  SNAPSHOT_INTERVAL_SECONDS: seconds(30, 86_400),
  SNAPSHOT_RETENTION_DAYS: z.coerce.number().int().min(1).max(36_500).optional().transform((v) => v ?? 400),
  ALLOW_INSECURE_WEBHOOKS: flag,
  /** Per-key rate limiting through RATE_LIMITER; on unless "false" or "0" (e.g. for local load tests). */
  RATE_LIMIT_ENABLED: z
    .enum(["true", "false", "1", "0", ""])
    .optional()
    .transform((v) => v !== "false" && v !== "0"),
  /** How long one webhook attempt may take before it counts as a timeout (and is retried). */
  WEBHOOK_TIMEOUT_MS: z.coerce.number().int().min(100).max(60_000).optional().transform((v) => v ?? 15_000),
  /**
   * Multiplies the webhook retry schedule's delays (src/domain/backoff.ts). 1 in production: the
   * spec's schedule, exactly. End-to-end tests use e.g. 0.001, so that 5 min becomes 0.3 s.
   */
  WEBHOOK_RETRY_SCALE: z.coerce.number().gt(0).max(1).optional().transform((v) => v ?? 1),
  // The bench routes (src/http/debug.ts): POST /bench/parse-only, the benchmark's runtime ceiling, and
  // the probes of bench/check-anatomy.mjs. Off in production.
  BENCH_PARSE_ONLY: flag,
  /**
   * One log line per snapshot flush that carried data (what bench/snapshot-lag.mjs sums up). Off by
   * default: that is a line per active customer per SNAPSHOT_INTERVAL_SECONDS, which at 100,000
   * customers is thousands of lines a second of log volume (and of Workers Logs billing).
   */
  LOG_SNAPSHOT_FLUSHES: flag,
});
export type Settings = z.output<typeof settingsSchema>;

let cached: { source: Env; settings: Settings } | undefined;

export function settings(env: Env): Settings {
  if (cached?.source === env) return cached.settings;
  const parsed = settingsSchema.safeParse(env);
  if (!parsed.success) {
    throw new Error(`invalid configuration: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
  }
  cached = { source: env, settings: parsed.data };
  return parsed.data;
}
