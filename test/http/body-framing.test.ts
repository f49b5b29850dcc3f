import { readCappedText } from "../../src/http/body";
import { ApiError } from "../../src/http/errors";
import { describe, expect, it } from "vitest";
import { api, event, expectProblem } from "../helpers/api";

/** A body of unknown length (as chunked) whose stream fails after its first bytes, as when the chunked framing is malformed. */
function brokenRequest(first: string): Request {
  let sent = false;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent) return controller.error(new TypeError("Invalid chunk size"));
      sent = true;
      controller.enqueue(new TextEncoder().encode(first));
    },
  });
  return new Request("http://edgemeter.test/api/v1/events", { method: "POST", body });
}

describe("request body framing", () => {
  it("a body that cannot be read to its end is the client's 400 (every route reads bodies through readCappedText)", async () => {
    const err = await readCappedText(brokenRequest('{"specversion":"1.0",'), 1_000_000).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ code: "bad_request", message: expect.stringContaining("could not be read") });
    // A body over the cap is still a 413, not a read failure.
    const big = await readCappedText(brokenRequest("x".repeat(2_000)), 1_000).catch((e: unknown) => e);
    expect(big).toMatchObject({ code: "payload_too_large" });
  });

  it("a compressed body (any Content-Encoding but identity) is refused with 415 before it is read", async () => {
    const e = event();
    for (const coding of ["gzip", "br", "GZIP, identity"]) {
      const res = await api("POST", "/api/v1/events", { body: e, type: "application/cloudevents+json", headers: { "content-encoding": coding } });
      expectProblem(res, 415, "unsupported_media_type");
      expect(res.body.detail).toContain("Content-Encoding");
    }
    expectProblem(await api("POST", "/api/v1/meters", { body: { slug: "x_y" }, headers: { "content-encoding": "gzip" } }), 415, "unsupported_media_type");
    const plain = await api("POST", "/api/v1/events", { body: e, type: "application/cloudevents+json", headers: { "content-encoding": "identity" } });
    expect(plain.status, plain.text).toBe(202);
  });
});
