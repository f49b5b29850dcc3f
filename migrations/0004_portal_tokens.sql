CREATE TABLE `portal_tokens` (
	`id` text PRIMARY KEY NOT NULL,
	`namespace` text NOT NULL,
	`subject` text NOT NULL,
	`allowed_meter_slugs` text,
	`token_hash` text NOT NULL,
	`expires_at` integer NOT NULL,
	`created_at` integer NOT NULL,
	`invalidated_at` integer
);
--> statement-breakpoint
CREATE UNIQUE INDEX `portal_tokens_hash` ON `portal_tokens` (`token_hash`);--> statement-breakpoint
CREATE INDEX `portal_tokens_ns_created` ON `portal_tokens` (`namespace`,`created_at`);--> statement-breakpoint
CREATE INDEX `portal_tokens_ns_subject` ON `portal_tokens` (`namespace`,`subject`);