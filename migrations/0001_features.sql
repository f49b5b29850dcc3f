CREATE TABLE `features` (
	`id` text PRIMARY KEY NOT NULL,
	`namespace` text NOT NULL,
	`key` text NOT NULL,
	`name` text NOT NULL,
	`meter_slug` text,
	`meter_group_by_filters` text,
	`metadata` text,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	`archived_at` integer
);
--> statement-breakpoint
CREATE UNIQUE INDEX `features_ns_key_live` ON `features` (`namespace`,`key`) WHERE archived_at IS NULL;--> statement-breakpoint
CREATE INDEX `features_ns` ON `features` (`namespace`);--> statement-breakpoint
CREATE TABLE `grant_index` (
	`id` text PRIMARY KEY NOT NULL,
	`namespace` text NOT NULL,
	`subject` text NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `grant_index_ns` ON `grant_index` (`namespace`);