import type { Db } from "../db/client";
import { configSizeWith, MAX_CONFIG_BYTES, type NamespaceConfig } from "../db/config";
import { ApiError } from "./errors";

type Kind = "meters" | "features" | "channels" | "rules";

/**
 * 409 when a created or replaced definition would grow the namespace's definitions past
 * MAX_CONFIG_BYTES (src/db/config.ts): each customer's Durable Object receives them whole, in one RPC
 * argument, and past workerd's 32 MiB every ingest and query of the namespace failed. A change that
 * does not grow them passes, so a namespace already over the cap can still shrink.
 */
export async function refuseConfigGrowth<K extends Kind>(db: Db, namespace: string, kind: K, def: NamespaceConfig[K][number]): Promise<void> {
  const { before, after } = await configSizeWith(db, namespace, kind, def);
  if (after > MAX_CONFIG_BYTES && after > before) {
    throw new ApiError(
      "conflict",
      `the namespace's definitions (meters, features, notification channels and rules) would take ${after} bytes of JSON; at most ${MAX_CONFIG_BYTES} are allowed, because every customer's Durable Object receives them whole. Delete meters, channels or rules you no longer need (archived features still count), or make this definition smaller`,
      { maxConfigBytes: MAX_CONFIG_BYTES, configBytes: after },
    );
  }
}
