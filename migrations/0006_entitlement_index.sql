CREATE TABLE `entitlement_index` (
	`id` text PRIMARY KEY NOT NULL,
	`namespace` text NOT NULL,
	`subject` text NOT NULL,
	`feature_id` text NOT NULL,
	`feature_key` text NOT NULL,
	`type` text NOT NULL,
	`created_at` integer NOT NULL,
	`deleted_at` integer
);
--> statement-breakpoint
CREATE INDEX `entitlement_index_ns` ON `entitlement_index` (`namespace`,`created_at`);