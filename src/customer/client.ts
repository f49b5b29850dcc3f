import type { Env } from "../env";
import type { CustomerDO, Identity } from "./do";
import { isStaleConfig, type ConfigRef, type ConfigSnapshot, type StaleConfig } from "./meters";

/** The DO's name is derived from namespace + subject only (DESIGN invariant 8); JSON keeps the pair unambiguous. */
export function customerName(id: Identity): string {
  return JSON.stringify([id.namespace, id.subject]);
}

/** The DO GET /healthz/do pings: not a JSON pair, so it can never be a customer's. */
export const customerHealthName = "healthz";

export function customer(env: Env, id: Identity): DurableObjectStub<CustomerDO> {
  return env.CUSTOMER.get(env.CUSTOMER.idFromName(customerName(id)));
}

const OLD_OBJECT_ERROR = /\(reading 'map'\)/;

/**
 * Calls a customer object with the config version alone, and again with the whole snapshot if the
 * object does not hold that version yet (first contact, or the definitions changed since): one
 * extra round trip per object and config version, instead of the snapshot in every call. An object
 * that answers StaleConfig has done nothing, so the second call is the only one that acts.
 */
export async function withConfig<P extends Promise<unknown>>(config: ConfigSnapshot, call: (config: ConfigRef) => P): Promise<Exclude<Awaited<P>, StaleConfig>> {
  let first: Awaited<P> | StaleConfig;
  try {
    first = await call({ version: config.version });
  } catch (e) {
    // During a rolling deploy an object may still run code from before version-only configs, which
    // fails on `config.meters.map` before it writes anything (its transaction rolls back): send the
    // snapshot. Only that error: a call that failed after it acted must not run twice.
    if (!(e instanceof TypeError) || !OLD_OBJECT_ERROR.test(e.message)) throw e;
    first = { staleConfig: true, holds: -1 };
  }
  if (!isStaleConfig(first)) return first as Exclude<Awaited<P>, StaleConfig>;
  const second = await call(config);
  // Cannot happen: an object applies any snapshot newer than its own.
  if (isStaleConfig(second)) throw new Error(`customer object refused config version ${config.version} (it holds ${second.holds})`);
  return second as Exclude<Awaited<P>, StaleConfig>;
}
