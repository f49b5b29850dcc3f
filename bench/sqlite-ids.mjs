#!/usr/bin/env node
// Plain SQLite (node:sqlite, file database in WAL mode, SQLite's default page cache) running the
// dedupe log's own statements: what the id shape costs per insert as the log grows, and what the
// lookup of re-sent ids costs from the rows' JSON versus from a JSON array of ids, and what a batch
// with re-sent events costs against an all-new one. No workerd: this
// isolates SQLite from the runtime (an ordered insert: 1.7–2.3 µs here, ~3–4 µs in a Durable Object;
// docs/performance.md).
//
//   npx node bench/sqlite-ids.mjs [--rows 800000]      (Node ≥ 22.5 for node:sqlite: `npx node` uses the project's)
import { rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { DatabaseSync } from "node:sqlite";

const { values: args } = parseArgs({ options: { rows: { type: "string", default: "800000" } } });
const TOTAL = Number(args.rows);
const BATCH = 1000;
const STEP = 100_000;
// The statements of src/customer/event-log.ts and src/customer/schema.ts.
const TABLE = `CREATE TABLE events (source TEXT NOT NULL, id TEXT NOT NULL, time INTEGER NOT NULL, type TEXT NOT NULL,
  data TEXT, ingested_at INTEGER NOT NULL, PRIMARY KEY (source, id)) WITHOUT ROWID`;
const INSERT = `INSERT INTO events (source, id, time, type, data, ingested_at)
  SELECT value->>0, value->>1, value->>2, value->>3, value->>4, ? FROM jsonb_each(jsonb(?)) WHERE true
  ON CONFLICT (source, id) DO NOTHING`;
const BY_ROWS = "SELECT key AS i FROM jsonb_each(jsonb(?)) WHERE EXISTS (SELECT 1 FROM events WHERE source = value->>0 AND id = value->>1)";
const BY_IDS = "SELECT key AS i FROM jsonb_each(jsonb(?)) WHERE EXISTS (SELECT 1 FROM events WHERE source = ? AND id = value)";

function open(name) {
  const file = path.join(tmpdir(), `edgemeter-sqlite-ids-${process.pid}-${name}.db`);
  for (const f of [file, `${file}-wal`, `${file}-shm`]) rmSync(f, { force: true });
  const db = new DatabaseSync(file);
  db.exec("PRAGMA journal_mode = WAL");
  db.exec(TABLE);
  return { db, drop: () => (db.close(), [file, `${file}-wal`, `${file}-shm`].forEach((f) => rmSync(f, { force: true }))) };
}

const row = (id, i) => ["bench", id, 1_790_000_000_000 + i, "bench.prompt", { tokens: 1 + (i % 100), model: `m${i % 3}` }, i];

/** µs per inserted event, per STEP events stored, for one way of making ids. */
function inserts(name, idOf) {
  const { db, drop } = open(name);
  const insert = db.prepare(INSERT);
  const perStep = [];
  let n = 0;
  while (n < TOTAL) {
    let spent = 0;
    for (const end = n + STEP; n < end; n += BATCH) {
      const json = JSON.stringify(Array.from({ length: BATCH }, (_, i) => row(idOf(n + i), i)));
      db.exec("BEGIN");
      const t = performance.now();
      insert.run(Date.now(), json);
      spent += performance.now() - t;
      db.exec("COMMIT");
    }
    perStep.push(Math.round((spent * 1000 * 100) / STEP) / 100);
  }
  drop();
  return perStep;
}

/** ms per 1,000-event batch (20% re-sent) to find the stored ones: from the rows, or from the ids. */
function lookups() {
  const { db, drop } = open("lookup");
  const insert = db.prepare(INSERT);
  const id = (k) => `t-${String(k).padStart(10, "0")}`;
  for (let k = 0; k < 300_000; k += BATCH) insert.run(1, JSON.stringify(Array.from({ length: BATCH }, (_, i) => row(id(k + i), i))));
  const batches = Array.from({ length: 100 }, (_, b) =>
    Array.from({ length: BATCH }, (_, i) => row(i % 5 === 0 ? id(Math.floor(Math.random() * 300_000)) : id(300_000 + b * BATCH + i), i)),
  );
  const time = (fn) => {
    const t = performance.now();
    for (const b of batches) fn(b);
    return Math.round(((performance.now() - t) / batches.length) * 1000) / 1000;
  };
  const byRows = db.prepare(BY_ROWS);
  const byIds = db.prepare(BY_IDS);
  const out = { fromRowsMs: [], fromIdsMs: [] };
  for (let rep = 0; rep < 3; rep++) {
    out.fromRowsMs.push(time((b) => byRows.all(JSON.stringify(b))));
    out.fromIdsMs.push(time((b) => byIds.all(JSON.stringify(b.map((r) => r[1])), "bench")));
  }
  drop();
  return out;
}

/**
 * µs per event of a 1,000-event batch: all new, against 20% re-sent (drawn from the last 160,000 stored,
 * as `npm run bench` does) found by the lookup by ids and then inserted, with the INSERT given every
 * row or only those the lookup did not find. Alternating batches, each in its own transaction.
 */
function mixed() {
  const { db, drop } = open("mixed");
  const insert = db.prepare(INSERT);
  const insertNew = db.prepare(INSERT.replace("WHERE true", "WHERE key NOT IN (SELECT value FROM json_each(?))"));
  const byIds = db.prepare(BY_IDS);
  const id = (k) => `t-${String(k).padStart(10, "0")}`;
  let next = 0;
  const batch = (resent) => Array.from({ length: BATCH }, (_, i) => (i < resent ? id(next - 1 - Math.floor(Math.random() * Math.min(next, 160_000))) : id(next++)));
  for (let k = 0; k < 400; k++) insert.run(1, JSON.stringify(batch(0).map(row)));
  const spent = { allNew: 0, lookup: 0, insertAll: 0, insertNew: 0 };
  const N = 150;
  const timed = (key, fn) => {
    const t = performance.now();
    const r = fn();
    spent[key] += performance.now() - t;
    return r;
  };
  for (let n = 0; n < N; n++) {
    const fresh = JSON.stringify(batch(0).map(row));
    db.exec("BEGIN");
    timed("allNew", () => insert.run(1, fresh));
    db.exec("COMMIT");
    const ids = batch(200);
    const rows = JSON.stringify(ids.map(row));
    db.exec("BEGIN");
    const seen = timed("lookup", () => byIds.all(JSON.stringify(ids), "bench").map((r) => r.i));
    if (n % 2 === 0) timed("insertAll", () => insert.run(1, rows));
    else timed("insertNew", () => insertNew.run(1, rows, JSON.stringify(seen)));
    db.exec("COMMIT");
  }
  drop();
  const per = (ms, batches) => Math.round((ms * 1000 * 100) / (batches * BATCH)) / 100;
  return { allNew: per(spent.allNew, N), lookup: per(spent.lookup, N), insertAll: per(spent.insertAll, N / 2), insertNew: per(spent.insertNew, N / 2) };
}

const ordered = inserts("ordered", (k) => `t-${String(k).padStart(10, "0")}`);
console.log(`ordered ids: µs per insert at each ${STEP.toLocaleString("en-US")} stored: ${ordered.join(" ")}`);
const random = inserts("uuid4", () => crypto.randomUUID());
console.log(`random UUIDv4: µs per insert at each ${STEP.toLocaleString("en-US")} stored: ${random.join(" ")}`);
const l = lookups();
console.log(`finding 200 re-sent among 1,000 (ms per batch, 3 repeats; serialising the JSON included): from the rows ${l.fromRowsMs.join(" ")} · from the ids ${l.fromIdsMs.join(" ")}`);
const m = mixed();
console.log(`µs per event, 1,000-event batches: all new ${m.allNew} · 20% re-sent: lookup ${m.lookup} + INSERT of every row ${m.insertAll} (${Math.round(((m.lookup + m.insertAll) / m.allNew) * 100) / 100}× all new), or + INSERT of the rows not found ${m.insertNew}`);
