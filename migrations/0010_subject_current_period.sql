ALTER TABLE `subjects` ADD `current_period_start` integer;--> statement-breakpoint
ALTER TABLE `subjects` ADD `current_period_end` integer;