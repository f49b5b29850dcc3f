import { app } from "./http/app";
import type { Env } from "./env";
import { scheduled } from "./jobs/cron";

export { CustomerDO } from "./customer/do";

export default {
  fetch: app.fetch,
  scheduled,
} satisfies ExportedHandler<Env>;
