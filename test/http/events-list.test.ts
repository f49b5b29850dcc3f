import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { api, createKey, event, expectProblem, ingestOk, iso, listEvents, MINUTE, uid } from "../helpers/api";

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

  it("without subject: every subject's events, newest first across subjects, limit over the whole list", async () => {
    const { key } = await createKey({ scopes: ["admin"], namespace: uid("ns_events") });
    const at = (minutesAgo: number) => iso(Date.now() - minutesAgo * MINUTE);
    const a = [event({ subject: "alpha", time: at(5) }), event({ subject: "alpha", time: at(1) })];
    const b = [event({ subject: "beta", time: at(3) }), event({ subject: "beta", time: at(7) })];
    await ingestOk([...a, ...b], { key });
    const list = async (qs: string) => {
      const res = await api("GET", `/api/v1/events${qs}`, { key });
      expect(res.status, res.text).toBe(200);
      return (res.body as { event: { id: string; subject: string } }[]).map((e) => `${e.event.subject}:${e.event.id}`);
    };
    const newestFirst = [a[1]!, b[0]!, a[0]!, b[1]!].map((e) => `${e.subject}:${e.id}`);
    expect(await list("")).toEqual(newestFirst);
    expect(await list("?limit=3")).toEqual(newestFirst.slice(0, 3));
    expect(await list(`?from=${encodeURIComponent(at(4))}`)).toEqual(newestFirst.slice(0, 2));
  });

  it("subject matches a part of the key, case-sensitively, as OpenMeter's 'accepts partial subject'", async () => {
    const { key } = await createKey({ scopes: ["admin"], namespace: uid("ns_partial") });
    const events = ["customer-1", "customer-10", "customer-2", "Customer-1x", "x%_y"].map((subject) => event({ subject }));
    await ingestOk(events, { key });
    const subjects = async (subject: string) => {
      const res = await api("GET", `/api/v1/events?subject=${encodeURIComponent(subject)}`, { key });
      expect(res.status, res.text).toBe(200);
      return (res.body as { event: { subject: string } }[]).map((e) => e.event.subject).sort();
    };
    expect(await subjects("customer-1")).toEqual(["customer-1", "customer-10"]);
    expect(await subjects("ustomer-")).toEqual(["Customer-1x", "customer-1", "customer-10", "customer-2"]);
    expect(await subjects("%_")).toEqual(["x%_y"]);
    expect(await subjects("nobody")).toEqual([]);
  });

  it("400 naming subject when more subjects match than one list reaches", async () => {
    const namespace = uid("ns_many");
    const { key } = await createKey({ scopes: ["admin"], namespace });
    // Registered subjects without events, written to D1 directly: 1,001 of them through the API would be 1,001 objects.
    const rows = Array.from({ length: 1_001 }, (_, i) => [namespace, `s-${String(i).padStart(4, "0")}`, `01J${String(i).padStart(23, "0")}`, Date.now()]);
    await env.DB.prepare("INSERT INTO subjects (namespace, key, id, created_at) SELECT value->>0, value->>1, value->>2, value->>3 FROM json_each(?)").bind(JSON.stringify(rows)).run();
    for (const qs of ["", "?subject=s-"]) {
      const res = await api("GET", `/api/v1/events${qs}`, { key });
      expectProblem(res, 400, "validation_failed");
      expect(res.body.errors.map((x: { field: string }) => x.field)).toEqual(["subject"]);
      expect(res.text).toContain("more than 1,000 subjects");
    }
    const one = await api("GET", "/api/v1/events?subject=s-0007", { key });
    expect(one.status, one.text).toBe(200);
    expect(one.body).toEqual([]);
  });

  it("a subject named whole is asked even when D1 no longer lists it (DELETE /subjects keeps the usage)", async () => {
    const { key } = await createKey({ scopes: ["admin"], namespace: uid("ns_deleted") });
    const e = event({ subject: "gone" });
    await ingestOk([e], { key });
    const del = await api("DELETE", "/api/v1/subjects/gone", { key });
    expect(del.status, del.text).toBe(204);
    const res = await api("GET", "/api/v1/events?subject=gone", { key });
    expect(res.status, res.text).toBe(200);
    expect(res.body.map((x: { event: { id: string } }) => x.event.id)).toEqual([e.id]);
  });
});
