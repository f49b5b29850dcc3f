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
