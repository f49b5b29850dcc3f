CREATE TABLE `notification_channels` (
	`id` text PRIMARY KEY NOT NULL,
	`namespace` text NOT NULL,
	`name` text NOT NULL,
	`url` text NOT NULL,
	`custom_headers` text NOT NULL,
	`signing_secret` text NOT NULL,
	`disabled` integer NOT NULL,
	`metadata` text,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	`deleted_at` integer
);
--> statement-breakpoint
CREATE INDEX `notification_channels_ns` ON `notification_channels` (`namespace`);--> statement-breakpoint
CREATE TABLE `notification_events` (
	`id` text PRIMARY KEY NOT NULL,
	`namespace` text NOT NULL,
	`rule_id` text NOT NULL,
	`type` text NOT NULL,
	`subject` text NOT NULL,
	`feature_key` text,
	`created_at` integer NOT NULL,
	`payload` text NOT NULL,
	`deliveries` text NOT NULL
);
--> statement-breakpoint
CREATE INDEX `notification_events_ns_time` ON `notification_events` (`namespace`,`created_at`);--> statement-breakpoint
CREATE TABLE `notification_rules` (
	`id` text PRIMARY KEY NOT NULL,
	`namespace` text NOT NULL,
	`type` text NOT NULL,
	`name` text NOT NULL,
	`disabled` integer NOT NULL,
	`channels` text NOT NULL,
	`features` text NOT NULL,
	`thresholds` text NOT NULL,
	`metadata` text,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	`deleted_at` integer
);
--> statement-breakpoint
CREATE INDEX `notification_rules_ns` ON `notification_rules` (`namespace`);