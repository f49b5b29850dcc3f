/**
 * Which ids of a batch this Durable Object may have stored lately: a Bloom filter in two generations
 * (the newer one fills up, then replaces the older one), so it remembers the last 2^17–2^18 ids.
 *
 * Only ever a guess that picks which ids of a mixed batch are worth looking up (batch.ts
 * ingestPlanned): the batch is counted only after SQL confirmed the guess — the lookup found the
 * guessed ids stored, and the INSERT stored exactly the others. A false positive costs one lookup; an
 * id stored before the filter saw it makes the INSERT store one row fewer than expected, and the batch
 * is redone with every id looked up. Exactly-once never depends on it.
 *
 * 2 × 2^20 bits (256 KB), 3 bit positions per id by double hashing; ≈3% false positives when a
 * generation is full. Made on a Durable Object's first large batch with re-sent events (batch.ts), so
 * objects that never see one pay nothing, and lost with the instance (it starts empty again: a guess,
 * not state).
 */
const BITS = 1 << 20;
const MASK = BITS - 1;
const PER_GENERATION = 1 << 17;
const PROBES = 3;

export class RecentIds {
  private newer = new Uint32Array(BITS >>> 5);
  private older = new Uint32Array(BITS >>> 5);
  private held = 0;

  /** Two 32-bit hashes per id (FNV-1a, then a second mix), in `out` at 2i and 2i + 1. */
  static hashes(source: string, ids: readonly string[]): Uint32Array {
    const out = new Uint32Array(ids.length * 2);
    let seed = 0x811c9dc5;
    for (let i = 0; i < source.length; i++) seed = Math.imul(seed ^ source.charCodeAt(i), 0x01000193);
    seed = Math.imul(seed ^ 0xffff, 0x01000193); // a separator: ("ab", "c") ≠ ("a", "bc")
    for (let k = 0; k < ids.length; k++) {
      const id = ids[k]!;
      let h = seed;
      for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
      let g = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
      g = Math.imul(g ^ (g >>> 13), 0xc2b2ae35);
      out[2 * k] = h >>> 0;
      out[2 * k + 1] = (g ^ (g >>> 16)) | 1;
    }
    return out;
  }

  /** Whether id `k` of `hashes` may have been added (false: surely not, as far as the filter remembers). */
  mayHave(hashes: Uint32Array, k: number): boolean {
    return this.has(this.newer, hashes, k) || this.has(this.older, hashes, k);
  }

  add(hashes: Uint32Array): void {
    for (let k = 0; k < hashes.length >>> 1; k++) {
      if (this.held === PER_GENERATION) {
        [this.older, this.newer] = [this.newer, this.older];
        this.newer.fill(0);
        this.held = 0;
      }
      const h = hashes[2 * k]!;
      const g = hashes[2 * k + 1]!;
      for (let p = 0; p < PROBES; p++) {
        const bit = (h + Math.imul(p, g)) & MASK;
        this.newer[bit >>> 5]! |= 1 << (bit & 31);
      }
      this.held++;
    }
  }

  private has(bits: Uint32Array, hashes: Uint32Array, k: number): boolean {
    const h = hashes[2 * k]!;
    const g = hashes[2 * k + 1]!;
    for (let p = 0; p < PROBES; p++) {
      const bit = (h + Math.imul(p, g)) & MASK;
      if ((bits[bit >>> 5]! & (1 << (bit & 31))) === 0) return false;
    }
    return true;
  }
}
