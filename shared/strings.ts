/**
 * Numbers distinct strings (0, 1, 2, … in order of first sight). Open addressing with the hashes kept in a
 * typed array: a probe compares two strings only when their hashes agree. A Map compares the candidate keys
 * themselves, and with 100,000 strings scattered over a heap of parsed JSON, every such look is a cache miss.
 */
export class StringTable {
  private hashes: Int32Array;
  private slots: Int32Array;
  private mask: number;
  readonly keys: string[] = [];

  /**
   * @param tail hash only the last `tail` characters (keys such as ARNs share a long prefix and differ at
   *   the end); equality is always checked on the whole string.
   */
  constructor(
    expected: number,
    private readonly tail = Number.POSITIVE_INFINITY,
  ) {
    let capacity = 16;
    while (capacity < expected * 2) capacity *= 2;
    this.hashes = new Int32Array(capacity);
    this.slots = new Int32Array(capacity).fill(-1);
    this.mask = capacity - 1;
  }

  get size(): number {
    return this.keys.length;
  }

  /** The number of `s`, given it if it is new. */
  intern(s: string): number {
    const h = this.hash(s);
    let slot = h & this.mask;
    for (;;) {
      const o = this.slots[slot]!;
      if (o === -1) {
        const ordinal = this.keys.length;
        this.slots[slot] = ordinal;
        this.hashes[slot] = h;
        this.keys.push(s);
        if (ordinal * 2 >= this.mask) this.rehash();
        return ordinal;
      }
      if (this.hashes[slot] === h && this.keys[o] === s) return o;
      slot = (slot + 1) & this.mask;
    }
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
    const hashes = new Int32Array(capacity);
    const slots = new Int32Array(capacity).fill(-1);
    const mask = capacity - 1;
    for (let old = 0; old <= this.mask; old++) {
      const o = this.slots[old]!;
      if (o === -1) continue;
      let slot = this.hashes[old]! & mask;
      while (slots[slot] !== -1) slot = (slot + 1) & mask;
      slots[slot] = o;
      hashes[slot] = this.hashes[old]!;
    }
    this.hashes = hashes;
    this.slots = slots;
    this.mask = mask;
  }
}
