ALTER TABLE `grant_index` ADD `updated_at` integer;--> statement-breakpoint
-- Rows indexed before this column existed: as if never voided since. A grant voided before it keeps
-- this value until a namespace list reads it from its object and repairs the row.
UPDATE `grant_index` SET `updated_at` = `created_at` WHERE `updated_at` IS NULL;--> statement-breakpoint
CREATE INDEX `grant_index_ns_updated` ON `grant_index` (`namespace`,`updated_at`);--> statement-breakpoint
ALTER TABLE `subjects` ADD `current_period_start` integer;--> statement-breakpoint
ALTER TABLE `subjects` ADD `current_period_end` integer;
