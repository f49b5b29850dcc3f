import { describe, expect, it } from "vitest";
import { api, createMeter, event, expectProblem, ingestOk, total, uid } from "../helpers/api";

/** Meter date-times the API cannot read. */

describe("meter eventFrom", () => {
  it("more than 9 fractional digits is refused (400 naming eventFrom), not read as no cutoff", async () => {
    const slug = uid("from");
    const res = await api("POST", "/api/v1/meters", { body: { slug, eventType: "from_call", aggregation: "COUNT", eventFrom: "2099-01-01T00:00:00.0000000001Z" } });
    expectProblem(res, 400, "validation_failed");
    expect(res.body.errors.map((e: { field: string }) => e.field)).toEqual(["eventFrom"]);
    expectProblem(await api("GET", `/api/v1/meters/${slug}`), 404, "not_found");
  });

  it("9 fractional digits are read (to the millisecond) and the cutoff applies", async () => {
    const slug = uid("from");
    const created = await createMeter({ slug, eventType: "from_call", aggregation: "COUNT", eventFrom: "2099-01-01T00:00:00.123456789Z" });
    expect(created.body.eventFrom).toBe("2099-01-01T00:00:00.123Z");
    const subject = uid("from_subject");
    await ingestOk([event({ type: "from_call", subject })]);
    expect(await total(slug, subject)).toBe(0);
  });
});
