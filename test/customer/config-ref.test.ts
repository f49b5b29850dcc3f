import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { database } from "../../src/db/client";
import { readNamespaceConfig } from "../../src/db/config";
import { withConfig } from "../../src/customer/client";
import { createMeter, customerStub, event, ingestOk, rows, total, uid } from "../helpers/api";

// RPCs name the namespace's definitions by version; the snapshot travels only when an object lacks it.
describe("config by version", () => {
  it("an object answers that it lacks a version, and writes nothing", async () => {
    const type = uid("ref_type");
    const slug = uid("ref_meter");
    await createMeter({ slug, eventType: type, aggregation: "SUM", valueProperty: "$.n" });
    const subject = uid("ref");
    expect(await ingestOk([event({ type, subject, data: { n: 2 } })])).toMatchObject({ accepted: 1 });

    const id = { namespace: "default", subject };
    const rows_ = JSON.stringify([["s", uid("e"), Date.now(), type, { n: 40 }, 0]]);
    const holds = await customerStub(subject).ingest(id, { version: Number.MAX_SAFE_INTEGER }, { rows: rows_ });
    expect(holds).toEqual({ staleConfig: true, holds: expect.any(Number) });
    expect(await total(slug, subject)).toBe(2);
    // The same batch with the version the object holds is counted.
    expect(await customerStub(subject).ingest(id, { version: (holds as { holds: number }).holds }, { rows: rows_ })).toMatchObject({ accepted: 1 });
    expect(await total(slug, subject)).toBe(42);
  });

  it("a definition change reaches an object that already counted, on its next call", async () => {
    const type = uid("ref_type");
    const slug = uid("ref_meter");
    await createMeter({ slug, eventType: type, aggregation: "SUM", valueProperty: "$.n" });
    const subject = uid("ref");
    const e = (n: number, model: string) => event({ type, subject, data: { n, model } });
    await ingestOk([e(1, "a"), e(2, "b")]);
    // A second meter on the same events, created after the object last heard of the config.
    const byModel = uid("ref_by_model");
    await createMeter({ slug: byModel, eventType: type, aggregation: "SUM", valueProperty: "$.n", groupBy: { model: "$.model" } });
    expect(await ingestOk([e(4, "a")])).toMatchObject({ accepted: 1 });
    expect((await rows(byModel, { subject, groupBy: "model" })).map((r) => [r.groupBy.model, r.value]).sort()).toEqual([["a", 5], ["b", 2]]);
    expect(await total(slug, subject)).toBe(7);
  });

  it("the Worker sends the snapshot to an object that lacks the version, or that cannot read a version alone", async () => {
    const snapshot = { version: 7, meters: [] };
    const seen: unknown[] = [];
    const answers: unknown[] = [{ staleConfig: true, holds: 3 }, "done"];
    expect(await withConfig(snapshot, async (cfg) => (seen.push(cfg), answers.shift()))).toBe("done");
    expect(seen).toEqual([{ version: 7 }, snapshot]);

    // An object from before version-only configs: `config.meters.map` on undefined.
    seen.length = 0;
    const old = async (cfg: { meters?: unknown[] }) => (seen.push(cfg), cfg.meters!.map(() => 0).length);
    expect(await withConfig(snapshot, old)).toBe(0);
    expect(seen).toEqual([{ version: 7 }, snapshot]);

    await expect(withConfig(snapshot, async () => Promise.reject(new RangeError("storage failed")))).rejects.toThrow("storage failed");
    // Any other TypeError may come after the object acted: not called again.
    let calls = 0;
    const failing = async () => {
      calls++;
      throw new TypeError("Cannot read properties of undefined (reading 'id')");
    };
    await expect(withConfig(snapshot, failing)).rejects.toThrow("reading 'id'");
    expect(calls).toBe(1);
  });

  it("definitions applied in a transaction that rolled back are dropped from memory too", async () => {
    const type = uid("ref_type");
    await createMeter({ slug: uid("ref_meter"), eventType: type, aggregation: "SUM", valueProperty: "$.n" });
    const subject = uid("ref");
    await ingestOk([event({ type, subject, data: { n: 1 } })]);
    const config = await readNamespaceConfig(database(env.DB), "default");
    await runInDurableObject(customerStub(subject), (instance) => {
      const o = instance as unknown as { meters: { version: number }; synced(c: unknown, fn: () => unknown): unknown };
      const held = o.meters.version;
      expect(() => o.synced({ ...config, version: held + 1000 }, () => {
        throw new Error("the call failed after the definitions were applied");
      })).toThrow("the call failed");
      expect(o.meters.version).toBe(held);
      // Naming the version it never stored, the object asks for the snapshot again.
      expect(o.synced({ version: held + 1000 }, () => "ran")).toEqual({ staleConfig: true, holds: held });
    });
  });
});
