import type { D1Migration } from "cloudflare:test";

declare global {
  namespace Cloudflare {
    interface Env {
      TEST_MIGRATIONS: D1Migration[];
      RECEIVER: Fetcher;
    }
    // Types `exports` from "cloudflare:workers" after the Worker's own entry module.
    interface GlobalProps {
      mainModule: typeof import("../src/index");
    }
  }
}
