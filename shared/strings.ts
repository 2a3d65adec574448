/** More characters than any string holds (V8's limit is 2^29 - 24), and a small integer. */
const WHOLE_STRING = 0x3fffffff;

/**
 * Numbers distinct strings (0, 1, 2, … in order of first sight). Open addressing with the hashes kept in a
 * typed array: a probe compares two strings only when their hashes agree. A Map compares the candidate keys
 * themselves, and with 100,000 strings scattered over a heap of parsed JSON, every such look is a cache miss.
 */
export class StringTable {
  /**
   * Two numbers per slot, side by side so that a probe reads one cache line: the hash, and the ordinal + 1
   * (0: an empty slot, so that a new table needs no filling).
   */
  private entries: Int32Array;
  /** The number of slots - 1 (a power of two - 1). */
  private mask: number;
  readonly keys: string[] = [];

  /**
   * @param tail hash only the last `tail` characters (keys such as ARNs share a long prefix and differ at
   *   the end); equality is always checked on the whole string. The default, longer than any string, is a
   *   small integer rather than Infinity so that every table stores `tail` alike (see keepShapes): one
   *   representation, one shape.
   * @param copies keep a compact copy of each distinct string (see compactCopy) instead of the string given:
   *   for strings that are few next to their sightings and read again after (vulnerability ids).
   */
  constructor(
    expected: number,
    private readonly tail = WHOLE_STRING,
    private readonly copies = false,
  ) {
    let capacity = 16;
    while (capacity < expected * 2) capacity *= 2;
    this.entries = new Int32Array(capacity * 2);
    this.mask = capacity - 1;
  }

  get size(): number {
    return this.keys.length;
  }

  /** The number of `s`, given it if it is new. */
  intern(s: string): number {
    const h = this.hash(s);
    const entries = this.entries;
    const mask = this.mask;
    for (let slot = h & mask; ; slot = (slot + 1) & mask) {
      const at = slot << 1;
      const o = entries[at + 1]! - 1;
      if (o === -1) return this.add(s, h, at);
      if (entries[at] === h && this.keys[o] === s) return o;
    }
  }

  private add(s: string, h: number, at: number): number {
    const ordinal = this.keys.length;
    this.entries[at] = h;
    this.entries[at + 1] = ordinal + 1;
    this.keys.push(this.copies ? compactCopy(s) : s);
    if (ordinal * 2 >= this.mask) this.rehash();
    return ordinal;
  }

  private hash(s: string): number {
    // FNV-1a over the characters (the tail of long keys), seeded with the length.
    let h = 0x811c9dc5 ^ s.length;
    const from = s.length > this.tail ? s.length - this.tail : 0;
    for (let j = from; j < s.length; j++) {
      h ^= s.charCodeAt(j);
      h = Math.imul(h, 0x01000193);
    }
    return h;
  }

  private rehash(): void {
    const capacity = (this.mask + 1) * 2;
    const entries = new Int32Array(capacity * 2);
    const mask = capacity - 1;
    const old = this.entries;
    for (let at = 0; at < old.length; at += 2) {
      if (old[at + 1] === 0) continue;
      let slot = old[at]! & mask;
      while (entries[(slot << 1) + 1] !== 0) slot = (slot + 1) & mask;
      entries[slot << 1] = old[at]!;
      entries[(slot << 1) + 1] = old[at + 1]!;
    }
    this.entries = entries;
    this.mask = mask;
  }
}

/** Longer strings are kept as given: copying them would cost more than reading them scattered. */
const MAX_COPY = 64;
const copyCodes: number[] = [];

/**
 * A fresh copy of `s`. V8 lays out fresh strings one after the other, so the copies of a document's
 * distinct vulnerability ids sit together in a few hundred kilobytes, while the originals lie scattered
 * over the heap of the parsed JSON (one per finding record, megabytes apart): every later read of an id
 * (each sighting compares with it; the evaluator hashes, matches and sorts the ids) would be a cache miss.
 */
function compactCopy(s: string): string {
  if (s.length > MAX_COPY) return s;
  copyCodes.length = s.length;
  for (let j = 0; j < s.length; j++) copyCodes[j] = s.charCodeAt(j);
  return String.fromCharCode.apply(null, copyCodes);
}

/**
 * Keeps one instance of each of a module's classes alive for the life of the process, so that their
 * shapes survive garbage collection. V8 keeps an object shape (hidden class) only while some object has
 * it, and discards the optimised code specialised on a shape when the shape is collected. The tables and
 * helpers of one decision do not outlive it, so without a live instance of each, every major GC between
 * two decisions would send the reader's and the evaluator's loops back to the interpreter, and the next
 * decision would run at a fraction of its speed. (A module-level constant would not do: a variable that no
 * function uses does not outlive the module's evaluation.)
 */
export function keepShapes(...instances: object[]): void {
  shapes.push(...instances);
}

const shapes: object[] = [];

keepShapes(new StringTable(1));
