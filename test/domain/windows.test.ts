import { describe, expect, it } from "vitest";
import { isValidTimeZone, minuteOf, nextWindowStart, windowStart, type WindowSize } from "../../src/domain/windows";

const at = (iso: string): number => {
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) throw new Error(`bad test instant ${iso}`);
  return ms;
};
const HOUR = 3_600_000;

/** [start, end) of the window containing `iso`, as ISO strings for readable failures. */
function windowOf(iso: string, size: WindowSize, tz: string): [string, string] {
  const start = windowStart(at(iso), size, tz);
  return [new Date(start).toISOString(), new Date(nextWindowStart(start, size, tz)).toISOString()];
}

/** Lengths in hours of `n` consecutive windows starting with the one containing `iso`. */
function lengths(iso: string, size: WindowSize, tz: string, n: number): number[] {
  const out: number[] = [];
  let s = windowStart(at(iso), size, tz);
  for (let i = 0; i < n; i++) {
    const e = nextWindowStart(s, size, tz);
    out.push((e - s) / HOUR);
    s = e;
  }
  return out;
}

describe("minuteOf", () => {
  it("floors to the UTC minute", () => {
    expect(minuteOf(at("2026-03-08T05:00:59.999Z"))).toBe(at("2026-03-08T05:00:00Z"));
    expect(minuteOf(at("2026-03-08T05:01:00Z"))).toBe(at("2026-03-08T05:01:00Z"));
    expect(minuteOf(59_999)).toBe(0);
    expect(minuteOf(60_000)).toBe(60_000);
  });

  it("floors instants before 1970 downwards and never returns -0", () => {
    expect(minuteOf(-1)).toBe(-60_000);
    expect(minuteOf(at("1969-12-31T23:59:30Z"))).toBe(at("1969-12-31T23:59:00Z"));
    expect(Object.is(minuteOf(-0), 0)).toBe(true);
  });
});

describe("isValidTimeZone", () => {
  it.each(["UTC", "Etc/UTC", "America/New_York", "Asia/Kathmandu", "Australia/Lord_Howe"])("accepts %s", (tz) => {
    expect(isValidTimeZone(tz)).toBe(true);
  });

  const invalid = ["", "Mars/Olympus_Mons", "+05:30", "-03:00", "05:30", "Local", "America/New_York/Extra", "x".repeat(100)];
  it.each(invalid)("rejects %j", (tz) => {
    expect(isValidTimeZone(tz)).toBe(false);
    expect(isValidTimeZone(tz)).toBe(false); // the cached answer agrees
  });

  it("makes windowStart throw a RangeError naming the zone", () => {
    expect(() => windowStart(0, "DAY", "Mars/Olympus_Mons")).toThrow(/invalid time zone "Mars\/Olympus_Mons"/);
    expect(() => nextWindowStart(0, "HOUR", "+05:30")).toThrow(RangeError);
  });

  it("rejects non-finite instants and unknown sizes", () => {
    expect(() => windowStart(Number.NaN, "DAY", "UTC")).toThrow(RangeError);
    expect(() => windowStart(0, "WEEK" as WindowSize, "UTC")).toThrow(/unknown window size "WEEK"/);
  });
});

describe("UTC windows", () => {
  it.each<[string, WindowSize, [string, string]]>([
    ["2026-03-08T05:07:42.123Z", "MINUTE", ["2026-03-08T05:07:00.000Z", "2026-03-08T05:08:00.000Z"]],
    ["2026-03-08T05:07:42Z", "HOUR", ["2026-03-08T05:00:00.000Z", "2026-03-08T06:00:00.000Z"]],
    ["2026-03-08T23:59:59.999Z", "DAY", ["2026-03-08T00:00:00.000Z", "2026-03-09T00:00:00.000Z"]],
    ["2026-12-31T23:00:00Z", "MONTH", ["2026-12-01T00:00:00.000Z", "2027-01-01T00:00:00.000Z"]],
    ["2024-02-29T12:00:00Z", "DAY", ["2024-02-29T00:00:00.000Z", "2024-03-01T00:00:00.000Z"]],
    ["2024-02-10T12:00:00Z", "MONTH", ["2024-02-01T00:00:00.000Z", "2024-03-01T00:00:00.000Z"]],
    ["2025-02-10T12:00:00Z", "MONTH", ["2025-02-01T00:00:00.000Z", "2025-03-01T00:00:00.000Z"]],
    ["2100-02-10T12:00:00Z", "MONTH", ["2100-02-01T00:00:00.000Z", "2100-03-01T00:00:00.000Z"]],
    ["1969-12-31T12:34:00Z", "DAY", ["1969-12-31T00:00:00.000Z", "1970-01-01T00:00:00.000Z"]],
  ])("%s %s", (iso, size, expected) => {
    expect(windowOf(iso, size, "UTC")).toEqual(expected);
  });

  it("treats Etc/UTC and GMT like UTC", () => {
    expect(windowOf("2026-07-04T12:00:00Z", "MONTH", "Etc/UTC")).toEqual(["2026-07-01T00:00:00.000Z", "2026-08-01T00:00:00.000Z"]);
    expect(windowOf("2026-07-04T12:00:00Z", "DAY", "GMT")).toEqual(["2026-07-04T00:00:00.000Z", "2026-07-05T00:00:00.000Z"]);
  });
});

describe("MINUTE windows are UTC minutes in every zone", () => {
  it.each(["Asia/Kathmandu", "Asia/Kolkata", "Australia/Lord_Howe", "America/New_York"])("%s", (tz) => {
    expect(windowOf("2026-01-15T12:10:42.5Z", "MINUTE", tz)).toEqual(["2026-01-15T12:10:00.000Z", "2026-01-15T12:11:00.000Z"]);
  });
});

describe("America/New_York", () => {
  it("spring-forward day (2026-03-08) is 23 hours", () => {
    expect(windowOf("2026-03-08T12:00:00Z", "DAY", "America/New_York")).toEqual(["2026-03-08T05:00:00.000Z", "2026-03-09T04:00:00.000Z"]);
    expect(lengths("2026-03-07T12:00:00Z", "DAY", "America/New_York", 3)).toEqual([24, 23, 24]);
  });

  it("fall-back day (2026-11-01) is 25 hours", () => {
    expect(windowOf("2026-11-01T12:00:00Z", "DAY", "America/New_York")).toEqual(["2026-11-01T04:00:00.000Z", "2026-11-02T05:00:00.000Z"]);
    expect(lengths("2026-10-31T12:00:00Z", "DAY", "America/New_York", 3)).toEqual([24, 25, 24]);
  });

  it("skips the missing 02:00 hour on spring-forward", () => {
    expect(windowOf("2026-03-08T06:59:00Z", "HOUR", "America/New_York")).toEqual(["2026-03-08T06:00:00.000Z", "2026-03-08T07:00:00.000Z"]);
    // 07:30Z is 03:30 EDT: the hour after 01:00 EST is 03:00 EDT.
    expect(windowOf("2026-03-08T07:30:00Z", "HOUR", "America/New_York")).toEqual(["2026-03-08T07:00:00.000Z", "2026-03-08T08:00:00.000Z"]);
  });

  it("splits the repeated 01:00 hour on fall-back into two one-hour windows", () => {
    expect(windowOf("2026-11-01T05:30:00Z", "HOUR", "America/New_York")).toEqual(["2026-11-01T05:00:00.000Z", "2026-11-01T06:00:00.000Z"]);
    expect(windowOf("2026-11-01T06:30:00Z", "HOUR", "America/New_York")).toEqual(["2026-11-01T06:00:00.000Z", "2026-11-01T07:00:00.000Z"]);
  });

  it("MONTH windows cross the year boundary in local time", () => {
    // 03:00Z on Jan 1 is still 22:00 on Dec 31 in New York.
    expect(windowOf("2026-01-01T03:00:00Z", "MONTH", "America/New_York")).toEqual(["2025-12-01T05:00:00.000Z", "2026-01-01T05:00:00.000Z"]);
    expect(windowOf("2026-01-01T05:00:00Z", "MONTH", "America/New_York")).toEqual(["2026-01-01T05:00:00.000Z", "2026-02-01T05:00:00.000Z"]);
  });

  it("MONTH windows that contain a DST change start and end at local midnight", () => {
    expect(windowOf("2026-03-20T00:00:00Z", "MONTH", "America/New_York")).toEqual(["2026-03-01T05:00:00.000Z", "2026-04-01T04:00:00.000Z"]);
    expect(windowOf("2026-11-20T00:00:00Z", "MONTH", "America/New_York")).toEqual(["2026-11-01T04:00:00.000Z", "2026-12-01T05:00:00.000Z"]);
  });
});

describe("Europe/Berlin", () => {
  it("spring-forward (2026-03-29) and fall-back (2026-10-25) days", () => {
    expect(windowOf("2026-03-29T12:00:00Z", "DAY", "Europe/Berlin")).toEqual(["2026-03-28T23:00:00.000Z", "2026-03-29T22:00:00.000Z"]);
    expect(windowOf("2026-10-25T12:00:00Z", "DAY", "Europe/Berlin")).toEqual(["2026-10-24T22:00:00.000Z", "2026-10-25T23:00:00.000Z"]);
    expect(lengths("2026-03-29T00:30:00Z", "HOUR", "Europe/Berlin", 3)).toEqual([1, 1, 1]);
    // 00:00Z is 01:00 CET; the next local hour is 03:00 CEST at 01:00Z.
    expect(windowOf("2026-03-29T00:30:00Z", "HOUR", "Europe/Berlin")).toEqual(["2026-03-29T00:00:00.000Z", "2026-03-29T01:00:00.000Z"]);
  });

  it("leap-day February in local time", () => {
    expect(windowOf("2024-02-29T22:59:00Z", "MONTH", "Europe/Berlin")).toEqual(["2024-01-31T23:00:00.000Z", "2024-02-29T23:00:00.000Z"]);
    // 23:00Z on Feb 29 is already March 1 in Berlin.
    expect(windowOf("2024-02-29T23:00:00Z", "MONTH", "Europe/Berlin")).toEqual(["2024-02-29T23:00:00.000Z", "2024-03-31T22:00:00.000Z"]);
    expect(windowOf("2024-02-29T12:00:00Z", "DAY", "Europe/Berlin")).toEqual(["2024-02-28T23:00:00.000Z", "2024-02-29T23:00:00.000Z"]);
  });
});

describe("Australia/Lord_Howe (30-minute DST)", () => {
  it("DST end (2026-04-05, 02:00 +11 -> 01:30 +10:30) makes a 24.5-hour day", () => {
    expect(windowOf("2026-04-04T20:00:00Z", "DAY", "Australia/Lord_Howe")).toEqual(["2026-04-04T13:00:00.000Z", "2026-04-05T13:30:00.000Z"]);
  });

  it("DST start (2026-10-04, 02:00 +10:30 -> 02:30 +11) makes a 23.5-hour day", () => {
    expect(windowOf("2026-10-04T00:00:00Z", "DAY", "Australia/Lord_Howe")).toEqual(["2026-10-03T13:30:00.000Z", "2026-10-04T13:00:00.000Z"]);
  });

  it("cuts HOUR windows at the transition", () => {
    // 01:00-02:00 +11, then the repeated 01:30-02:00 +10:30, then 02:00-03:00 +10:30.
    expect(lengths("2026-04-04T14:10:00Z", "HOUR", "Australia/Lord_Howe", 3)).toEqual([1, 0.5, 1]);
    expect(windowOf("2026-04-04T15:10:00Z", "HOUR", "Australia/Lord_Howe")).toEqual(["2026-04-04T15:00:00.000Z", "2026-04-04T15:30:00.000Z"]);
    // 01:00-02:00 +10:30, then 02:30-03:00 +11, then 03:00-04:00 +11.
    expect(lengths("2026-10-03T14:40:00Z", "HOUR", "Australia/Lord_Howe", 3)).toEqual([1, 0.5, 1]);
    expect(windowOf("2026-10-03T15:40:00Z", "HOUR", "Australia/Lord_Howe")).toEqual(["2026-10-03T15:30:00.000Z", "2026-10-03T16:00:00.000Z"]);
  });
});

describe("fractional-hour offsets", () => {
  it("Asia/Kolkata (+05:30)", () => {
    expect(windowOf("2026-01-15T12:10:00Z", "HOUR", "Asia/Kolkata")).toEqual(["2026-01-15T11:30:00.000Z", "2026-01-15T12:30:00.000Z"]);
    expect(windowOf("2026-01-15T12:10:00Z", "DAY", "Asia/Kolkata")).toEqual(["2026-01-14T18:30:00.000Z", "2026-01-15T18:30:00.000Z"]);
    expect(windowOf("2025-12-31T18:29:00Z", "MONTH", "Asia/Kolkata")).toEqual(["2025-11-30T18:30:00.000Z", "2025-12-31T18:30:00.000Z"]);
    expect(windowOf("2025-12-31T18:30:00Z", "MONTH", "Asia/Kolkata")).toEqual(["2025-12-31T18:30:00.000Z", "2026-01-31T18:30:00.000Z"]);
  });

  it("Asia/Kathmandu (+05:45)", () => {
    expect(windowOf("2026-01-15T12:10:00Z", "HOUR", "Asia/Kathmandu")).toEqual(["2026-01-15T11:15:00.000Z", "2026-01-15T12:15:00.000Z"]);
    expect(windowOf("2026-01-15T12:20:00Z", "HOUR", "Asia/Kathmandu")).toEqual(["2026-01-15T12:15:00.000Z", "2026-01-15T13:15:00.000Z"]);
    expect(windowOf("2026-01-15T12:10:00Z", "DAY", "Asia/Kathmandu")).toEqual(["2026-01-14T18:15:00.000Z", "2026-01-15T18:15:00.000Z"]);
  });

  it("Asia/Kathmandu's 1986 move from +05:30 to +05:45 skips local 00:00-00:15", () => {
    expect(windowOf("1985-12-31T18:20:00Z", "HOUR", "Asia/Kathmandu")).toEqual(["1985-12-31T17:30:00.000Z", "1985-12-31T18:30:00.000Z"]);
    expect(windowOf("1985-12-31T18:40:00Z", "HOUR", "Asia/Kathmandu")).toEqual(["1985-12-31T18:30:00.000Z", "1985-12-31T19:15:00.000Z"]);
    expect(windowOf("1985-12-31T18:40:00Z", "DAY", "Asia/Kathmandu")).toEqual(["1985-12-31T18:30:00.000Z", "1986-01-01T18:15:00.000Z"]);
  });

  it("Asia/Tokyo MONTH across the year boundary", () => {
    expect(windowOf("2025-12-31T14:59:00Z", "MONTH", "Asia/Tokyo")).toEqual(["2025-11-30T15:00:00.000Z", "2025-12-31T15:00:00.000Z"]);
    expect(windowOf("2025-12-31T15:00:00Z", "MONTH", "Asia/Tokyo")).toEqual(["2025-12-31T15:00:00.000Z", "2026-01-31T15:00:00.000Z"]);
  });
});

describe("transitions in the middle of a local hour", () => {
  it("America/Caracas 2016-05-01, 02:30 -04:30 -> 03:00 -04: the 02:00 hour ends after 30 minutes", () => {
    expect(windowOf("2016-05-01T06:40:00Z", "HOUR", "America/Caracas")).toEqual(["2016-05-01T06:30:00.000Z", "2016-05-01T07:00:00.000Z"]);
    expect(windowOf("2016-05-01T07:10:00Z", "HOUR", "America/Caracas")).toEqual(["2016-05-01T07:00:00.000Z", "2016-05-01T08:00:00.000Z"]);
    expect(windowOf("2016-05-01T12:00:00Z", "DAY", "America/Caracas")).toEqual(["2016-05-01T04:30:00.000Z", "2016-05-02T04:00:00.000Z"]);
  });

  it("Asia/Pyongyang 2018-05-04, 23:30 +08:30 -> 00:00 +09: a 23.5-hour day", () => {
    expect(windowOf("2018-05-04T14:40:00Z", "HOUR", "Asia/Pyongyang")).toEqual(["2018-05-04T14:30:00.000Z", "2018-05-04T15:00:00.000Z"]);
    expect(windowOf("2018-05-04T12:00:00Z", "DAY", "Asia/Pyongyang")).toEqual(["2018-05-03T15:30:00.000Z", "2018-05-04T15:00:00.000Z"]);
    expect(windowOf("2018-05-04T15:10:00Z", "DAY", "Asia/Pyongyang")).toEqual(["2018-05-04T15:00:00.000Z", "2018-05-05T15:00:00.000Z"]);
  });
});

describe("local midnight repeated or skipped", () => {
  it("America/Havana falls back 01:00 -> 00:00 (2026-11-01): the day starts at the first midnight", () => {
    expect(windowOf("2026-11-01T12:00:00Z", "DAY", "America/Havana")).toEqual(["2026-11-01T04:00:00.000Z", "2026-11-02T05:00:00.000Z"]);
    expect(windowOf("2026-11-01T05:30:00Z", "DAY", "America/Havana")).toEqual(["2026-11-01T04:00:00.000Z", "2026-11-02T05:00:00.000Z"]);
    expect(windowOf("2026-10-31T12:00:00Z", "DAY", "America/Havana")).toEqual(["2026-10-31T04:00:00.000Z", "2026-11-01T04:00:00.000Z"]);
  });

  it("America/Santiago springs 00:00 -> 01:00 (2026-09-06): the day starts at 01:00", () => {
    expect(windowOf("2026-09-06T12:00:00Z", "DAY", "America/Santiago")).toEqual(["2026-09-06T04:00:00.000Z", "2026-09-07T03:00:00.000Z"]);
    expect(windowOf("2026-09-05T12:00:00Z", "DAY", "America/Santiago")).toEqual(["2026-09-05T04:00:00.000Z", "2026-09-06T04:00:00.000Z"]);
    expect(windowOf("2026-09-20T12:00:00Z", "MONTH", "America/Santiago")).toEqual(["2026-09-01T04:00:00.000Z", "2026-10-01T03:00:00.000Z"]);
  });

  it("America/Santiago falls back 24:00 -> 23:00 (2026-04-05): Saturday has 25 hours", () => {
    expect(windowOf("2026-04-04T12:00:00Z", "DAY", "America/Santiago")).toEqual(["2026-04-04T03:00:00.000Z", "2026-04-05T04:00:00.000Z"]);
    expect(windowOf("2026-04-05T03:30:00Z", "HOUR", "America/Santiago")).toEqual(["2026-04-05T03:00:00.000Z", "2026-04-05T04:00:00.000Z"]);
  });
});

describe("year 0000 (RFC 3339 and ingest accept it)", () => {
  // Intl prints 1 BC (year 0) as "1", its era year: the window was read a year late, 0001-06-14T23:06:32Z.
  it("a DAY, MONTH or HOUR window in year 0 contains its instant", () => {
    expect(windowOf("0000-06-15T12:00:00Z", "DAY", "Europe/Berlin")).toEqual(["0000-06-14T23:06:32.000Z", "0000-06-15T23:06:32.000Z"]);
    expect(windowOf("0000-06-15T12:00:00Z", "MONTH", "America/New_York")).toEqual(["0000-06-01T04:56:02.000Z", "0000-07-01T04:56:02.000Z"]);
    expect(windowOf("0000-01-01T00:30:00Z", "HOUR", "Etc/GMT-9")).toEqual(["0000-01-01T00:00:00.000Z", "0000-01-01T01:00:00.000Z"]);
  });
});

describe("a local date that comes back after the next one began (America/St_Johns, 2010-11-07 00:01 -> 2010-11-06 23:01)", () => {
  // The repeated 23:01-24:00 of Nov 6 (02:31-03:30Z) got Nov 6's window [Nov 6 02:30Z, Nov 7 02:30Z), which
  // does not contain it, or Nov 7's, depending on which instant was asked about before.
  it("puts the repeated hour in the day that began at the first midnight, whatever was asked before", () => {
    expect(windowOf("2010-11-07T02:45:00Z", "DAY", "America/St_Johns")).toEqual(["2010-11-07T02:30:00.000Z", "2010-11-08T03:30:00.000Z"]);
    expect(windowOf("2010-11-06T12:00:00Z", "DAY", "America/St_Johns")).toEqual(["2010-11-06T02:30:00.000Z", "2010-11-07T02:30:00.000Z"]);
    expect(windowOf("2010-11-07T02:45:00Z", "DAY", "America/St_Johns")).toEqual(["2010-11-07T02:30:00.000Z", "2010-11-08T03:30:00.000Z"]);
  });
});

describe("a skipped local date (Pacific/Apia, 2011-12-30)", () => {
  it("goes from Dec 29 straight to Dec 31", () => {
    expect(windowOf("2011-12-29T20:00:00Z", "DAY", "Pacific/Apia")).toEqual(["2011-12-29T10:00:00.000Z", "2011-12-30T10:00:00.000Z"]);
    expect(windowOf("2011-12-30T10:00:00Z", "DAY", "Pacific/Apia")).toEqual(["2011-12-30T10:00:00.000Z", "2011-12-31T10:00:00.000Z"]);
  });
});

/**
 * An independent oracle: scan every minute, read the local label with formatToParts, and cut a
 * window wherever the label changes. HOUR labels include the UTC offset, DAY labels do not.
 */
function oracleBoundaries(tz: string, size: "HOUR" | "DAY", from: number, to: number): number[] {
  const fmt = new Intl.DateTimeFormat("en-US", {
    timeZone: tz, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
  });
  const label = (t: number): string => {
    const p: Record<string, number> = {};
    for (const part of fmt.formatToParts(t)) if (part.type !== "literal") p[part.type] = Number(part.value);
    const day = `${p.year}-${p.month}-${p.day}`;
    if (size === "DAY") return day;
    const offset = Date.UTC(p.year!, p.month! - 1, p.day!, p.hour!, p.minute!) - t;
    return `${day}T${p.hour}@${offset}`;
  };
  const cuts: number[] = [];
  let prev = label(from);
  for (let t = from + 60_000; t <= to; t += 60_000) {
    const l = label(t);
    if (l !== prev) cuts.push(t);
    prev = l;
  }
  return cuts;
}

describe("agrees with a minute-by-minute oracle around transitions", () => {
  const cases: [string, string, string][] = [
    ["America/New_York", "2026-03-07T00:00:00Z", "2026-03-10T00:00:00Z"],
    ["America/New_York", "2026-10-31T00:00:00Z", "2026-11-03T00:00:00Z"],
    ["Europe/Berlin", "2026-03-28T00:00:00Z", "2026-03-31T00:00:00Z"],
    ["Europe/Berlin", "2026-10-24T00:00:00Z", "2026-10-27T00:00:00Z"],
    ["Australia/Lord_Howe", "2026-04-03T00:00:00Z", "2026-04-06T00:00:00Z"],
    ["Australia/Lord_Howe", "2026-10-02T00:00:00Z", "2026-10-05T00:00:00Z"],
    ["Asia/Kolkata", "2026-01-14T00:00:00Z", "2026-01-16T00:00:00Z"],
    ["Asia/Kathmandu", "1985-12-30T00:00:00Z", "1986-01-02T00:00:00Z"],
    ["Pacific/Apia", "2011-12-28T00:00:00Z", "2012-01-01T00:00:00Z"],
    ["America/Havana", "2026-10-30T00:00:00Z", "2026-11-03T00:00:00Z"],
    ["America/Caracas", "2016-04-30T00:00:00Z", "2016-05-03T00:00:00Z"],
    ["Asia/Pyongyang", "2018-05-03T00:00:00Z", "2018-05-06T00:00:00Z"],
    ["America/Santiago", "2026-09-04T00:00:00Z", "2026-09-08T00:00:00Z"],
    ["America/Santiago", "2026-04-03T00:00:00Z", "2026-04-07T00:00:00Z"],
  ];
  for (const [tz, fromIso, toIso] of cases) {
    for (const size of ["HOUR", "DAY"] as const) {
      it(`${tz} ${size} from ${fromIso}`, () => {
        const cuts = oracleBoundaries(tz, size, at(fromIso), at(toIso));
        expect(cuts.length).toBeGreaterThan(1);
        for (let i = 0; i + 1 < cuts.length; i++) {
          expect(nextWindowStart(cuts[i]!, size, tz)).toBe(cuts[i + 1]);
          for (let t = cuts[i]!; t < cuts[i + 1]!; t += 60_000) {
            if (windowStart(t, size, tz) !== cuts[i]) {
              expect.fail(`${new Date(t).toISOString()}: got ${new Date(windowStart(t, size, tz)).toISOString()}`);
            }
          }
        }
      });
    }
  }
});

describe("results do not depend on call order", () => {
  it("gives the same windows for shuffled, zone-interleaved calls as for sorted ones", () => {
    const zones = ["America/New_York", "Asia/Kathmandu", "Australia/Lord_Howe"];
    const sizes: WindowSize[] = ["HOUR", "DAY", "MONTH"];
    const base = at("2026-03-28T00:00:00Z");
    const instants = Array.from({ length: 400 }, (_, i) => base + i * 47 * 60_000);
    const expected = new Map<string, number>();
    for (const tz of zones) {
      for (const size of sizes) {
        for (const t of instants) expected.set(`${tz} ${size} ${t}`, windowStart(t, size, tz));
      }
    }
    // 151 is coprime with 400, so this visits every instant once, far from time order.
    for (let i = 0; i < instants.length; i++) {
      const t = instants[(i * 151) % instants.length]!;
      for (const tz of zones) {
        for (const size of sizes) {
          expect(windowStart(t, size, tz)).toBe(expected.get(`${tz} ${size} ${t}`));
        }
      }
    }
  });
});
