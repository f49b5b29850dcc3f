import type { Env } from "../env";
import type { CustomerDO, Identity } from "./do";

/** The DO's name is derived from namespace + subject only (DESIGN invariant 8); JSON keeps the pair unambiguous. */
export function customerName(id: Identity): string {
  return JSON.stringify([id.namespace, id.subject]);
}

/** The DO GET /healthz/do pings: not a JSON pair, so it can never be a customer's. */
export const customerHealthName = "healthz";

export function customer(env: Env, id: Identity): DurableObjectStub<CustomerDO> {
  return env.CUSTOMER.get(env.CUSTOMER.idFromName(customerName(id)));
}
