-- Never-flushed subjects are now found through snapshot_subjects' pending index instead of a scan
-- of `subjects` (per namespace-wide query and per cron run). A Durable Object's first stored usage
-- writes its pending state row (seq 0) from now on; subjects registered before get one here. Those
-- created through the subjects API without usage are cleared by the cron's first nudge.
INSERT INTO snapshot_subjects (namespace, subject, seq, as_of, flushed_at, pending)
  SELECT namespace, key, 0, created_at, created_at, 1 FROM subjects WHERE true
  ON CONFLICT (namespace, subject) DO NOTHING;
