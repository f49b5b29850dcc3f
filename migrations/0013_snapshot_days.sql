CREATE TABLE `usage_snapshot_days` (
	`namespace` text NOT NULL,
	`meter_id` text NOT NULL,
	`day_start` integer NOT NULL,
	`subject` text NOT NULL,
	`group_key` text NOT NULL,
	`sum` real NOT NULL,
	`count` integer NOT NULL,
	`min` real,
	`max` real,
	`latest_at` integer NOT NULL,
	`latest` real,
	PRIMARY KEY(`namespace`, `meter_id`, `day_start`, `subject`, `group_key`)
);
--> statement-breakpoint
-- Every 15-minute row folded into its UTC day (LATEST: the value of the row with the latest event
-- time). Running this statement again refreshes every day row (README, Deploy: after a roll-out).
INSERT INTO usage_snapshot_days (namespace, meter_id, day_start, subject, group_key, sum, count, min, max, latest_at, latest)
  SELECT namespace, meter_id, day_start, subject, group_key, sum(sum), sum(count), min(min), max(max), max(latest_at),
    max(CASE WHEN rn = 1 THEN latest END)
  FROM (SELECT *, window_start - ((window_start % 86400000) + 86400000) % 86400000 AS day_start,
          row_number() OVER (PARTITION BY namespace, meter_id, window_start - ((window_start % 86400000) + 86400000) % 86400000, subject, group_key
            ORDER BY latest_at DESC) AS rn
        FROM usage_snapshots)
  WHERE true
  GROUP BY namespace, meter_id, day_start, subject, group_key
  ON CONFLICT (namespace, meter_id, day_start, subject, group_key) DO UPDATE SET
    sum = excluded.sum, count = excluded.count, min = excluded.min, max = excluded.max,
    latest_at = excluded.latest_at, latest = excluded.latest;
--> statement-breakpoint
-- Day rows none of whose 15-minute rows are left (a reset or meter deletion flushed by code from
-- before day rows): run again after a roll-out, the statement above rebuilds only days that have rows.
DELETE FROM usage_snapshot_days WHERE (namespace, meter_id, day_start, subject, group_key) IN (
  SELECT namespace, meter_id, day_start, subject, group_key FROM usage_snapshot_days
  EXCEPT
  SELECT namespace, meter_id, window_start - ((window_start % 86400000) + 86400000) % 86400000, subject, group_key FROM usage_snapshots);
