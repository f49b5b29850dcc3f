// One chaos producer (forked by scripts/chaos.mjs): sends CloudEvents like a real at-least-once
// client — random batch sizes and order, late events, resends of acknowledged batches, a few
// unmeterable events and whole invalid batches — and retries every request until it is answered,
// however often the gateway is killed meanwhile. It reports every event it generated, with the fate
// the gateway must give it, so the parent can build the oracle without asking the gateway anything.
//
// Protocol: the parent sends {type: "start", ...config}, later {type: "stop"}; the producer finishes
// the request in flight (retrying until answered), sends {type: "report", ...} and exits.
import { rng } from "./random.mjs";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
/** Late events land around these offsets before the run started (± 15 min): few 15-minute windows, so D1 stays small. */
const LATE_OFFSETS = [1 * HOUR, 5 * HOUR, 26 * HOUR, 3 * DAY, 9 * DAY];
const MODELS = ["m0", "m1", "m2"];
/** How a request is retried: like a client with capped exponential backoff and jitter. */
const BACKOFF_MS = { first: 100, max: 2_000 };
const REQUEST_TIMEOUT_MS = 30_000;

let stopping = false;
let reported = false;
process.on("message", (msg) => {
  if (msg?.type === "start") run(msg).catch((err) => fatal(err));
  if (msg?.type === "stop") stopping = true;
});
// The parent is gone (crashed or killed): nothing left to report to.
process.on("disconnect", () => reported || process.exit(2));

function fatal(err) {
  process.send?.({ type: "fatal", message: String(err?.stack ?? err) });
  setTimeout(() => process.exit(1), 100);
}

async function run(cfg) {
  const { producer, baseUrl, apiKey, subjects, seed, eventsPerSecond, eventType, otherType, retentionDays, deadline } = cfg;
  const random = rng(seed);
  const int = (lo, hi) => lo + Math.floor(random() * (hi - lo + 1));
  const pick = (list) => list[Math.floor(random() * list.length)];
  const chance = (p) => random() < p;
  const shuffle = (list) => {
    const a = [...list];
    for (let i = a.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [a[i], a[j]] = [a[j], a[i]];
    }
    return a;
  };

  const source = `chaos-p${producer}`;
  const startedAt = Date.now();
  /** Every event generated, by key: the fate the gateway owes it. */
  const ledger = [];
  /** Event times already used per subject: LATEST needs distinct times (see scripts/chaos.mjs). */
  const usedTimes = new Map();
  let seq = 0;

  // Distinct event times per subject across producers: the millisecond ≡ producer (mod 8), and a
  // producer never reuses one of its own.
  function uniqueTime(subject, t) {
    let time = t - (((t % 8) + 8) % 8) + producer;
    const used = usedTimes.get(subject) ?? new Set();
    usedTimes.set(subject, used);
    while (used.has(time)) time += 8;
    used.add(time);
    return time;
  }

  function eventTime(subject) {
    if (chance(0.65)) return uniqueTime(subject, Date.now() - int(1_000, 30 * MINUTE));
    return uniqueTime(subject, startedAt - pick(LATE_OFFSETS) - int(0, 15 * MINUTE));
  }

  /** A new event and its ledger entry. fate: count | store (no meter reads it) | reject (unmeterable or outside the window). */
  function newEvent(batchIsInvalid) {
    const subject = pick(subjects);
    const id = `e${++seq}`;
    const roll = random();
    let fate = "count";
    let type = eventType;
    let time;
    const data = { model: pick(MODELS), user: chance(0.1) ? int(0, 24) : `u${int(0, 24)}`, value: int(-20, 1000) };
    if (roll < 0.02) {
      fate = "reject"; // well-formed but unmeterable: the value a meter needs is missing or not a number
      const how = int(0, 3);
      if (how === 0) delete data.value;
      else if (how === 1) data.value = null;
      else if (how === 2) data.value = "lots";
      else delete data.user; // the UNIQUE_COUNT meter's property
      time = eventTime(subject);
    } else if (roll < 0.025) {
      fate = "reject"; // older than the retention window, or too far in the future
      time = chance(0.5) ? Date.now() - (retentionDays + 5) * DAY : Date.now() + 20 * MINUTE;
    } else if (roll < 0.045) {
      fate = "store"; // a type no meter reads: stored (and deduplicated), counted by nothing
      type = otherType;
      time = eventTime(subject);
    } else {
      if (chance(0.1)) data.value = String(data.value); // numeric strings count as numbers
      time = eventTime(subject);
    }
    const event = { specversion: "1.0", id, source, type, subject, time: new Date(time).toISOString(), data };
    const entry = { subject, source, id, time, type, fate: batchIsInvalid ? "invalid" : fate, data };
    ledger.push(entry);
    return { event, entry };
  }

  /** A batch of new events (1–500, mostly small or large), a few repeated inside it, in random order. */
  function freshBatch(invalid) {
    const size = chance(0.4) ? int(1, 20) : int(21, 500);
    const items = [];
    for (let i = 0; i < size; i++) {
      const it = newEvent(invalid);
      items.push(it);
      if (chance(0.02)) items.push(it); // the same (source, id) twice in one request
    }
    if (invalid) {
      // Break one event so the whole request must be refused (400) and nothing stored.
      const victim = pick(items);
      const broken = { ...victim.event };
      const how = int(0, 4);
      if (how === 0) delete broken.specversion;
      else if (how === 1) broken.id = "";
      else if (how === 2) broken.time = "yesterday at noon";
      else if (how === 3) broken.data = [1, 2, 3];
      else broken.subject = "x".repeat(300);
      items[items.indexOf(victim)] = { event: broken, entry: victim.entry };
    }
    return shuffle(items);
  }

  const stats = { requests: 0, attempts: 0, retries: 0, batches: 0, resentBatches: 0, eventsSent: 0, acknowledged: 0, accepted: 0, duplicates: 0, rejected: 0, invalidAnswered: 0, networkErrors: 0, refused: 0, cut: 0, storedBeforeCut: 0, status5xx: 0, status429: 0 };
  const problems = [];
  /** Keys of events the gateway has acknowledged (2xx) at least once. */
  const acked = new Set();
  let lastAckAt = 0;
  const keyOf = (e) => `${e.source}\u0000${e.id}`;

  /** Sends one request until it is answered (2xx or 4xx); 5xx, 429 and network errors are retried. */
  async function send(items, invalid, label) {
    stats.requests++;
    const body = JSON.stringify(items.map((i) => i.event));
    const freshBefore = new Set(items.filter((i) => !acked.has(keyOf(i.entry))).map((i) => keyOf(i.entry)));
    for (let attempt = 1; ; attempt++) {
      if (Date.now() > deadline) throw new Error(`${label}: not acknowledged before the deadline`);
      stats.attempts++;
      if (attempt > 1) stats.retries++;
      let res;
      let text = "";
      // Tells the parent a request is in flight, so it can aim its kills at one.
      process.send({ type: "busy", busy: true });
      try {
        res = await fetch(`${baseUrl}/api/v1/events`, {
          method: "POST",
          headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/cloudevents-batch+json" },
          body,
          signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
        });
        text = await res.text();
        process.send({ type: "busy", busy: false });
      } catch (err) {
        stats.networkErrors++;
        // Refused: the gateway was down. Anything else: the request was cut mid-flight by a kill.
        if (err?.cause?.code === "ECONNREFUSED") stats.refused++;
        else stats.cut++;
        process.send({ type: "busy", busy: false });
        await backoff(attempt);
        continue;
      }
      if (res.status >= 500 || res.status === 429) {
        if (res.status === 429) stats.status429++;
        else stats.status5xx++;
        const retryAfter = Number(res.headers.get("retry-after"));
        await backoff(attempt, Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter * 1000 : 0);
        continue;
      }
      if (invalid) {
        if (res.status === 400) stats.invalidAnswered++;
        else problems.push(`${label}: an invalid batch was answered ${res.status} instead of 400: ${text.slice(0, 300)}`);
        return;
      }
      if (res.status !== 202) {
        problems.push(`${label}: answered ${res.status}: ${text.slice(0, 300)}`);
        return;
      }
      checkReply(items, JSON.parse(text), freshBefore, attempt, label);
      lastAckAt = Date.now();
      stats.acknowledged += items.length;
      for (const i of items) acked.add(keyOf(i.entry));
      return;
    }
  }

  /**
   * What a 202 must say: every event is accepted, a duplicate or rejected; exactly the unmeterable ones
   * (and repeats of them in the request) are rejected; and on a first attempt, exactly the events never
   * acknowledged before are accepted (a retry may find some already stored by the attempt that was cut).
   */
  function checkReply(items, reply, freshBefore, attempt, label) {
    stats.accepted += reply.accepted;
    stats.duplicates += reply.duplicates;
    stats.rejected += reply.rejected.length;
    const expectRejected = items.flatMap((it, index) => (it.entry.fate === "reject" ? [index] : []));
    const gotRejected = reply.rejected.map((r) => r.index).sort((a, b) => a - b);
    if (JSON.stringify(expectRejected) !== JSON.stringify(gotRejected)) {
      problems.push(`${label}: rejected indexes ${JSON.stringify(gotRejected)}, expected ${JSON.stringify(expectRejected)}`);
    }
    if (reply.accepted + reply.duplicates + reply.rejected.length !== items.length) {
      problems.push(`${label}: accepted ${reply.accepted} + duplicates ${reply.duplicates} + rejected ${reply.rejected.length} ≠ ${items.length} events`);
    }
    const storable = new Set(items.filter((i) => i.entry.fate !== "reject" && freshBefore.has(keyOf(i.entry))).map((i) => keyOf(i.entry)));
    // A retry that finds new events already stored: the attempt that was cut had committed them.
    if (attempt > 1 && reply.accepted < storable.size) stats.storedBeforeCut++;
    if (attempt === 1 ? reply.accepted !== storable.size : reply.accepted > storable.size) {
      problems.push(`${label} (attempt ${attempt}): accepted ${reply.accepted}, expected ${attempt === 1 ? "" : "at most "}${storable.size}`);
    }
  }

  async function backoff(attempt, atLeast = 0) {
    const ms = Math.min(BACKOFF_MS.max, BACKOFF_MS.first * 2 ** (attempt - 1));
    await sleep(Math.max(atLeast, ms / 2 + random() * (ms / 2)));
  }

  /** Batches acknowledged once and due to be sent again (at-least-once delivery), each after a few more requests. */
  const resends = [];
  let paceFrom = startedAt;
  let n = 0;
  let fresh = 0;
  while (!stopping) {
    n++;
    const due = resends.findIndex((r) => r.after <= n);
    let items;
    let invalid = false;
    let label;
    if (due >= 0) {
      const [r] = resends.splice(due, 1);
      const how = random();
      // As sent before, in another order, or mixed into a new batch.
      if (how < 0.5) items = r.items;
      else if (how < 0.75 || r.invalid) items = shuffle(r.items);
      else items = shuffle([...r.items, ...freshBatch(false)]);
      invalid = r.invalid;
      label = `p${producer} request ${n} (resend of ${r.label})`;
      stats.resentBatches++;
    } else {
      // ~4% of new requests are invalid, and each producer's third one is, so every run has some.
      invalid = ++fresh === 3 || chance(0.04);
      items = freshBatch(invalid);
      label = `p${producer} request ${n}`;
    }
    stats.batches++;
    stats.eventsSent += items.length;
    await send(items, invalid, label);
    if (due < 0 && chance(0.3)) resends.push({ items, invalid, label, after: n + int(1, 4) });
    // Pace to the configured rate of new events; after an outage, catch up at most a second's worth.
    const ahead = (ledger.length / eventsPerSecond) * 1000 - (Date.now() - paceFrom);
    if (ahead > 0) await sleep(Math.min(ahead, 1_000));
    else if (ahead < -1_000) paceFrom += -ahead - 1_000;
  }
  reported = true;
  process.send({ type: "report", producer, source, stats, problems, lastAckAt, ledger }, () => process.exit(0));
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
