import { utf8Length } from "../domain/chunks";
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

/**
 * The most a namespace's definitions may take (JSON, UTF-8). The whole set travels to a customer
 * Durable Object as one RPC argument, which workerd caps at 32 MiB serialized: past that, every call
 * that carries it fails (each ingest 503, each query 500) until definitions shrink, and archived
 * features never leave it. The margin leaves room for the call's own arguments (an ingest batch, 1 MiB).
 */
export const MAX_CONFIG_BYTES = 8 * 1024 * 1024;

type Defs = Pick<NamespaceConfig, "meters" | "channels" | "rules" | "features">;

/**
 * The size the namespace's definitions would have with `def` added to (or replacing the one with its
 * id in) `kind`, and their size now: a writer refuses a change that grows them past MAX_CONFIG_BYTES.
 * A fresh D1 read, not the isolate's cache, so a just-created definition is counted.
 */
export async function configSizeWith<K extends keyof Defs>(db: Db, namespace: string, kind: K, def: Defs[K][number]): Promise<{ before: number; after: number }> {
  const { version: _, ...defs } = await readNamespaceConfig(db, namespace);
  const size = (d: Defs) => utf8Length(JSON.stringify(d));
  const list = defs[kind] as { id: string }[];
  const next = { ...defs, [kind]: [...list.filter((d) => d.id !== (def as { id: string }).id), def] };
  return { before: size(defs), after: size(next) };
}
