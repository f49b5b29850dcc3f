import { describe, expect, it } from "vitest";
import { checkWebhookUrl } from "../../src/domain/webhook-url";

describe("webhook URL policy", () => {
  it("accepts public https URLs in production", () => {
    expect(checkWebhookUrl("https://hooks.example.com/edgemeter?x=1", false)).toEqual({ ok: true, url: "https://hooks.example.com/edgemeter?x=1" });
    expect(checkWebhookUrl("https://8.8.8.8/hook", false).ok).toBe(true);
  });

  it.each([
    ["http://hooks.example.com/", "only https"],
    ["ftp://example.com/", "only https"],
    ["not a url", "not an absolute URL"],
    ["https://localhost/", "loopback"],
    ["https://api.localhost/", "loopback"],
    ["https://127.0.0.1/", "loopback"],
    ["https://2130706433/", "loopback"],
    ["https://0x7f.1/", "loopback"],
    ["https://10.1.2.3/", "private"],
    ["https://172.20.0.1/", "private"],
    ["https://192.168.1.1/", "private"],
    ["https://169.254.169.254/latest/meta-data", "link-local"],
    ["https://100.64.0.1/", "CGNAT"],
    ["https://0.0.0.0/", "reserved"],
    ["https://[::1]/", "loopback"],
    ["https://[fd00::1]/", "private"],
    ["https://[fe80::1]/", "link-local"],
    ["https://[::ffff:127.0.0.1]/", "loopback"],
    ["https://[::ffff:10.0.0.1]/", "private"],
    ["https://printer.local/", "private"],
    ["https://metadata.google.internal/", "private"],
  ])("refuses %s in production", (url, reason) => {
    const v = checkWebhookUrl(url, false);
    expect(v.ok).toBe(false);
    if (!v.ok) expect(v.reason).toContain(reason);
  });

  it("allows http and loopback receivers when insecure webhooks are allowed", () => {
    expect(checkWebhookUrl("http://127.0.0.1:9999/hook", true).ok).toBe(true);
    expect(checkWebhookUrl("ftp://127.0.0.1/", true).ok).toBe(false);
  });
});
