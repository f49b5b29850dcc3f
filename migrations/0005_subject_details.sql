ALTER TABLE `subjects` ADD `display_name` text;--> statement-breakpoint
ALTER TABLE `subjects` ADD `metadata` text;--> statement-breakpoint
ALTER TABLE `subjects` ADD `stripe_customer_id` text;--> statement-breakpoint
ALTER TABLE `subjects` ADD `updated_at` integer;