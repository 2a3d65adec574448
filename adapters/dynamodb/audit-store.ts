import {
  BatchGetCommand,
  type DynamoDBDocumentClient,
  GetCommand,
  QueryCommand,
  type QueryCommandInput,
  ScanCommand,
} from '@aws-sdk/lib-dynamodb';
import { CLOCK_SKEW_MS, datedInFuture, futureDated } from '../../shared/audit/archive-compare.js';
import { type ChainProblem, type VerifyResult, verifyChain } from '../../shared/audit/chain.js';
import { type AuditFilter, type AuditRecord, resolutionMatches } from '../../shared/audit/record.js';
import { inTurn } from '../../shared/gate/work.js';
import { type RecordDamage, recordDamage, timeDamage } from './audit-damage.js';
import {
  AUDIT_TYPE,
  auditPk,
  auditRecordItem,
  auditSk,
  auditSortKey,
  dayOf,
  HEAD_SK,
  type IndexKind,
  indexKind,
  indexPk,
  PENDING_PK,
  PIPELINES_PK,
  pendingKey,
  transactionalIndexItems,
  vulnerabilityItems,
} from './audit-items.js';
import { INDEX } from './table.js';

/*
 * Reading the audit trail (`tollgate audit`, the benchmark, the tests). Every read is a GetItem, a Query
 * or a BatchGetItem by key: never a Scan. Which index serves which filter: README.md in this folder.
 */

type Item = Record<string, unknown>;

/** The chain head of a pipeline: its last record's seq and hash (and time). */
export interface AuditHead {
  readonly pipeline: string;
  readonly seq: number;
  readonly hash: string;
  readonly time: string;
}

/** A pipeline of the registry: when its chain started and last grew, and how many records it has. */
export interface AuditPipeline {
  readonly pipeline: string;
  readonly firstTime: string;
  readonly lastTime: string;
  readonly records: number;
}

export interface AuditListOptions {
  /** Items per Query page (DynamoDB's `Limit`); default 200. A page's records are yielded before the next page is read. */
  readonly pageSize?: number;
  /** `newest` (default) or `oldest` first, by record time. */
  readonly order?: 'newest' | 'oldest';
}

/** What a `list` read, for the read ratio: counters of the last `list` (reset when one starts). */
export interface AuditReadStats {
  /** Items the index Queries read (the sum of ScannedCount over their pages; the markers' apart). */
  scanned: number;
  /** Records `list` yielded. */
  returned: number;
  /** Records read by key (BatchGetItem) after an index-item Query (repository, reviewer, vulnerability). */
  fetched: number;
  /** Requests made (Query and BatchGetItem). */
  requests: number;
  /** The index (or index-item partition) that served the filter. */
  index: string;
  /**
   * Pending markers read (ScannedCount) to find the records whose VULN# items are not all written yet: a
   * vulnerability filter only. Not in `scanned`: it does not grow with the answer but with the markers of
   * the last day (done ones wait for the table's TTL).
   */
  markers: number;
  /** Records read by key for the pending markers read (not in `fetched`, which equals the index items). */
  markerRecords: number;
}

/** Which filter a `list` is served by, most selective first. */
type Plan =
  | {
      readonly kind: 'gsi';
      readonly index: string;
      readonly partition: string;
      readonly sort: string;
      readonly value: string;
    }
  | { readonly kind: 'items'; readonly index: IndexKind; readonly value: string }
  | { readonly kind: 'days' };

const DEFAULT_PAGE = 200;
/** BatchGetItem's limit. */
const BATCH_GET = 100;
const DAY_MS = 86_400_000;
/**
 * The longest span of days `list` reads without --since, from the records' own times (a Query a day): ten
 * years. Tollgate's trail is younger than that; a record dated decades back (written by hand) would otherwise
 * cost a Query for every day since, and a trail that long can still be read with --since.
 */
const MAX_UNBOUNDED_DAYS = 3660;

/** What `list` reads a range from: a time, and the item it came from, to name when it is not believable. */
interface ItemTime {
  readonly time: number;
  readonly pk: string;
  readonly sk: string;
}

function isItem(value: unknown): value is Item {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function recordOf(item: Item): AuditRecord {
  const record = item.record;
  if (!isItem(record)) throw new Error(`item ${String(item.pk)}/${String(item.sk)} has no record map`);
  return record as unknown as AuditRecord;
}

/**
 * A record item `list` cannot answer with: a field it prints or filters on is absent or of another kind (an
 * edit by hand; Tollgate writes every one). Named by its item's keys and its place, with the field, what was
 * expected and what came: a time that is no time is in no range, and would otherwise leave the answer unsaid.
 */
export class AuditRecordError extends Error {
  constructor(
    readonly pk: string,
    readonly sk: string,
    readonly damage: RecordDamage,
  ) {
    const pipeline = pk.startsWith(auditPk('')) ? pk.slice(auditPk('').length) : undefined;
    const seq = /^SEQ#(\d+)$/.exec(sk)?.[1];
    const ref = pipeline !== undefined && seq !== undefined ? `${pipeline}#${Number(seq)}` : undefined;
    super(
      `the record ${ref ?? ''}${ref ? ' ' : ''}(item ${pk} / ${sk}) is damaged: ${damage.field}: expected ${damage.expected}, got ${damage.got}${ref ? `; "tollgate audit show ${ref}" prints what it holds, and "tollgate audit verify" checks its chain` : ''}`,
    );
    this.name = 'AuditRecordError';
  }
}

/** The record of an item `list` answers with: whole, or an AuditRecordError naming it. */
function listedRecordOf(item: Item): AuditRecord {
  const damage = recordDamage(item.record);
  if (damage) throw new AuditRecordError(String(item.pk), String(item.sk), damage);
  const record = recordOf(item);
  // A record at another record's keys (moved, or forged into a chain's partition) would be listed under a
  // place it does not hold, and `verify` of the chain it names would not see it.
  if (item.pk !== auditPk(record.pipeline) || item.sk !== auditSk(record.seq)) {
    throw new AuditRecordError(String(item.pk), String(item.sk), {
      field: 'pipeline, seq',
      expected: "the item's own place (a record is stored at its pipeline's and seq's keys)",
      got: `${record.pipeline}#${record.seq}`,
    });
  }
  return record;
}

/** The index items a Scan found (see DynamoAuditStore.indexItemKeys), by `itemKey`. */
export interface IndexItemKeys {
  readonly keys: ReadonlySet<string>;
}

const itemKey = (item: Item): string => `${String(item.pk)}\n${String(item.sk)}`;

/** Attributes of a record's item that place it in the indexes the queries read (see auditRecordItem). */
const INDEX_ATTRIBUTES = [
  'time',
  'pipeline',
  'seq',
  'pipelinePk',
  'pipelineSk',
  'auditDay',
  'auditSk',
  'outcomePk',
  'outcomeSk',
  'digestPk',
  'digestSk',
] as const;

/**
 * A record item whose index keys are not those its record gives. The hash covers the record map only: an
 * outcome key removed, or a day key moved, leaves the chain whole and hides the record from `list --outcome`
 * or `--since`, which read through the indexes.
 */
function indexKeysProblem(item: Item, record: AuditRecord): ChainProblem | undefined {
  // Every index key starts with the record's time: a record whose time is no time has no keys its content
  // gives, and no range (`--since`, `--until`, a day) holds it. Said here, where the hash cannot see it
  // (the record re-hashed), and never a failure that would leave the other chains unchecked.
  const time = timeDamage(record);
  if (time) {
    return {
      pipeline: record.pipeline,
      seq: record.seq,
      kind: 'unindexed',
      detail: `record ${record.seq}'s time is not a time (expected ${time.expected}, got ${time.got}): list and export, which read by time, cannot place it`,
    };
  }
  const expected = auditRecordItem(record);
  const wrong = INDEX_ATTRIBUTES.filter((k) => item[k] !== expected[k]);
  if (wrong.length === 0) return undefined;
  return {
    pipeline: record.pipeline,
    seq: record.seq,
    kind: 'unindexed',
    detail: `record ${record.seq}'s index keys are not the ones its content gives (${wrong.join(', ')}): queries by outcome, day, digest or pipeline and time may not find it`,
  };
}

/**
 * A record dated past the reader's clock and the skew clocks may have: Tollgate dates a record by its event or
 * its clock, never later. Hashed with it, the chain holds: said here, or a chain's tail rewritten and dated
 * so would verify, and would read as not archived yet against the archive however long it stayed.
 */
function futureProblem(record: AuditRecord, now: number): ChainProblem | undefined {
  const time = Date.parse(record.time);
  if (!datedInFuture(time, now)) return undefined;
  return {
    pipeline: record.pipeline,
    seq: record.seq,
    kind: 'changed',
    detail: `record ${record.seq} is ${futureDated(time, now)}: Tollgate dates a record by its event or its clock, never later, so its time was written by hand (and the chain hashed again), or this machine's clock is behind`,
  };
}

/** The item's place in the table: its pk and sk, as the record's own pipeline and seq give them. */
function itemPlace(item: Item): string {
  return `${String(item.pk)} / ${String(item.sk)}`;
}

/** The seq an item's sk holds the place of, or undefined when it is no SEQ# key. */
function seqOfSk(sk: unknown): number | undefined {
  const m = typeof sk === 'string' ? /^SEQ#(\d+)$/.exec(sk) : null;
  return m ? Number(m[1]) : undefined;
}

/**
 * A record item of `pipeline`'s partition that is not at its own record's keys (auditPk of its pipeline,
 * auditSk of its seq): Tollgate writes every record there, so one elsewhere was moved or forged. `foreign`
 * when it names another pipeline: a chain of its own, hashed right, would otherwise verify beside this one.
 */
function placeProblem(
  item: Item,
  record: AuditRecord,
  pipeline: string,
): { problem: ChainProblem; foreign: boolean } | undefined {
  const foreign = record.pipeline !== pipeline;
  if (!foreign && item.pk === auditPk(pipeline) && item.sk === auditSk(record.seq)) return undefined;
  const seq = seqOfSk(item.sk) ?? record.seq;
  return {
    foreign,
    problem: {
      pipeline,
      seq,
      kind: 'changed',
      detail: `the item ${itemPlace(item)} holds record ${String(record.pipeline)}#${String(record.seq)}, whose keys would be ${auditPk(String(record.pipeline))} / ${auditSk(Number(record.seq))}: Tollgate writes every record at its own keys, so this one was moved or forged`,
    },
  };
}

/**
 * The chain's first problem: the chain's own, or an item out of place, whichever is earlier in the chain. On
 * the same seq the chain's own says more (a swapped pair is out of place too), unless the item was kept out
 * of the chain as another pipeline's, which the chain then cannot name.
 */
function firstOf(
  chain: ChainProblem | undefined,
  misplaced: { problem: ChainProblem; foreign: boolean } | undefined,
): ChainProblem | undefined {
  if (!misplaced) return chain;
  if (!chain) return misplaced.problem;
  if (misplaced.problem.seq < chain.seq) return misplaced.problem;
  if (misplaced.problem.seq === chain.seq && misplaced.foreign) return misplaced.problem;
  return chain;
}

/**
 * The filter checked on one record (every field of it: what an index served is checked again, cheaply). A
 * record whose time is no time is refused by `list` before this (AuditRecordError): here it would match no
 * range, and be left out unsaid.
 */
export function matchesFilter(record: AuditRecord, filter: AuditFilter): boolean {
  const time = Date.parse(record.time);
  if (filter.since && !(time >= filter.since.getTime())) return false;
  if (filter.until && !(time < filter.until.getTime())) return false;
  if (filter.pipeline !== undefined && record.pipeline !== filter.pipeline) return false;
  if (filter.type !== undefined && record.type !== filter.type) return false;
  if (filter.outcome !== undefined && record.outcome !== filter.outcome) return false;
  if (filter.digest !== undefined && record.image?.digest !== filter.digest) return false;
  if (filter.repository !== undefined && record.image?.repository !== filter.repository) return false;
  if (filter.reviewer !== undefined && !resolutionMatches(record.resolution, filter.reviewer)) return false;
  if (filter.vulnerability !== undefined && !record.vulnerabilities.includes(filter.vulnerability))
    return false;
  if (filter.state !== undefined && record.resolution?.state !== filter.state) return false;
  return true;
}

/**
 * The index for a filter: an image digest, a reviewer, a vulnerability and a repository name usually match
 * fewer records than a pipeline, an outcome or a time range, so they are preferred in that order.
 */
function planFor(filter: AuditFilter): Plan {
  if (filter.digest !== undefined)
    return {
      kind: 'gsi',
      index: INDEX.digest,
      partition: 'digestPk',
      sort: 'digestSk',
      value: `AUDIT#${filter.digest}`,
    };
  if (filter.reviewer !== undefined) return { kind: 'items', index: 'REVIEWER', value: filter.reviewer };
  if (filter.vulnerability !== undefined)
    return { kind: 'items', index: 'VULN', value: filter.vulnerability };
  if (filter.repository !== undefined) return { kind: 'items', index: 'REPO', value: filter.repository };
  if (filter.pipeline !== undefined)
    return {
      kind: 'gsi',
      index: INDEX.pipeline,
      partition: 'pipelinePk',
      sort: 'pipelineSk',
      value: `AUDIT#${filter.pipeline}`,
    };
  if (filter.outcome !== undefined)
    return {
      kind: 'gsi',
      index: INDEX.outcome,
      partition: 'outcomePk',
      sort: 'outcomeSk',
      value: `AUDIT#${filter.outcome}`,
    };
  return { kind: 'days' };
}

/**
 * The audit trail as stored in the gate's table: records, chains, heads, the registry of pipelines.
 * Records come back exactly as they were written (the map is the AuditRecord).
 */
export class DynamoAuditStore {
  readonly stats: AuditReadStats = {
    scanned: 0,
    returned: 0,
    fetched: 0,
    requests: 0,
    index: '',
    markers: 0,
    markerRecords: 0,
  };

  /**
   * `clock`: the reader's, against which a record (or head) dated later, past the clocks' skew, is none
   * Tollgate wrote. `null` for a local store that `tollgate demo` or `simulate` filled: its records are dated
   * by each scenario's clock, whatever day that is, and no date of theirs is a forgery.
   */
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly tableName: string,
    private readonly clock: (() => Date) | null = () => new Date(),
  ) {}

  /**
   * Records matching every field of `filter`, newest first (or oldest first), page by page: a page is read
   * only when the records of the one before have been consumed. One index serves the filter (see `planFor`);
   * the other fields are checked on what that index returned. `since` is inclusive, `until` exclusive.
   */
  async *list(filter: AuditFilter, options: AuditListOptions = {}): AsyncGenerator<AuditRecord> {
    const stats = this.stats;
    stats.scanned = 0;
    stats.returned = 0;
    stats.fetched = 0;
    stats.requests = 0;
    stats.markers = 0;
    stats.markerRecords = 0;
    const pageSize = Math.max(1, Math.floor(options.pageSize ?? DEFAULT_PAGE));
    const forward = options.order === 'oldest';
    const plan = planFor(filter);
    const range = { since: filter.since, until: filter.until };
    if (range.since && range.until && range.since.getTime() >= range.until.getTime()) return;

    let records: AsyncIterable<AuditRecord>;
    switch (plan.kind) {
      case 'gsi':
        stats.index = plan.index;
        records = this.recordsOf(
          this.queryPages(
            {
              IndexName: plan.index,
              ...keyCondition(plan.partition, plan.value, plan.sort, range),
              ScanIndexForward: forward,
            },
            pageSize,
          ),
        );
        break;
      case 'items': {
        stats.index = `${plan.index}# items`;
        const indexed = this.fetched(
          this.queryPages(
            {
              ...keyCondition('pk', indexPk(plan.index, plan.value), 'sk', range),
              ScanIndexForward: forward,
              // Index items are the table's own (not a GSI's): read strongly, as the VULN# marker is, or a
              // record whose items were written a moment ago could be in neither the answer nor the unindexed.
              ConsistentRead: true,
            },
            pageSize,
          ),
        );
        // VULN# items are written after their record's transaction (see the store's indexAudit): a record
        // whose items are not all written yet would be missing from the answer, silently.
        records = plan.index === 'VULN' ? this.withUnindexed(indexed, forward) : indexed;
        break;
      }
      case 'days':
        stats.index = INDEX.day;
        records = this.byDays(range, forward, pageSize);
        break;
    }
    for await (const record of records) {
      if (!matchesFilter(record, filter)) continue;
      stats.returned++;
      yield record;
    }
  }

  /** One record, by its place in its chain (a consistent read). */
  async get(pipeline: string, seq: number): Promise<AuditRecord | undefined> {
    const item = await this.getItem(auditPk(pipeline), auditSk(seq));
    return item ? recordOf(item) : undefined;
  }

  /** A pipeline's chain in seq order, page by page (consistent reads). */
  async *chain(pipeline: string, options: { readonly pageSize?: number } = {}): AsyncGenerator<AuditRecord> {
    for await (const item of this.chainItems(pipeline, options)) yield recordOf(item);
  }

  /** The chain's record items as stored, index keys and all. */
  private async *chainItems(
    pipeline: string,
    options: { readonly pageSize?: number } = {},
  ): AsyncGenerator<Item> {
    const pages = this.queryPages(
      {
        KeyConditionExpression: 'pk = :pk AND begins_with(sk, :seq)',
        ExpressionAttributeValues: { ':pk': auditPk(pipeline), ':seq': 'SEQ#' },
        ConsistentRead: true,
        ScanIndexForward: true,
      },
      Math.max(1, Math.floor(options.pageSize ?? 500)),
    );
    for await (const items of pages) yield* items;
  }

  /** The chain head: the last record's seq and hash; undefined when the pipeline has no records. */
  async head(pipeline: string): Promise<AuditHead | undefined> {
    const item = await this.getItem(auditPk(pipeline), HEAD_SK);
    if (!item) return undefined;
    return { pipeline, seq: Number(item.seq), hash: String(item.hash), time: String(item.time) };
  }

  /**
   * Chains the registry does not list: every pipeline with a record or a head in the table (one Scan of the
   * whole table, keys only), less the registry's, sorted. A registry item deleted by hand hides its chain from
   * `verify`, `list` and `export`; records and heads cannot be hidden so without deleting them, which
   * `verify` sees in the chains it reads.
   */
  async unlistedChains(): Promise<string[]> {
    const listed = new Set(await this.pipelines());
    const found = new Set<string>();
    const prefix = auditPk('');
    let start: Item | undefined;
    do {
      const output = await this.doc.send(
        new ScanCommand({
          TableName: this.tableName,
          FilterExpression: 'begins_with(pk, :audit) AND (sk = :head OR begins_with(sk, :seq))',
          ExpressionAttributeValues: { ':audit': prefix, ':head': HEAD_SK, ':seq': 'SEQ#' },
          ProjectionExpression: 'pk',
          ...(start ? { ExclusiveStartKey: start } : {}),
        }),
      );
      this.stats.requests++;
      for (const item of output.Items ?? []) {
        const name = String(item.pk).slice(prefix.length);
        if (!listed.has(name)) found.add(name);
      }
      start = output.LastEvaluatedKey;
    } while (start);
    return [...found].sort();
  }

  /**
   * The keys of the table's REPO#, REVIEWER# and VULN# index items (of one pipeline's records, or of all: one
   * Scan of the whole table, keys only), for `verify` to find a record whose index item was deleted, which
   * hides it from `list --repository`, `--reviewer` or `--vulnerability` while its chain stays whole.
   */
  async indexItemKeys(pipeline?: string): Promise<IndexItemKeys> {
    const keys = new Set<string>();
    let start: Item | undefined;
    do {
      const output = await this.doc.send(
        new ScanCommand({
          TableName: this.tableName,
          FilterExpression: `#type = :index${pipeline === undefined ? '' : ' AND pipeline = :pipeline'}`,
          ExpressionAttributeNames: { '#type': 'type' },
          ExpressionAttributeValues: {
            ':index': AUDIT_TYPE.index,
            ...(pipeline === undefined ? {} : { ':pipeline': pipeline }),
          },
          ProjectionExpression: 'pk, sk',
          ...(start ? { ExclusiveStartKey: start } : {}),
        }),
      );
      this.stats.requests++;
      for (const item of output.Items ?? []) keys.add(itemKey(item));
      start = output.LastEvaluatedKey;
    } while (start);
    return { keys };
  }

  /** The pipelines that have an audit chain, sorted by name. */
  async pipelines(): Promise<string[]> {
    return (await this.registry()).map((p) => p.pipeline);
  }

  /**
   * The registry: every pipeline with a chain, with its first record's time and, from its head, its last
   * record's time and its record count (one Query, then the heads by key, 100 a request).
   */
  async registry(): Promise<AuditPipeline[]> {
    const entries: { pipeline: string; firstTime: string }[] = [];
    const pages = this.queryPages(
      {
        KeyConditionExpression: 'pk = :pk',
        ExpressionAttributeValues: { ':pk': PIPELINES_PK },
        ConsistentRead: true,
      },
      1000,
      false,
    );
    for await (const items of pages) {
      for (const item of items) {
        entries.push({ pipeline: String(item.pipeline ?? item.sk), firstTime: String(item.firstTime) });
      }
    }
    const heads = new Map<string, Item>();
    const keys = entries.map((e) => ({ pk: auditPk(e.pipeline), sk: HEAD_SK }));
    for (const item of (await this.batchGet(keys, null)).values()) heads.set(String(item.pipeline), item);
    return entries
      .map((e) => {
        const head = heads.get(e.pipeline);
        return {
          pipeline: e.pipeline,
          firstTime: e.firstTime,
          lastTime: head ? String(head.time) : e.firstTime,
          records: head ? Number(head.seq) : 0,
        };
      })
      .sort((a, b) => (a.pipeline < b.pipeline ? -1 : a.pipeline > b.pipeline ? 1 : 0));
  }

  /**
   * Verifies one pipeline's chain against its head (read first: records appended while the chain is read
   * are checked as links), or every pipeline of the registry, one after another.
   */
  async verify(
    pipeline?: string,
    indexItems?: IndexItemKeys,
    /**
     * The registry's pipelines (`pipelines()`), read once by a caller that verifies the chains one by one:
     * each call would otherwise read the registry and every head again.
     */
    registry?: readonly string[],
    /** The time to judge records dated in the future by (a simulation's, or a test's): the store's clock's. */
    at: Date | undefined = this.clock?.(),
  ): Promise<VerifyResult> {
    const missingItem = (record: AuditRecord) => this.missingIndexItem(record, indexItems);
    const now = at?.getTime();
    const registered = new Set(registry ?? (await this.pipelines()));
    const names = pipeline === undefined ? [...registered] : [pipeline];
    let records = 0;
    const problems: VerifyResult['problems'] = [];
    for (const name of names) {
      const head = await this.head(name);
      let last: AuditRecord | undefined;
      let unindexed: ChainProblem | undefined;
      let future: ChainProblem | undefined;
      let misplaced: { problem: ChainProblem; foreign: boolean } | undefined;
      let withheld = 0;
      const read = async function* (items: AsyncIterable<Item>) {
        for await (const item of items) {
          const record = recordOf(item);
          const place = placeProblem(item, record, name);
          misplaced ??= place;
          // Another chain's record is no link of this one: fed to the chain it would be a chain of its own,
          // whole, or a problem named after a place it does not hold.
          if (place?.foreign) {
            withheld++;
            continue;
          }
          unindexed ??= indexKeysProblem(item, record) ?? (await missingItem(record));
          if (now !== undefined) future ??= futureProblem(record, now);
          last = record;
          yield record;
        }
      };
      const result = await verifyChain(
        read(this.chainItems(name)),
        head ?? { pipeline: name, seq: 0, hash: '' },
      );
      records += result.records + withheld;
      const found = firstOf(result.problems[0], misplaced);
      if (found) {
        problems.push(found);
        continue;
      }
      const end = last as AuditRecord | undefined;
      if (!head && end === undefined) {
        // The registry says the chain was started; a chain with neither records nor head was deleted.
        if (registered.has(name)) {
          problems.push({
            pipeline: name,
            seq: 1,
            kind: 'missing',
            detail: 'the registry lists the chain, and it has neither records nor a head: deleted',
          });
        }
        continue;
      }
      // The registry item is written in the transaction of record 1: a chain it does not list lost it since,
      // and `list`, `export` and `verify` without a name (or --scan) no longer see that chain. The registry
      // was read before this chain (once per run, by `verify --scan`): a chain started since then is not in
      // it, so its own item is read again, now that its records were.
      if (!registered.has(name) && (await this.getItem(PIPELINES_PK, name)) === undefined) {
        problems.push({
          pipeline: name,
          seq: 1,
          kind: 'missing',
          detail:
            'the registry does not list this chain (its registry item was deleted): list, export and verify without --scan do not see it',
        });
        continue;
      }
      // The head is written in the transaction of every record: records without one were not written so.
      if (!head) {
        problems.push({
          pipeline: name,
          seq: 1,
          kind: 'head-mismatch',
          detail: `the chain has ${result.records} record(s) but no head`,
        });
        continue;
      }
      // Records past the head read first were checked as links only (appended meanwhile). Appended so, they
      // moved the head in their own transaction: a head read now must reach them. One that does not was not
      // written with its head: added by hand after the last record (forged), or the head rolled back.
      if (end !== undefined && end.seq > head.seq) {
        const now = await this.head(name);
        if (!now || now.seq < end.seq || (now.seq === end.seq && now.hash !== end.hash)) {
          problems.push({
            pipeline: name,
            seq: end.seq,
            kind: 'head-mismatch',
            detail: `record ${end.seq} is past the chain's head (record ${now?.seq ?? 0}): every record is written with its head, so this one was not written by Tollgate`,
          });
          continue;
        }
      }
      // Last, one problem per chain as above: a record moved, changed or forged has the wrong keys as well.
      // Of a record dated in the future and one unindexed, the earlier in the chain.
      const late = future && (!unindexed || future.seq <= unindexed.seq) ? future : unindexed;
      if (late) {
        problems.push(late);
        continue;
      }
      // The head's time is not hashed, and `list` reads the days up to it: one dated in the future would make
      // a list without --until refuse, naming the head, with no record to blame.
      const headTime = Date.parse(head.time);
      if (now !== undefined && datedInFuture(headTime, now)) {
        problems.push({
          pipeline: name,
          seq: head.seq,
          kind: 'head-mismatch',
          detail: `the chain's head is ${futureDated(headTime, now)}: a head takes its record's time, which Tollgate never dates later, so it was written by hand, or this machine's clock is behind`,
        });
      }
    }
    return { ok: problems.length === 0, records, problems };
  }

  // ── plumbing ──────────────────────────────────────────────────────────────────────────────────────

  /** Every day partition the range covers, newest day first (or oldest), each queried in the same order. */
  private async *byDays(
    range: { since: Date | undefined; until: Date | undefined },
    forward: boolean,
    pageSize: number,
  ): AsyncGenerator<AuditRecord> {
    let from = range.since?.getTime();
    let to = range.until?.getTime();
    if (from === undefined || to === undefined) {
      // No bound given: each chain's earliest and latest record times, from the index that sorts a chain's
      // records by time. Not the registry's first time and the head's: a record carries its event's own time,
      // and a late event (redriven from a dead-letter queue, say) appends a record older than the one before,
      // which would move the head's time back and leave the newer records' days unread.
      const registry = await this.registry();
      this.stats.requests++;
      if (registry.length === 0) return;
      const now = this.clock?.().getTime();
      const times = (newest: boolean) => this.chainTimes(registry, newest);
      const [earliest, latest] = await Promise.all([
        from === undefined ? times(false) : [],
        to === undefined ? times(true) : [],
      ]);
      if (earliest.some((t) => Number.isNaN(t.time)) || latest.some((t) => Number.isNaN(t.time)))
        throw new Error('the audit registry holds a time that is no time');
      // On a tie the later in the list: a record item (read after the registry's), which names a record.
      const newest = latest.reduce<ItemTime | undefined>((a, t) => (a && a.time > t.time ? a : t), undefined);
      // No record is dated later than now and the clocks' skew (CLOCK_SKEW_MS): one that is was written by
      // hand, and reading every day up to it is a Query each (to 2099: 26,000). Refused, naming it, as `list`
      // names any damaged record; --until reads the others, and `verify` names it in its chain.
      if (newest && now !== undefined && datedInFuture(newest.time, now)) {
        throw new AuditRecordError(newest.pk, newest.sk, {
          field: 'time',
          expected: `a time no later than now and the ${CLOCK_SKEW_MS / 60_000} minutes clocks may differ (${new Date(now + CLOCK_SKEW_MS).toISOString()}): Tollgate dates no record later (or this machine's clock is behind), and a list without --until reads every day up to it`,
          got: JSON.stringify(new Date(newest.time).toISOString()),
        });
      }
      const oldest = earliest.reduce<ItemTime | undefined>(
        (a, t) => (a && a.time < t.time ? a : t),
        undefined,
      );
      // A day of slack each side, for the clocks.
      from ??= (oldest?.time ?? Number.NaN) - DAY_MS;
      to ??= (newest?.time ?? Number.NaN) + DAY_MS;
      // The days a record's time alone would have read, however far back it was dated: only when asked for.
      if (range.since === undefined && oldest && to - from > MAX_UNBOUNDED_DAYS * DAY_MS) {
        const days = Math.ceil((to - from) / DAY_MS);
        throw new Error(
          range.until === undefined
            ? `the audit trail's earliest time, ${new Date(oldest.time).toISOString()} (item ${oldest.pk} / ${oldest.sk}), is ${days} days before its latest: more than the ${MAX_UNBOUNDED_DAYS} a list without --since reads (a Query a day); pass --since (and --until) for the days to read, and check that item if Tollgate cannot have written it so long ago`
            : `from the audit trail's earliest time, ${new Date(oldest.time).toISOString()}, to --until is ${days} days: more than the ${MAX_UNBOUNDED_DAYS} a list without --since reads (a Query a day); pass --since for the days to read`,
        );
      }
    }
    const days: string[] = [];
    for (let day = Date.parse(dayOf(new Date(from).toISOString())); day < to; day += DAY_MS) {
      days.push(new Date(day).toISOString().slice(0, 10));
    }
    if (!forward) days.reverse();
    for (const day of days) {
      yield* this.recordsOf(
        this.queryPages(
          {
            IndexName: INDEX.day,
            ...keyCondition('auditDay', `DAY#${day}`, 'auditSk', range),
            ScanIndexForward: forward,
          },
          pageSize,
        ),
      );
    }
  }

  /**
   * Each chain's earliest (or latest) record time: one Query of a record, first or last in time order, per
   * chain, 8 at a time; the registry's first time and the head's time are taken too (a record appended a
   * moment ago may not be in the index yet).
   */
  private async chainTimes(registry: readonly AuditPipeline[], newest: boolean): Promise<ItemTime[]> {
    const times: ItemTime[] = registry.map((p) => ({
      time: Date.parse(newest ? p.lastTime : p.firstTime),
      ...(newest ? { pk: auditPk(p.pipeline), sk: HEAD_SK } : { pk: PIPELINES_PK, sk: p.pipeline }),
    }));
    await inTurn(registry, 8, async (p) => {
      const output = await this.doc.send(
        new QueryCommand({
          TableName: this.tableName,
          IndexName: INDEX.pipeline,
          KeyConditionExpression: 'pipelinePk = :pk',
          ExpressionAttributeValues: { ':pk': auditPk(p.pipeline) },
          ProjectionExpression: 'pk, sk, #time, #record.#time',
          ExpressionAttributeNames: { '#time': 'time', '#record': 'record' },
          ScanIndexForward: !newest,
          Limit: 1,
        }),
      );
      this.stats.requests++;
      const item = output.Items?.[0];
      if (item?.time === undefined) return;
      const time = Date.parse(String(item.time));
      // A record whose time is no time sorts last (or first) by its keys: named here, where the range it
      // spoils is worked out, as `list` names any damaged record, not as a registry that is no time.
      const record = isItem(item.record) ? item.record : {};
      const damage = timeDamage({ time: record.time as string });
      if (Number.isNaN(time) || damage) {
        throw new AuditRecordError(
          String(item.pk),
          String(item.sk),
          damage ?? { field: 'time', expected: 'an ISO-8601 time', got: JSON.stringify(item.time) },
        );
      }
      times.push({ time, pk: String(item.pk), sk: String(item.sk) });
    });
    return times;
  }

  private async *recordsOf(pages: AsyncIterable<Item[]>): AsyncGenerator<AuditRecord> {
    for await (const items of pages) for (const item of items) yield listedRecordOf(item);
  }

  /**
   * `indexed` with, in their places in its order, the records whose VULN# items may not all be written: those
   * of the pending markers not yet done, read first (usually none). The caller's filter decides which of
   * them belong; one that is also indexed is yielded once.
   */
  private async *withUnindexed(
    indexed: AsyncIterable<AuditRecord>,
    forward: boolean,
  ): AsyncGenerator<AuditRecord> {
    const markers: Item[] = [];
    const pages = this.queryPages(
      {
        KeyConditionExpression: 'pk = :pk',
        FilterExpression: 'attribute_not_exists(done)',
        ExpressionAttributeValues: { ':pk': PENDING_PK },
        ConsistentRead: true,
      },
      1000,
      'markers',
    );
    for await (const items of pages) markers.push(...items);
    if (markers.length === 0) {
      yield* indexed;
      return;
    }
    // Counted apart from `fetched`, which equals the index items a filter read.
    const found = await this.batchGet(
      markers.map((m) => ({ pk: auditPk(String(m.pipeline)), sk: auditSk(Number(m.seq)) })),
      'markerRecords',
    );
    const before = (a: string, b: string): boolean => (forward ? a < b : a > b);
    const unindexed = [...found.values()]
      .map((item) => {
        const record = listedRecordOf(item);
        return { record, key: auditSortKey(record), yielded: false };
      })
      .sort((a, b) => (a.key === b.key ? 0 : before(a.key, b.key) ? -1 : 1));
    const byPlace = new Map(unindexed.map((u) => [`${u.record.pipeline}#${u.record.seq}`, u]));
    let next = 0;
    for await (const record of indexed) {
      const key = auditSortKey(record);
      for (; next < unindexed.length && before(unindexed[next]!.key, key); next++) {
        const u = unindexed[next]!;
        if (!u.yielded) {
          u.yielded = true;
          yield u.record;
        }
      }
      const u = byPlace.get(`${record.pipeline}#${record.seq}`);
      if (u !== undefined) {
        if (u.yielded) continue;
        u.yielded = true;
      }
      yield record;
    }
    for (const u of unindexed.slice(next)) if (!u.yielded) yield u.record;
  }

  /** Index items' records, by key, in the index's order; an index item whose record is gone is skipped. */
  private async *fetched(pages: AsyncIterable<Item[]>): AsyncGenerator<AuditRecord> {
    for await (const items of pages) {
      for (let start = 0; start < items.length; start += BATCH_GET) {
        const chunk = items.slice(start, start + BATCH_GET);
        const found = await this.batchGet(
          chunk.map((item) => ({ pk: String(item.recordPk), sk: String(item.recordSk) })),
        );
        for (const item of chunk) {
          const record = found.get(`${String(item.recordPk)}\n${String(item.recordSk)}`);
          if (record) yield listedRecordOf(record);
        }
      }
    }
  }

  /**
   * The items at `keys`, by `pk\nsk`, read BATCH_GET keys at a time (BatchGetItem takes no more), each
   * request counted and each item found counted under `counter` (null: a read `list`'s stats do not cover).
   */
  private async batchGet(
    keys: { pk: string; sk: string }[],
    counter: 'fetched' | 'markerRecords' | null = 'fetched',
  ): Promise<Map<string, Item>> {
    const found = new Map<string, Item>();
    const unique: Item[] = [...new Map(keys.map((k) => [`${k.pk}\n${k.sk}`, k])).values()];
    for (let start = 0; start < unique.length; start += BATCH_GET) {
      let pending = unique.slice(start, start + BATCH_GET);
      for (let attempt = 0; pending.length > 0; attempt++) {
        if (attempt > 8) throw new Error('BatchGetItem left keys unprocessed after 8 attempts');
        if (attempt > 0)
          await new Promise((resolve) => setTimeout(resolve, Math.min(1000, 20 * 2 ** attempt)));
        const output = await this.doc.send(
          new BatchGetCommand({
            RequestItems: { [this.tableName]: { Keys: pending, ConsistentRead: true } },
          }),
        );
        if (counter !== null) this.stats.requests++;
        for (const item of output.Responses?.[this.tableName] ?? []) {
          if (counter !== null) this.stats[counter]++;
          found.set(`${String(item.pk)}\n${String(item.sk)}`, item);
        }
        pending = output.UnprocessedKeys?.[this.tableName]?.Keys ?? [];
      }
    }
    return found;
  }

  /** Query pages of at most `pageSize` items, counting what each read. */
  private async *queryPages(
    input: Omit<QueryCommandInput, 'TableName' | 'Limit' | 'ExclusiveStartKey'>,
    pageSize: number,
    /** What the pages read counts as: `scanned` (the index), `markers`, or nothing. */
    count: boolean | 'markers' = true,
  ): AsyncGenerator<Item[]> {
    let start: Item | undefined;
    do {
      const output = await this.doc.send(
        new QueryCommand({
          TableName: this.tableName,
          ...input,
          Limit: pageSize,
          ...(start ? { ExclusiveStartKey: start } : {}),
        }),
      );
      if (count !== false) {
        const read = output.ScannedCount ?? output.Items?.length ?? 0;
        this.stats.requests++;
        if (count === 'markers') this.stats.markers += read;
        else this.stats.scanned += read;
      }
      start = output.LastEvaluatedKey;
      const items = output.Items ?? [];
      if (items.length > 0) yield items;
    } while (start);
  }

  /**
   * The record's first index item that `keys` (a Scan) lacks and a read of it does not find either: an item
   * written after the Scan (a record appended meanwhile) is found by the read, and a VULN# item whose
   * record's marker is not done is still being written (indexAudit, or the sweep's repair), not missing.
   */
  private async missingIndexItem(
    record: AuditRecord,
    indexItems: IndexItemKeys | undefined,
  ): Promise<ChainProblem | undefined> {
    if (!indexItems) return undefined;
    for (const expected of [...transactionalIndexItems(record), ...vulnerabilityItems(record)]) {
      if (indexItems.keys.has(itemKey(expected))) continue;
      if (await this.getItem(String(expected.pk), String(expected.sk))) continue;
      const kind = indexKind(expected.pk);
      if (kind === 'VULN') {
        const { pk, sk } = pendingKey(record);
        const marker = await this.getItem(pk, sk);
        if (marker && marker.done === undefined) continue;
      }
      const query = kind === 'REPO' ? '--repository' : kind === 'REVIEWER' ? '--reviewer' : '--vulnerability';
      return {
        pipeline: record.pipeline,
        seq: record.seq,
        kind: 'unindexed',
        detail: `record ${record.seq}'s index item ${String(expected.pk)} is missing: list ${query} does not find it`,
      };
    }
    return undefined;
  }

  private async getItem(pk: string, sk: string): Promise<Item | undefined> {
    const output = await this.doc.send(
      new GetCommand({ TableName: this.tableName, Key: { pk, sk }, ConsistentRead: true }),
    );
    return output.Item;
  }
}

/**
 * `partition = value` and, on the `<time>#…` sort key, `since` (inclusive) and `until` (exclusive): every
 * key of the instant `until` sorts above `<until>` alone, and every key of `since` at or above it.
 */
function keyCondition(
  partition: string,
  value: string,
  sort: string,
  range: { since: Date | undefined; until: Date | undefined },
): Pick<
  QueryCommandInput,
  'KeyConditionExpression' | 'ExpressionAttributeNames' | 'ExpressionAttributeValues'
> {
  const names: Record<string, string> = { '#p': partition };
  const values: Item = { ':p': value };
  let condition = '#p = :p';
  const since = range.since?.toISOString();
  const until = range.until?.toISOString();
  if (since !== undefined || until !== undefined) names['#s'] = sort;
  if (since !== undefined && until !== undefined) {
    condition += ' AND #s BETWEEN :since AND :until';
    values[':since'] = since;
    values[':until'] = until;
  } else if (since !== undefined) {
    condition += ' AND #s >= :since';
    values[':since'] = since;
  } else if (until !== undefined) {
    condition += ' AND #s < :until';
    values[':until'] = until;
  }
  return {
    KeyConditionExpression: condition,
    ExpressionAttributeNames: names,
    ExpressionAttributeValues: values,
  };
}
