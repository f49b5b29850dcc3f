/**
 * Where webhooks may be sent. In production only public https endpoints: a metering gateway that
 * posts to URLs its tenants choose must not become a way into private networks (SSRF). With
 * ALLOW_INSECURE_WEBHOOKS (on for `npm start`) http and private addresses are allowed, for local
 * receivers. Hostnames are judged by name only: Workers cannot resolve DNS before fetch, and
 * Cloudflare's network does not route Worker subrequests to private address space anyway.
 */
export type UrlVerdict = { ok: true; url: string } | { ok: false; reason: string };

export function checkWebhookUrl(raw: string, allowInsecure: boolean): UrlVerdict {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return { ok: false, reason: "not an absolute URL" };
  }
  if (url.protocol !== "https:" && !(allowInsecure && url.protocol === "http:")) {
    return { ok: false, reason: allowInsecure ? "only http and https URLs are allowed" : "only https URLs are allowed" };
  }
  if (raw.length > 2048) return { ok: false, reason: "URL longer than 2048 characters" };
  if (allowInsecure) return { ok: true, url: url.toString() };
  const host = url.hostname.toLowerCase();
  const why = privateHost(host);
  if (why) return { ok: false, reason: `${why} addresses are not allowed (set ALLOW_INSECURE_WEBHOOKS for local receivers)` };
  return { ok: true, url: url.toString() };
}

/** The kind of non-public host, or null for a public one. The WHATWG parser has already normalised IPv4 forms like 0x7f.1 or 2130706433. */
export function privateHost(host: string): string | null {
  if (host === "localhost" || host.endsWith(".localhost")) return "loopback";
  if (host.endsWith(".local") || host.endsWith(".internal") || host.endsWith(".home.arpa")) return "private";
  if (host.startsWith("[")) return privateIPv6(host.slice(1, -1));
  const v4 = parseIPv4(host);
  return v4 ? privateIPv4(v4) : null;
}

function parseIPv4(host: string): number[] | null {
  const parts = host.split(".");
  if (parts.length !== 4 || !parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255)) return null;
  return parts.map(Number);
}

function privateIPv4([a, b]: number[]): string | null {
  if (a === 127) return "loopback";
  if (a === 10 || (a === 172 && b! >= 16 && b! <= 31) || (a === 192 && b === 168)) return "private";
  if (a === 169 && b === 254) return "link-local";
  if (a === 100 && b! >= 64 && b! <= 127) return "shared (CGNAT)";
  if (a === 0 || a! >= 224) return "reserved";
  return null;
}

function privateIPv6(ip: string): string | null {
  if (ip === "::1") return "loopback";
  if (ip === "::") return "reserved";
  // IPv4-mapped (::ffff:a.b.c.d, normalised by URL to ::ffff:xxxx:xxxx) inherits the IPv4 verdict.
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(ip);
  if (mapped) {
    const hi = parseInt(mapped[1]!, 16);
    const lo = parseInt(mapped[2]!, 16);
    return privateIPv4([hi >> 8, hi & 255, lo >> 8, lo & 255]);
  }
  const first = parseInt(ip.split(":")[0] || "0", 16);
  if ((first & 0xfe00) === 0xfc00) return "private";
  if ((first & 0xffc0) === 0xfe80) return "link-local";
  if ((first & 0xff00) === 0xff00) return "reserved";
  return null;
}
