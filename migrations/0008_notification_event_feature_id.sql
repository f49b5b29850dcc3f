ALTER TABLE `notification_events` ADD `feature_id` text;--> statement-breakpoint
-- Rows mirrored before this column existed: every payload names its feature (data.feature.id).
UPDATE `notification_events` SET `feature_id` = json_extract(`payload`, '$.data.feature.id') WHERE `feature_id` IS NULL;