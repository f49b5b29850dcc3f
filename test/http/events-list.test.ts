import { describe, expect, it } from "vitest";
import { api, event, expectProblem, ingestOk, iso, listEvents, MINUTE, uid } from "../helpers/api";

/** GET /api/v1/events: OpenMeter's listEvents filters beyond subject and event time. */

const ids = (list: { event: { id: string } }[]) => list.map((e) => e.event.id).sort();

describe("GET /api/v1/events filters", () => {
  it("id matches a part of the event id, case-sensitively; % and _ are plain characters", async () => {
    const subject = uid("ev_id");
    const long = `order-${"x".repeat(60)}-tail`;
    await ingestOk([
      event({ subject, id: "order-100_a" }),
      event({ subject, id: "order-100%b" }),
      event({ subject, id: "ORDER-7" }),
      event({ subject, id: long }),
    ]);
    const by = async (id: string) => ids(await listEvents(subject, undefined, `&id=${encodeURIComponent(id)}`));
    expect(await by("100")).toEqual(["order-100%b", "order-100_a"]);
    expect(await by("%")).toEqual(["order-100%b"]);
    expect(await by("_")).toEqual(["order-100_a"]);
    expect(await by("order")).toEqual([long, "order-100%b", "order-100_a"].sort());
    expect(await by("ORDER")).toEqual(["ORDER-7"]);
    // Longer than the 50 bytes production allows a LIKE pattern.
    expect(await by(`${"x".repeat(60)}-tail`)).toEqual([long]);
    expect(await by("nothing-like-it")).toEqual([]);
  });

  it("ingestedAtFrom and ingestedAtTo bound the ingestion time, inclusively", async () => {
    const subject = uid("ev_ingested");
    const first = event({ subject, time: iso(Date.now() - 10 * MINUTE) });
    await ingestOk([first]);
    await new Promise((r) => setTimeout(r, 20));
    const second = event({ subject, time: iso(Date.now() - 20 * MINUTE) });
    await ingestOk([second]);
    const all = await listEvents(subject);
    const at = (id: unknown) => all.find((e) => e.event.id === id)!.ingestedAt as string;
    expect(Date.parse(at(second.id))).toBeGreaterThan(Date.parse(at(first.id)));

    const q = (qs: string) => listEvents(subject, undefined, qs).then(ids);
    expect(await q(`&ingestedAtFrom=${at(second.id)}`)).toEqual([second.id]);
    expect(await q(`&ingestedAtTo=${at(first.id)}`)).toEqual([first.id]);
    expect(await q(`&ingestedAtFrom=${at(first.id)}&ingestedAtTo=${at(second.id)}`)).toEqual(ids(all));
    expect(await q(`&ingestedAtFrom=${iso(Date.parse(at(second.id)) + 1)}`)).toEqual([]);
    // Event time still bounds the list too (from defaults to 72 hours ago).
    expect(await q(`&ingestedAtFrom=${at(first.id)}&to=${iso(Date.now() - 15 * MINUTE)}`)).toEqual([second.id]);
  });

  it("an event stamped ahead of now is listed without `to`, as ingest accepted it", async () => {
    const subject = uid("ev_future");
    const ahead = event({ subject, time: iso(Date.now() + 3 * MINUTE) });
    const now = event({ subject });
    await ingestOk([ahead, now]);
    expect((await listEvents(subject)).map((e) => e.event.id)).toEqual([ahead.id, now.id]);
    expect(ids(await listEvents(subject, undefined, `&to=${iso(Date.now() + MINUTE)}`))).toEqual([now.id]);
  });

  it("clientId is accepted and changes nothing; customerId is refused, naming it", async () => {
    const subject = uid("ev_client");
    const e = event({ subject });
    await ingestOk([e]);
    expect(ids(await listEvents(subject, undefined, "&clientId=progress-1"))).toEqual([e.id]);
    for (const qs of ["customerId=01G65Z755AFWAKHE12NY0CQ9FH", "customerId=a&customerId=b"]) {
      const res = await api("GET", `/api/v1/events?subject=${subject}&${qs}`);
      expectProblem(res, 400, "validation_failed");
      expect(res.body.errors.map((x: { field: string }) => x.field)).toEqual(["customerId"]);
    }
  });

  it("400 naming a malformed ingestion time or clientId", async () => {
    const subject = uid("ev_bad");
    for (const [qs, field] of [
      ["ingestedAtFrom=yesterday", "ingestedAtFrom"],
      ["ingestedAtTo=2026-02-30T00:00:00Z", "ingestedAtTo"],
      [`clientId=${"c".repeat(37)}`, "clientId"],
    ]) {
      const res = await api("GET", `/api/v1/events?subject=${subject}&${qs}`);
      expectProblem(res, 400, "validation_failed");
      expect(res.text).toContain(field);
    }
  });
});
