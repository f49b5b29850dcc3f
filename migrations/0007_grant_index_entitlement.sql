ALTER TABLE `grant_index` ADD `entitlement_id` text;--> statement-breakpoint
CREATE INDEX `grant_index_ns_created` ON `grant_index` (`namespace`,`created_at`);