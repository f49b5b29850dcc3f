import type { FeatureDef } from "../domain/feature";
import type { MeterDef } from "../domain/meter";
import type { ChannelDef, RuleDef } from "../domain/notification";
import type { Db } from "./client";
import { allFeaturesQuery, toFeatureDef } from "./features";
import { configVersionQuery, listMetersQuery, toMeterDef } from "./meters";
import { listChannelsQuery, listRulesQuery, toChannelDef, toRuleDef } from "./notifications";

/**
 * The definitions a customer Durable Object counts with, tagged with the namespace's version.
 * Versions only grow, so a DO can ignore a stale copy from an isolate whose cache is older.
 */
export interface NamespaceConfig {
  version: number;
  meters: MeterDef[];
  channels: ChannelDef[];
  rules: RuleDef[];
  /** Archived ones included: webhook payloads show an entitlement's feature whatever became of it. */
  features: FeatureDef[];
}

/** One D1 batch (a transaction), so the version and the definitions it stands for are read together. */
export async function readNamespaceConfig(db: Db, namespace: string): Promise<NamespaceConfig> {
  const [version, meters, channels, rules, features] = await db.batch([
    configVersionQuery(db, namespace),
    listMetersQuery(db, namespace),
    listChannelsQuery(db, namespace),
    listRulesQuery(db, namespace),
    allFeaturesQuery(db, namespace),
  ]);
  return {
    version: version[0]?.v ?? 0,
    meters: meters.map(toMeterDef),
    channels: channels.map(toChannelDef),
    rules: rules.map(toRuleDef),
    features: features.map(toFeatureDef),
  };
}

const cache = new Map<string, { config: NamespaceConfig; expires: number }>();

/**
 * The isolate's cached copy, refreshed after `ttlSeconds`: this is the bound on how soon a definition
 * change reaches every Durable Object (CONFIG_CACHE_SECONDS; 0 reads D1 on every request).
 * Only settled values are shared between requests: a pending D1 read belongs to the request that
 * started it, and workerd refuses to let another request wait on its I/O.
 */
export async function cachedNamespaceConfig(db: Db, namespace: string, ttlSeconds: number): Promise<NamespaceConfig> {
  const now = Date.now();
  const hit = cache.get(namespace);
  if (hit && hit.expires > now) return hit.config;
  const config = await readNamespaceConfig(db, namespace);
  const current = cache.get(namespace);
  // Never replace a newer copy that a concurrent request stored meanwhile.
  if (!current || current.config.version <= config.version) cache.set(namespace, { config, expires: now + ttlSeconds * 1000 });
  return config;
}

export function forgetNamespaceConfig(namespace: string): void {
  cache.delete(namespace);
}
