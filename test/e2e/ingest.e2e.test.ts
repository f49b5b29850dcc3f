// Ingest → query → restart → query, against a real `wrangler dev` process.
// What the in-workerd tests cannot show: the 202 really meant "on disk", across a process restart.
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startGateway, type Gateway } from "./harness.mjs";

const SUBJECT = "customer-1";

describe("ingest end to end", () => {
  let gw: Gateway;

  beforeAll(async () => {
    // Without the harness's ALLOW_INSECURE_WEBHOOKS: npm start's own default is under test below.
    gw = await startGateway({ env: { ALLOW_INSECURE_WEBHOOKS: undefined } });
  });

  afterAll(async () => {
    await gw?.cleanup();
  });

  const call = (path: string, init: RequestInit & { contentType?: string } = {}) =>
    fetch(new URL(path, gw.baseUrl), {
      ...init,
      headers: {
        authorization: `Bearer ${gw.adminKey}`,
        ...(init.body !== undefined ? { "content-type": init.contentType ?? "application/json" } : {}),
      },
    });

  const queryTotal = async () => {
    const res = await call(`/api/v1/meters/tokens_total/query?subject=${encodeURIComponent(SUBJECT)}`);
    const body = await res.text();
    expect(res.status, body).toBe(200);
    return JSON.parse(body) as { data: Array<{ value: number; subject?: string }> };
  };

  it("counts a batch once, deduplicates a resent id, and keeps totals across a restart", async () => {
    const meter = await call("/api/v1/meters", {
      method: "POST",
      body: JSON.stringify({
        slug: "tokens_total",
        eventType: "prompt",
        aggregation: "SUM",
        valueProperty: "$.tokens",
        groupBy: { model: "$.model" },
      }),
    });
    expect(meter.status, await meter.clone().text()).toBe(201);

    const now = new Date().toISOString();
    const event = (id: string, tokens: number) => ({
      specversion: "1.0",
      id,
      source: "e2e",
      type: "prompt",
      subject: SUBJECT,
      time: now,
      data: { tokens, model: "m" },
    });
    const first = randomUUID();
    const batch = [event(first, 5), event(randomUUID(), 7), event(first, 5)]; // the third is a resend

    const ingest = await call("/api/v1/events", {
      method: "POST",
      contentType: "application/cloudevents-batch+json",
      body: JSON.stringify(batch),
    });
    const ingestBody = await ingest.text();
    expect(ingest.status, ingestBody).toBe(202);
    expect(JSON.parse(ingestBody)).toMatchObject({ accepted: 2, duplicates: 1, rejected: [] });

    const before = await queryTotal();
    expect(before.data).toHaveLength(1);
    expect(before.data[0]).toMatchObject({ value: 12, subject: SUBJECT });

    // Graceful stop (SIGTERM to the whole process group), then a new process on the same state dir.
    gw = await gw.restart();

    const after = await queryTotal();
    expect(after.data).toHaveLength(1);
    expect(after.data[0]).toMatchObject({ value: 12, subject: SUBJECT });
  });

  it("lets npm start accept a local http webhook receiver without any configuration", async () => {
    const res = await call("/api/v1/notification/channels", {
      method: "POST",
      body: JSON.stringify({ type: "WEBHOOK", name: "local", url: "http://127.0.0.1:9/hook" }),
    });
    expect(res.status, await res.clone().text()).toBe(201);
  });
});
