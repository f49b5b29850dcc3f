/**
 * Event ids this Durable Object instance has seen committed to its dedupe log, so that a re-sent
 * event can be recognised without a lookup in the log's index. A re-sent id is usually on a page of
 * that index no recent write touched, and reading it costs several times what storing a new event
 * does (README "Performance", duplicates).
 *
 * Exact, or it would lose usage: every id held here is stored in `events`. Ids are added only after
 * the transaction that stored them committed (a rollback adds nothing), the whole memory is dropped
 * when the log is pruned, and a new instance starts empty. An id not held here may still be stored:
 * the log decides those, as before.
 *
 * Bounded per isolate, not per object: Durable Objects of one class may share an isolate (and its
 * 128 MB), so every instance's ids take turns in one ring of `capacity` slots, oldest out first.
 * ~75 bytes per id of 20 characters (V8, measured with `--expose-gc`): ~10 MB at the default.
 */
export const RECENT_IDS_CAPACITY = 1 << 17;

class Ring {
  readonly owners: (Set<string> | undefined)[];
  readonly ids: string[];
  next = 0;
  constructor(readonly capacity: number) {
    this.owners = new Array(capacity);
    this.ids = new Array(capacity);
  }

  push(owner: Set<string>, id: string): void {
    const slot = this.next;
    this.owners[slot]?.delete(this.ids[slot]!);
    this.owners[slot] = owner;
    this.ids[slot] = id;
    this.next = slot + 1 === this.capacity ? 0 : slot + 1;
  }
}

let shared: Ring | undefined;

export class RecentIds {
  private bySource = new Map<string, Set<string>>();
  private readonly ring: Ring;

  constructor(capacity = RECENT_IDS_CAPACITY) {
    this.ring = capacity === RECENT_IDS_CAPACITY ? (shared ??= new Ring(capacity)) : new Ring(capacity);
  }

  /** Positions in `ids` of the ids known to be stored under `source`. */
  knownPositions(source: string, ids: readonly string[]): number[] {
    const set = this.bySource.get(source);
    const known: number[] = [];
    if (set === undefined || set.size === 0) return known;
    for (let i = 0; i < ids.length; i++) if (set.has(ids[i]!)) known.push(i);
    return known;
  }

  /** Call only once the transaction that stored these ids has committed. */
  add(source: string, ids: readonly string[]): void {
    let set = this.bySource.get(source);
    if (set === undefined) this.bySource.set(source, (set = new Set()));
    for (const id of ids) {
      const size = set.size;
      set.add(id);
      if (set.size !== size) this.ring.push(set, id);
    }
  }

  /** After any delete from the dedupe log. */
  clear(): void {
    // The ring's slots still name the old sets; evicting from those touches nothing live.
    this.bySource = new Map();
  }
}
