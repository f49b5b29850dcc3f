#!/usr/bin/env node
// What a storage commit's sync costs on this machine's disk: one file whose blocks are written over
// (one subject's Durable Object, whose write-ahead log is checkpointed and rewritten in place) against
// a file that grows, and against commits spread over 1,000 files (1,000 subjects' databases; README
// "Performance", 1,000 subjects). Each commit is one 24 KB write (six 4 KB pages, about what a
// 100-event request writes) followed by fdatasync, as SQLite does at a write-ahead log commit.
//
//   node bench/fsync.mjs [--commits 3000] [--dir <a folder on the disk to test; default: the temp dir>]
import { closeSync, fdatasyncSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";

const { values: args } = parseArgs({ options: { commits: { type: "string", default: "3000" }, dir: { type: "string", default: tmpdir() } } });
const commits = Number(args.commits);
if (!(commits > 0)) throw new Error("--commits must be a positive number");

const PAGE = 4096;
const LOG_PAGES = 1000; // SQLite's default checkpoint threshold: a log wraps after this many pages
const commit = Buffer.alloc(6 * PAGE, 7);
const dir = mkdtempSync(path.join(args.dir, "edgemeter-fsync-"));

/** ms per write + fdatasync, spread round-robin over `files` files, appended or written over. */
function measure(files, overwrite) {
  const fds = Array.from({ length: files }, (_, i) => {
    const fd = openSync(path.join(dir, `${files}-${overwrite}-${i}`), "w+");
    if (overwrite) {
      writeSync(fd, Buffer.alloc(LOG_PAGES * PAGE));
      fdatasyncSync(fd);
    }
    return fd;
  });
  const at = new Array(files).fill(0);
  const started = performance.now();
  for (let i = 0; i < commits; i++) {
    const f = i % files;
    writeSync(fds[f], commit, 0, commit.length, at[f]);
    at[f] += commit.length;
    if (overwrite && at[f] + commit.length > LOG_PAGES * PAGE) at[f] = 0;
    fdatasyncSync(fds[f]);
  }
  const ms = (performance.now() - started) / commits;
  for (const fd of fds) closeSync(fd);
  return ms;
}

try {
  console.log(`${commits} commits of ${commit.length / 1024} KB + fdatasync in ${args.dir}\n`);
  for (const [label, files, overwrite] of [
    ["1 file, appended (a log that grows)", 1, false],
    ["1 file, written over (a log that wraps)", 1, true],
    ["1,000 files, appended", 1000, false],
    ["1,000 files, written over", 1000, true],
  ]) {
    console.log(`${label.padEnd(42)} ${measure(files, overwrite).toFixed(3)} ms per commit`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
