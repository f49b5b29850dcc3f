import { describe, expect, it } from "vitest";
import { api, createMeter, event, ingestOk, uid } from "../helpers/api";

/** A CSV field back to its text (RFC 4180: quoted fields double their quotes). */
function fields(line: string): string[] {
  const out: string[] = [];
  for (const m of line.matchAll(/("((?:[^"]|"")*)"|[^,]*)(,|$)/g)) {
    out.push(m[2] !== undefined ? m[2].replace(/""/g, '"') : m[1]!);
    if (m[3] === "") break;
  }
  return out;
}

describe("CSV export of a meter query", () => {
  it("writes text that a spreadsheet would run as a formula with a leading ', and leaves numbers and plain text alone", async () => {
    const type = uid("csv");
    const slug = uid("csv_sum");
    await createMeter({ slug, eventType: type, aggregation: "SUM", valueProperty: "$.n", groupBy: { label: "$.label" } });
    const subject = `=${uid("subj")}`;
    const labels = ['=HYPERLINK("http://evil.example","x")', "@SUM(A1)", "+1", "-2+3", "\tcmd", "\rcmd", "plain", "a=b"];
    await ingestOk(labels.map((label, i) => event({ type, subject, data: { n: -(i + 1), label } })));

    const res = await api("GET", `/api/v1/meters/${slug}/query?${new URLSearchParams({ subject, groupBy: "label" })}`, { headers: { accept: "text/csv" } });
    expect(res.status, res.text).toBe(200);
    const rows = res.text
      .split("\r\n")
      .filter((l) => l && !l.startsWith("window_start"))
      .map(fields)
      .map(([, , s, label, value]) => ({ s, label, value }));
    const expected = labels.map((label, i) => ({ s: `'${subject}`, label: /^[=+\-@\t\r]/.test(label) ? `'${label}` : label, value: String(-(i + 1)) }));
    expect(rows.sort((a, b) => a.label!.localeCompare(b.label!))).toEqual(expected.sort((a, b) => a.label.localeCompare(b.label)));
    // JSON answers the values as they were sent.
    const json = await api("GET", `/api/v1/meters/${slug}/query?${new URLSearchParams({ subject, groupBy: "label" })}`);
    expect(json.body.data.map((r: { groupBy: { label: string } }) => r.groupBy.label).sort()).toEqual([...labels].sort());
  });
});
