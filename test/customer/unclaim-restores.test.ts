import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { CustomerDO } from "../../src/customer/do";
import { applyConfig } from "../../src/customer/meters";
import { getMeta, migrate } from "../../src/customer/schema";
import { Sql } from "../../src/customer/sql";
import { cachedNamespaceConfig } from "../../src/db/config";
import { database } from "../../src/db/client";
import type { MeterEvent } from "../../src/domain/metering";
import { DAY, createMeter, customerStub, uid } from "../helpers/api";

// A write that stores nothing on an object without an identity rolls back its claim (do.ts claiming).
// The object's memory must then be what its storage holds, not "nothing stored": an object created
// by a read before tables were created lazily (9655643) has the schema and the definitions it was
// read with, and no identity.

const slug = "unclaim_restores";
beforeAll(async () => {
  expect((await createMeter({ slug, eventType: "unclaim_restores", aggregation: "SUM", valueProperty: "$.tokens" })).status).toBe(201);
});

let n = 0;
const ev = (time: number, tokens: number): MeterEvent => ({ index: 0, id: `ur-${Date.now()}-${n++}`, source: "test", type: "unclaim_restores", time, data: { tokens } });

describe("a refused first write on an object that already has storage", () => {
  it("leaves memory as storage holds it: the stored definitions stay in force, an older snapshot is ignored", async () => {
    const subject = uid("legacy");
    const id = { namespace: "default", subject };
    const cfg = await cachedNamespaceConfig(database(env.DB), "default", 0);
    const newer = { ...cfg, version: cfg.version + 1 };
    await runInDurableObject(customerStub(subject), async (_, state) => {
      // As code before lazy tables left an object a read with definitions reached: schema and definitions, no identity.
      const sql = new Sql(state.storage);
      migrate(sql);
      sql.transaction(() => applyConfig(sql, newer));
      const obj = new CustomerDO(state, env);
      const refused = await obj.ingest(id, { version: newer.version }, [ev(Date.now() - 400 * DAY, 5)]);
      expect(refused).toMatchObject({ accepted: 0 });
      expect(getMeta(sql, "config_version")).toBe(newer.version);
      // A stale isolate's older snapshot must not replace the newer definitions the object stores.
      const counted = await obj.ingest(id, cfg, [ev(Date.now(), 3)]);
      expect(counted).toMatchObject({ accepted: 1 });
      expect(getMeta(sql, "config_version")).toBe(newer.version);
      // The version it stores is one it holds: no StaleConfig round trip.
      expect(await obj.ingest(id, { version: newer.version }, [ev(Date.now(), 4)])).toMatchObject({ accepted: 1 });
    });
  });
});
