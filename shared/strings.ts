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
    return tailHash(s, this.tail);
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

/** FNV-1a over the last `tail` characters of `s` (all of them when it is shorter), seeded with its length. */
export function tailHash(s: string, tail: number): number {
  let h = 0x811c9dc5 ^ s.length;
  for (let j = s.length > tail ? s.length - tail : 0; j < s.length; j++) {
    h ^= s.charCodeAt(j);
    h = Math.imul(h, 0x01000193);
  }
  return h;
}

/**
 * Numbers the first `n` strings in order of first sight, as a StringTable would (`ordinals[i]` is the
 * number of `stringAt(i)`, `distinct` the strings by number, undefined when all differ: string i is number
 * i), given `hashes[i]`, a hash of `stringAt(i)` (tailHash: equal strings must hash alike). Strings are
 * read only where hashes are equal, and to list `distinct` when there are copies.
 *
 * Built for keys that are nearly always all different (the finding ARNs of an export): rather than probe
 * a hash table of a few megabytes once per string (a cache miss each), it sorts the hashes in a few
 * sequential passes and compares only the strings whose hashes are equal. When all differ, string i is
 * number i and no string is read beyond those compares. Copies are found from the sort too, but then each
 * first string is read once more to list `distinct` (one read per row, and an array as long as the rows).
 */
export function numberStrings(
  stringAt: (i: number) => string,
  hashes: Int32Array,
  n: number,
): { ordinals: Int32Array; distinct: readonly string[] | undefined } {
  const earlier = earlierCopies(stringAt, hashes, n);
  const ordinals = new Int32Array(n);
  if (earlier === ALL_DISTINCT) {
    for (let i = 0; i < n; i++) ordinals[i] = i;
    return { ordinals, distinct: undefined };
  }
  const distinct: string[] = [];
  for (let i = 0; i < n; i++) {
    const e = earlier[i]!;
    if (e === 0) {
      ordinals[i] = distinct.length;
      distinct.push(stringAt(i));
    } else ordinals[i] = ordinals[e - 1]!;
  }
  return { ordinals, distinct };
}

/** Radix digits of the hash sort: 11 bits, three passes for 32 bits. */
const DIGIT_BITS = 11;
const DIGITS = 1 << DIGIT_BITS;
/**
 * Strings sharing one hash beyond this many are told apart by a Map instead of each with each, which would
 * cost the square of their number: many copies of one key, or many distinct keys whose tails collide
 * (tailHash is 32 bits of FNV-1a, easily made to collide). The Map hashes whole strings its own way, so
 * either costs one look per string. Below it, a few compares cost less than making a Map.
 */
export const MAX_SAME_HASH = 8;
/** earlierCopies of strings that all differ: no array to allocate. */
const ALL_DISTINCT = new Int32Array(0);

/**
 * For each of the first `n` strings, 1 + the index of the first equal string, 0 where it is that first one;
 * ALL_DISTINCT when all differ.
 */
function earlierCopies(stringAt: (i: number) => string, hashes: Int32Array, n: number): Int32Array {
  // Least significant digit first radix sort of (hash, index) pairs.
  let h = hashes.slice(0, n);
  let at = new Int32Array(n);
  for (let i = 0; i < n; i++) at[i] = i;
  let h2 = new Int32Array(n);
  let at2 = new Int32Array(n);
  const starts = new Int32Array(DIGITS);
  for (let shift = 0; shift < 32; shift += DIGIT_BITS) {
    starts.fill(0);
    for (let k = 0; k < n; k++) starts[(h[k]! >>> shift) & (DIGITS - 1)]!++;
    for (let d = 0, sum = 0; d < DIGITS; d++) {
      const count = starts[d]!;
      starts[d] = sum;
      sum += count;
    }
    for (let k = 0; k < n; k++) {
      const to = starts[(h[k]! >>> shift) & (DIGITS - 1)]!++;
      h2[to] = h[k]!;
      at2[to] = at[k]!;
    }
    [h, h2] = [h2, h];
    [at, at2] = [at2, at];
  }
  // Equal hashes are now side by side, and (the sort being stable) their indices ascending: the first of
  // equal strings in a run is the first seen.
  let copies: Int32Array | undefined;
  for (let start = 0; start < n; ) {
    let end = start + 1;
    while (end < n && h[end] === h[start]) end++;
    if (end - start > MAX_SAME_HASH) {
      const first = new Map<string, number>();
      for (let a = start; a < end; a++) {
        const i = at[a]!;
        const s = stringAt(i);
        const f = first.get(s);
        if (f === undefined) first.set(s, i);
        else {
          copies ??= new Int32Array(n);
          copies[i] = f + 1;
        }
      }
      start = end;
      continue;
    }
    for (let a = start; a < end - 1; a++) {
      const i = at[a]!;
      // A copy's later copies were found with the first of them.
      if (copies !== undefined && copies[i] !== 0) continue;
      for (let b = a + 1; b < end; b++) {
        const j = at[b]!;
        if (stringAt(j) === stringAt(i)) {
          copies ??= new Int32Array(n);
          copies[j] = i + 1;
        }
      }
    }
    start = end;
  }
  return copies ?? ALL_DISTINCT;
}

/** Longer strings are kept as given: copying them would cost more than reading them scattered. */
const MAX_COPY = 64;
/** Scratch character codes, one array per length (`apply` takes all of an array). */
const copyCodes: number[][] = [];

/**
 * A fresh copy of `s`. V8 lays out fresh strings one after the other, so the copies of a document's
 * distinct vulnerability ids sit together in a few hundred kilobytes, while the originals lie scattered
 * over the heap of the parsed JSON (one per finding record, megabytes apart): every later read of an id
 * (each sighting compares with it; the evaluator hashes, matches and sorts the ids) would be a cache miss.
 */
function compactCopy(s: string): string {
  if (s.length > MAX_COPY) return s;
  let codes = copyCodes[s.length];
  if (codes === undefined) {
    codes = new Array<number>(s.length).fill(0);
    copyCodes[s.length] = codes;
  }
  for (let j = 0; j < s.length; j++) codes[j] = s.charCodeAt(j);
  return String.fromCharCode.apply(null, codes);
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
