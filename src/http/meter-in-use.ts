import type { Context } from "hono";
import { customer, withConfig } from "../customer/client";
import { database } from "../db/client";
import { liveEntitlementsOfMeter, markEntitlementsDeleted } from "../db/entitlement-index";
import { listFeatures } from "../db/features";
import type { AppEnv } from "./context";
import { namespaceConfig } from "./entitlements";
import { ApiError } from "./errors";

/** Index rows confirmed with their objects per request: a subrequest each. */
const CANDIDATES = 20;

/**
 * 409 while a live feature, or a live entitlement (an archived feature's included), is metered by the
 * meter: OpenMeter refuses the delete then (meter/service/manage.go, DeleteMeter). Deleted anyway,
 * that entitlement's checks would answer 409 for a meter that no longer exists, and a meter created
 * later under the slug would be counted by features written for the old one.
 */
export async function refuseMeterInUse(c: Context<AppEnv>, namespace: string, slug: string): Promise<void> {
  const db = database(c.env.DB);
  const live = await listFeatures(db, namespace, { includeArchived: false, meterSlugs: [slug] });
  if (live.length) {
    const keys = live.slice(0, 5).map((f) => f.key).join(", ") + (live.length > 5 ? `, and ${live.length - 5} more` : "");
    throw new ApiError("conflict", `meter ${slug} is used by feature ${keys}; archive ${live.length > 1 ? "them" : "it"} first`);
  }
  await refuseLiveEntitlements(c, namespace, slug, undefined, "delete", (row) => `meter ${slug} is used by entitlement ${row.id} of subject ${row.subject} (feature ${row.featureKey}, archived); delete the entitlement first`);
}

/**
 * 409 while an entitlement that entitlement_index lists for the meter `slug` (of one of `featureIds`,
 * when given) is live in its subject's object; `inUse` says why. Index rows the objects disown are repaired.
 */
export async function refuseLiveEntitlements(
  c: Context<AppEnv>,
  namespace: string,
  slug: string,
  featureIds: readonly string[] | undefined,
  action: "delete" | "update",
  inUse: (row: { id: string; subject: string; featureKey: string }) => string,
): Promise<void> {
  const db = database(c.env.DB);
  const rows = await liveEntitlementsOfMeter(db, namespace, slug, CANDIDATES, featureIds);
  if (!rows.length) return;
  const config = await namespaceConfig(c);
  const stale: { id: string; at: number }[] = [];
  try {
    for (const row of rows) {
      const id = { namespace, subject: row.subject };
      const r = await withConfig(config, (cfg) => customer(c.env, id).getEntitlement(id, cfg, row.id));
      if (r.ok) throw new ApiError("conflict", inUse(row));
      stale.push({ id: row.id, at: Date.now() });
    }
  } finally {
    // Rows whose objects hold no such live entitlement are repaired, so a retry looks further.
    if (stale.length) await markEntitlementsDeleted(db, namespace, stale).catch((e) => console.error("entitlement index repair failed", e));
  }
  if (rows.length === CANDIDATES) throw new ApiError("conflict", `meter ${slug}: ${CANDIDATES} stale entitlement index rows were repaired and more remain to be checked; retry the ${action}`);
}
