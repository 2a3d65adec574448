import { keepShapes, numberStrings, StringTable, tailHash } from '../strings.js';
import { type Finding, levelBit } from './finding.js';

/** Status column values: one bit each, so `settings.statuses` is tested as a mask. */
export const STATUS_ACTIVE = 1;
export const STATUS_SUPPRESSED = 2;
export const STATUS_CLOSED = 4;

/** Fix column values; 0 is unknown. */
export const FIX_YES = 1;
export const FIX_NO = 2;
export const FIX_PARTIAL = 4;

/** The status bit of a finding status; 0 for anything else. */
export function statusBit(status: unknown): number {
  switch (status) {
    case 'ACTIVE':
      return STATUS_ACTIVE;
    case 'SUPPRESSED':
      return STATUS_SUPPRESSED;
    case 'CLOSED':
      return STATUS_CLOSED;
    default:
      return 0;
  }
}

/** The fix bit of a fix availability; 0 for unknown (and anything else). */
export function fixBit(fix: unknown): number {
  switch (fix) {
    case 'YES':
      return FIX_YES;
    case 'NO':
      return FIX_NO;
    case 'PARTIAL':
      return FIX_PARTIAL;
    default:
      return 0;
  }
}

/**
 * Rebuilds the full Finding of a row from the record it was read from (for reports and messages). It must not
 * call `evaluate`: the evaluator runs it while its scratch rows are in use (see ScratchRows).
 */
export type Materializer = (source: unknown) => Finding;

/**
 * The findings of one decision, column by column. Deciding on 100,000 findings is bound by memory, not by
 * arithmetic: every field read from a parsed JSON finding is a pointer chase into a heap the size of the
 * input. So the reader touches each field the decision needs once, writes it here (numbers unboxed in typed
 * arrays; vulnerability ids and package names numbered by distinct value while they are in cache; keys
 * hashed then, and numbered all at once when the table is built, see numberStrings), and the evaluator runs
 * on these columns without touching a string. The full `Finding` of a row (package versions, title, image)
 * is rebuilt from its source record only when a report or a message shows it.
 *
 * A table read from a document's list keeps that list as its sources, not a copy: the list must not change
 * while the table is in use, since keys (listed on demand, or compared when built) and full findings are
 * read back from its elements.
 */
export class FindingTable {
  /** A table from findings already normalised (tests, other producers). */
  static fromFindings(findings: readonly Finding[]): FindingTable {
    const b = new FindingTableBuilder(findings.length);
    for (const f of findings) b.pushFinding(f);
    return b.build();
  }

  /** One table for several (pages of one export): rows keep their order. */
  static concat(tables: readonly FindingTable[]): FindingTable {
    if (tables.length === 1) return tables[0]!;
    const b = new FindingTableBuilder(tables.reduce((n, t) => n + t.length, 0));
    for (const t of tables) b.pushTable(t);
    return b.build();
  }

  constructor(
    readonly length: number,
    /** Number of the row's de-duplication key (the finding ARN, else vulnerability id + packages + resource). */
    readonly keyOrdinals: Int32Array,
    /** The number of distinct keys. */
    readonly keyCount: number,
    /** Distinct key number o. */
    private readonly keyOf: (o: number) => string,
    /** Number of the row's vulnerability id in `distinctIds`. */
    readonly idOrdinals: Int32Array,
    readonly distinctIds: readonly string[],
    /** `levelBit` of the severity the policy reads. */
    readonly levels: Uint8Array,
    /** `statusBit` of the status; a finding without one is ACTIVE. */
    readonly statuses: Uint8Array,
    /** NaN: no score. */
    readonly scores: Float64Array,
    /** NaN: no EPSS. */
    readonly epss: Float64Array,
    /** 1 yes, 0 no, -1 unknown. */
    readonly exploits: Int8Array,
    /** `fixBit`; 0 unknown. */
    readonly fixes: Uint8Array,
    /** Epoch ms; NaN: unknown. */
    readonly firstObserved: Float64Array,
    /**
     * Row i's vulnerable packages are distinctPackages[packageOrdinals[k]] for k in
     * packageStart[i] .. packageStart[i + 1].
     */
    readonly packageStart: Int32Array,
    readonly packageOrdinals: Int32Array,
    readonly distinctPackages: readonly string[],
    private readonly sources: readonly unknown[],
    private readonly makers: Uint32Array,
    private readonly materializers: readonly Materializer[],
    /** Undefined until a row is materialised: a decision usually materialises none (see the builder). */
    private cache: (Finding | undefined)[] | undefined,
  ) {}

  private keyList: readonly string[] | undefined;

  /** The distinct keys, by number: listed on first use, as deciding needs only their number. */
  get distinctKeys(): readonly string[] {
    this.keyList ??= Array.from({ length: this.keyCount }, (_, o) => this.keyOf(o));
    return this.keyList;
  }

  /** The full Finding of row i. */
  row(i: number): Finding {
    let f = this.cache?.[i];
    if (f === undefined) {
      f = this.materializers[this.makers[i]!]!(this.sources[i]);
      this.cache ??= new Array<Finding | undefined>(this.length);
      this.cache[i] = f;
    }
    return f;
  }

  vulnerabilityId(i: number): string {
    return this.distinctIds[this.idOrdinals[i]!]!;
  }

  /** Every row as a full Finding (tests, small exports; the evaluator never needs this). */
  rows(): Finding[] {
    return Array.from({ length: this.length }, (_, i) => this.row(i));
  }

  /** The record row i was read from, and how to rebuild it (for concatenation). */
  sourceOf(i: number): {
    readonly source: unknown;
    readonly materializer: Materializer;
    readonly cached: Finding | undefined;
  } {
    return {
      source: this.sources[i],
      materializer: this.materializers[this.makers[i]!]!,
      cached: this.cache?.[i],
    };
  }
}

/** Keys such as ARNs share a long prefix and differ at the end: their last characters are hashed. */
const KEY_TAIL = 24;

const FROM_CACHE: Materializer = () => {
  throw new Error('FindingTable: a normalised row has no source to rebuild it from');
};

/**
 * Fills the columns row by row; the readers write the columns directly on their fast path.
 *
 * The per-row arrays of strings and objects are kept few (allocation): a JavaScript array of 100,000 rows is
 * a large object of its own pages, which the system maps afresh for each decision (one page fault per 4 KB:
 * 3.5 ms for such an array, measured alone on the 2-core machine), where typed arrays mostly reuse memory
 * the allocator already holds.
 * So the sources are the document's own list when rows are read from one (see `from`), and the cache of
 * full findings is made only when a row has one.
 */
export class FindingTableBuilder {
  length = 0;
  /**
   * Each row's de-duplication key and its hash, numbered only when the table is built (see
   * numberStrings): keys are nearly always all different. Rows whose key is their source's (see
   * `sourceKey`) leave `keys` empty, and it is made only when some other row has a key.
   */
  private keys: string[] | undefined;
  keyHashes: Int32Array;
  readonly ids: StringTable;
  readonly packages = new StringTable(64);
  /**
   * Package numbers by name, in front of `packages`: most package names are short enough that JSON.parse
   * shares one string per name (V8 internalises short strings), whose hash the string carries, so a Map
   * finds them without reading a character, where the table would hash each name again.
   */
  private readonly packageNumbers = new Map<string, number>();
  idOrdinals: Int32Array;
  levels: Uint8Array;
  statuses: Uint8Array;
  scores: Float64Array;
  epss: Float64Array;
  exploits: Int8Array;
  fixes: Uint8Array;
  firstObserved: Float64Array;
  packageStart: Int32Array;
  packageOrdinals: Int32Array;
  packageCount = 0;
  /** Row i's source record; the list given to the constructor is never written. */
  private sources: unknown[];
  /** Whether `sources` is the list given to the constructor (row i is read from its element i). */
  private readonly givenSources: boolean;
  /**
   * Row i's materializer, by number. As wide as a row count: a read joins one table per page (a materializer
   * each), and an image's findings can take thousands of pages (Inspector pages hold at most 100, often fewer).
   */
  makers: Uint32Array;
  private cache: (Finding | undefined)[] | undefined;
  private readonly materializers: Materializer[] = [FROM_CACHE];
  private readonly makerIds = new Map<Materializer, number>([[FROM_CACHE, 0]]);

  /**
   * @param from the list the rows are read from, one row per element in order (the source of row i is
   *   `from[i]`), to be kept as the sources instead of a copy. It must not change once read, neither while
   *   building nor while the table is in use: `sourceKey` reads the keys back from its elements (build
   *   compares them, the table lists them), and rows are rebuilt from them.
   */
  constructor(
    capacity: number,
    from?: readonly unknown[],
    /** The key of a row written by setSourceKey, from its source record. */
    private readonly sourceKey?: (source: unknown) => string,
  ) {
    const n = Math.max(capacity, 1);
    this.keyHashes = new Int32Array(n);
    // Vulnerability ids are few next to findings, and read again by the evaluator: kept as compact copies.
    // The table starts small and grows with the distinct ids, so that it stays as small (as cache-resident)
    // as they allow.
    this.ids = new StringTable(Math.min(n, 1024), undefined, true);
    this.idOrdinals = new Int32Array(n);
    this.levels = new Uint8Array(n);
    this.statuses = new Uint8Array(n);
    this.scores = new Float64Array(n);
    this.epss = new Float64Array(n);
    this.exploits = new Int8Array(n);
    this.fixes = new Uint8Array(n);
    this.firstObserved = new Float64Array(n);
    this.packageStart = new Int32Array(n + 1);
    this.packageOrdinals = new Int32Array(n * 2);
    // The type says writable; setSource never writes a given list.
    this.sources = (from ?? new Array<unknown>(n)) as unknown[];
    this.givenSources = from !== undefined;
    this.makers = new Uint32Array(n);
  }

  /**
   * Records the source of row i. When the builder was given a list, it is only checked: the source must be
   * element i of that list.
   */
  setSource(i: number, source: unknown): void {
    if (!this.givenSources) this.sources[i] = source;
    else if (this.sources[i] !== source) {
      throw new Error(`FindingTable: row ${i} is not read from element ${i} of its list`);
    }
  }

  private setCached(i: number, f: Finding | undefined): void {
    if (f === undefined && this.cache === undefined) return;
    this.cache ??= new Array<Finding | undefined>(this.levels.length);
    this.cache[i] = f;
  }

  /** The maker id of a materializer, for rows read on the fast path. */
  maker(materializer: Materializer): number {
    let id = this.makerIds.get(materializer);
    if (id === undefined) {
      id = this.materializers.length;
      this.materializers.push(materializer);
      this.makerIds.set(materializer, id);
    }
    return id;
  }

  /** Makes room for one more row and returns its index. */
  next(): number {
    const i = this.length;
    if (i >= this.levels.length) this.grow();
    return i;
  }

  /** Sets the de-duplication key of row i. */
  setKey(i: number, key: string): void {
    this.keys ??= new Array<string>(this.levels.length);
    this.keys[i] = key;
    this.keyHashes[i] = tailHash(key, KEY_TAIL);
  }

  /** Sets the key of row i to `key`, which is `sourceKey` of its source (so it is not stored twice). */
  setSourceKey(i: number, key: string): void {
    this.keyHashes[i] = tailHash(key, KEY_TAIL);
  }

  /** Adds a package name to the row being written. */
  pushPackage(name: string): void {
    if (this.packageCount >= this.packageOrdinals.length) {
      const wider = new Int32Array(this.packageOrdinals.length * 2);
      wider.set(this.packageOrdinals);
      this.packageOrdinals = wider;
    }
    let ordinal = this.packageNumbers.get(name);
    if (ordinal === undefined) {
      ordinal = this.packages.intern(name);
      this.packageNumbers.set(name, ordinal);
    }
    this.packageOrdinals[this.packageCount++] = ordinal;
  }

  pushFinding(f: Finding, source?: unknown, materializer?: Materializer): void {
    const i = this.next();
    this.setKey(i, f.key);
    this.idOrdinals[i] = this.ids.intern(f.vulnerabilityId);
    this.levels[i] = levelBit(f.level);
    this.statuses[i] = statusBit(f.status);
    this.scores[i] = f.score ?? Number.NaN;
    this.epss[i] = f.epss ?? Number.NaN;
    this.exploits[i] = f.exploitAvailable === undefined ? -1 : f.exploitAvailable ? 1 : 0;
    this.fixes[i] = fixBit(f.fixAvailable);
    this.firstObserved[i] = f.firstObservedAt ?? Number.NaN;
    for (const p of f.packages) this.pushPackage(p.name);
    this.setSource(i, source);
    this.makers[i] = materializer ? this.maker(materializer) : 0;
    this.setCached(i, f);
    this.commit(i);
  }

  pushTable(t: FindingTable): void {
    for (let j = 0; j < t.length; j++) {
      const { source, materializer, cached } = t.sourceOf(j);
      const i = this.next();
      this.setKey(i, t.distinctKeys[t.keyOrdinals[j]!]!);
      this.idOrdinals[i] = this.ids.intern(t.vulnerabilityId(j));
      this.levels[i] = t.levels[j]!;
      this.statuses[i] = t.statuses[j]!;
      this.scores[i] = t.scores[j]!;
      this.epss[i] = t.epss[j]!;
      this.exploits[i] = t.exploits[j]!;
      this.fixes[i] = t.fixes[j]!;
      this.firstObserved[i] = t.firstObserved[j]!;
      for (let k = t.packageStart[j]!; k < t.packageStart[j + 1]!; k++) {
        this.pushPackage(t.distinctPackages[t.packageOrdinals[k]!]!);
      }
      this.setSource(i, source);
      this.makers[i] = materializer === FROM_CACHE ? 0 : this.maker(materializer);
      this.setCached(i, cached);
      this.commit(i);
    }
  }

  /** Closes row i: its packages are the ones pushed since the previous row. */
  commit(i: number): void {
    this.length = i + 1;
    this.packageStart[i + 1] = this.packageCount;
  }

  build(): FindingTable {
    const n = this.length;
    const { keys: given, sources, sourceKey } = this;
    const keyAt = (i: number): string => {
      const key = given?.[i];
      if (key !== undefined) return key;
      if (sourceKey === undefined) throw new Error(`FindingTable: row ${i} has no key`);
      return sourceKey(sources[i]);
    };
    const keys = numberStrings(keyAt, this.keyHashes, n);
    const distinct = keys.distinct;
    return new FindingTable(
      n,
      keys.ordinals,
      distinct === undefined ? n : distinct.length,
      distinct === undefined ? keyAt : (o) => distinct[o]!,
      this.idOrdinals.subarray(0, n),
      this.ids.keys,
      this.levels.subarray(0, n),
      this.statuses.subarray(0, n),
      this.scores.subarray(0, n),
      this.epss.subarray(0, n),
      this.exploits.subarray(0, n),
      this.fixes.subarray(0, n),
      this.firstObserved.subarray(0, n),
      this.packageStart.subarray(0, n + 1),
      this.packageOrdinals.subarray(0, this.packageCount),
      this.packages.keys,
      this.sources.length === n ? this.sources : this.sources.slice(0, n),
      this.makers.subarray(0, n),
      this.materializers,
      this.cache === undefined || this.cache.length === n ? this.cache : this.cache.slice(0, n),
    );
  }

  private grow(): void {
    const n = this.levels.length * 2;
    const widen = <T extends Uint8Array | Int8Array | Float64Array | Int32Array | Uint32Array>(
      a: T,
      size: number,
    ): T => {
      const b = new (a.constructor as new (n: number) => T)(size);
      b.set(a);
      return b;
    };
    this.keyHashes = widen(this.keyHashes, n);
    if (this.keys !== undefined) this.keys.length = n;
    this.idOrdinals = widen(this.idOrdinals, n);
    this.levels = widen(this.levels, n);
    this.statuses = widen(this.statuses, n);
    this.scores = widen(this.scores, n);
    this.epss = widen(this.epss, n);
    this.exploits = widen(this.exploits, n);
    this.fixes = widen(this.fixes, n);
    this.firstObserved = widen(this.firstObserved, n);
    this.packageStart = widen(this.packageStart, n + 1);
    this.makers = widen(this.makers, n);
    if (this.givenSources) throw new Error('FindingTable: more rows than the list they are read from');
    this.sources.length = n;
    if (this.cache !== undefined) this.cache.length = n;
  }
}

// See keepShapes: a builder never outlives the document it reads, nor (often) a table its decision.
{
  const builder = new FindingTableBuilder(1);
  keepShapes(builder, builder.build());
}
