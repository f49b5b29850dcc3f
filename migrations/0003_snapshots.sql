CREATE TABLE `snapshot_subjects` (
	`namespace` text NOT NULL,
	`subject` text NOT NULL,
	`seq` integer NOT NULL,
	`as_of` integer NOT NULL,
	`flushed_at` integer NOT NULL,
	`pending` integer NOT NULL,
	PRIMARY KEY(`namespace`, `subject`)
);
--> statement-breakpoint
CREATE INDEX `snapshot_subjects_pending` ON `snapshot_subjects` (`namespace`) WHERE pending = 1;--> statement-breakpoint
CREATE TABLE `usage_snapshot_uniques` (
	`namespace` text NOT NULL,
	`meter_id` text NOT NULL,
	`window_start` integer NOT NULL,
	`subject` text NOT NULL,
	`group_key` text NOT NULL,
	`value` text NOT NULL,
	PRIMARY KEY(`namespace`, `meter_id`, `window_start`, `subject`, `group_key`, `value`)
);
--> statement-breakpoint
CREATE TABLE `usage_snapshots` (
	`namespace` text NOT NULL,
	`meter_id` text NOT NULL,
	`window_start` integer NOT NULL,
	`subject` text NOT NULL,
	`group_key` text NOT NULL,
	`sum` real NOT NULL,
	`count` integer NOT NULL,
	`min` real,
	`max` real,
	`latest_at` integer NOT NULL,
	`latest` real,
	PRIMARY KEY(`namespace`, `meter_id`, `window_start`, `subject`, `group_key`)
);
