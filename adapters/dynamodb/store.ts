import { createHash, randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { DynamoDBClient, type DynamoDBClientConfig } from '@aws-sdk/client-dynamodb';
import {
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  paginateQuery,
  QueryCommand,
  type QueryCommandInput,
  TransactWriteCommand,
  type TransactWriteCommandInput,
} from '@aws-sdk/lib-dynamodb';
import { type ChainHead, ChainHeadMovedError } from '../../shared/audit/chain.js';
import type { AuditRecord } from '../../shared/audit/record.js';
import type { Outcome } from '../../shared/decision/record.js';
import {
  type Gate,
  type GateKey,
  type GateState,
  gateId,
  type ScanStatus,
  type StoredDecision,
} from '../../shared/gate/model.js';
import type { StorePort } from '../../shared/gate/ports.js';
import { reconcilable } from '../../shared/gate/reconcile.js';
import { tiedScan } from '../../shared/gate/scan-tie.js';
import { httpHandlerConfig } from '../aws/retry.js';
import {
  auditPk,
  auditRecordItem,
  auditSk,
  HEAD_SK,
  headItem,
  PENDING_PK,
  pendingItem,
  registryItem,
  transactionalIndexItems,
  vulnerabilityItems,
} from './audit-items.js';
import { INDEX, OPEN_SHARDS, TTL_ATTRIBUTE } from './table.js';

/** DynamoDB's item limit, attribute names included. */
export const MAX_ITEM_BYTES = 400 * 1024;

/** The item would exceed DynamoDB's 400 KB: nothing was written. */
export class ItemTooLargeError extends Error {
  constructor(
    readonly item: string,
    readonly bytes: number,
  ) {
    super(`${item} is ${bytes} bytes stored, over DynamoDB's item limit of ${MAX_ITEM_BYTES} bytes`);
    this.name = 'ItemTooLargeError';
  }
}

/** A value the table cannot give back as it was given (a Date, NaN, a class instance, …). */
export class UnstorableValueError extends Error {
  constructor(
    readonly path: string,
    readonly value: unknown,
  ) {
    super(
      `cannot store ${describe(value)} at ${path}: only plain objects, arrays, strings, finite numbers, booleans and null`,
    );
    this.name = 'UnstorableValueError';
  }
}

function describe(value: unknown): string {
  if (typeof value === 'number') return String(value);
  if (typeof value === 'object' && value !== null) return value.constructor?.name ?? 'an object';
  return typeof value;
}

/**
 * Some pending markers could not be finished (they stay for the next sweep); the others were. Says how
 * many of each, and which records failed and why, first of all the first failure (also the `cause`).
 */
export class AuditIndexRepairError extends Error {
  constructor(
    readonly finished: number,
    readonly failures: readonly { readonly marker: string; readonly error: unknown }[],
  ) {
    const why = (e: unknown) => (e instanceof Error ? `${e.name}: ${e.message}` : String(e));
    super(
      `${failures.length} audit record(s) could not have their index items finished, ${finished} were: ${failures
        .slice(0, 3)
        .map((f) => `${f.marker} (${why(f.error)})`)
        .join('; ')}${failures.length > 3 ? '; …' : ''}`,
      { cause: failures[0]?.error },
    );
    this.name = 'AuditIndexRepairError';
  }
}

export interface DocumentClientOptions {
  /** A local endpoint (dynalite): fake credentials are used with it. */
  readonly endpoint?: string;
  readonly region?: string;
}

export function createDocumentClient(options: DocumentClientOptions = {}): DynamoDBDocumentClient {
  // The SDK's own retries stay on here (the store does not wrap its calls); a stalled connection must not.
  const config: DynamoDBClientConfig = { requestHandler: httpHandlerConfig() };
  if (options.endpoint !== undefined) {
    config.endpoint = options.endpoint;
    config.region = options.region ?? 'local';
    config.credentials = { accessKeyId: 'local', secretAccessKey: 'local' };
  } else if (options.region !== undefined) {
    config.region = options.region;
  }
  return DynamoDBDocumentClient.from(new DynamoDBClient(config), {
    // The store strips `undefined` itself; this keeps other callers of the same client working too.
    marshallOptions: { removeUndefinedValues: true, convertClassInstanceToMap: false },
    unmarshallOptions: { wrapNumbers: false },
  });
}

type Item = Record<string, unknown>;

const OPEN_STATES: ReadonlySet<GateState> = new Set<GateState>(['WAITING', 'DECIDED']);

/** Times in sort keys sort as instants only in one format; a text that is no time is kept as given. */
function sortableTime(text: string): string {
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? text : new Date(ms).toISOString();
}

/** Code-unit order, as DynamoDB orders ASCII keys (a locale's collation would not). */
function byText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function gatePk(key: GateKey): string {
  return `GATE#${gateId(key)}`;
}

function openShard(id: string): number {
  return (createHash('sha256').update(id).digest()[0] ?? 0) % OPEN_SHARDS;
}

/**
 * A copy of `value` as the table will give it back: `undefined` properties dropped (they read back as
 * absent, which reads the same), anything DynamoDB would store as something else refused.
 */
function storable(value: unknown, path: string): unknown {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      if (!Number.isFinite(value)) throw new UnstorableValueError(path, value);
      return value;
    case 'object': {
      if (value === null) return null;
      if (Array.isArray(value)) {
        return value.map((v: unknown, i) => {
          if (v === undefined) throw new UnstorableValueError(`${path}[${i}]`, v);
          return storable(v, `${path}[${i}]`);
        });
      }
      const proto: unknown = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) throw new UnstorableValueError(path, value);
      const out: Item = {};
      for (const [k, v] of Object.entries(value)) {
        if (v !== undefined) out[k] = storable(v, `${path}.${k}`);
      }
      return out;
    }
    default:
      throw new UnstorableValueError(path, value);
  }
}

/**
 * The item's size by DynamoDB's rules (names and strings in UTF-8 bytes, numbers up to 21 bytes, 3 bytes
 * per list or map plus 1 per element), rounded up where the rules are approximate.
 */
function valueBytes(value: unknown): number {
  if (typeof value === 'string') return Buffer.byteLength(value, 'utf8');
  if (typeof value === 'number') return Math.min(21, String(value).length + 1);
  if (typeof value === 'boolean' || value === null) return 1;
  if (Array.isArray(value)) {
    let bytes = 3;
    for (const v of value) bytes += 1 + valueBytes(v);
    return bytes;
  }
  if (typeof value === 'object') {
    let bytes = 3;
    for (const [k, v] of Object.entries(value)) bytes += 1 + Buffer.byteLength(k, 'utf8') + valueBytes(v);
    return bytes;
  }
  return 0;
}

export function itemBytes(item: Item): number {
  let bytes = 0;
  for (const [k, v] of Object.entries(item)) bytes += Buffer.byteLength(k, 'utf8') + valueBytes(v);
  return bytes;
}

function guardSize(item: Item, what: string): Item {
  const bytes = itemBytes(item);
  if (bytes > MAX_ITEM_BYTES) throw new ItemTooLargeError(what, bytes);
  return item;
}

function gateItem(gate: Gate): Item {
  const id = gateId(gate.key);
  const item: Item = {
    pk: gatePk(gate.key),
    sk: 'GATE',
    type: 'GATE',
    state: gate.state,
    version: gate.version,
    // Unique per write, outside the gate map (reads never see it): lets a conditional write whose answer was
    // lost tell its own write, met by the SDK's retry, from someone else's (see conditionalPut).
    rev: randomUUID(),
    gate: storable(gate, 'gate'),
  };
  // Key attributes of an index may not be empty strings: an empty digest or hash leaves the gate out.
  const digest = gate.image?.digest;
  if (digest) {
    item.digestPk = `DIGEST#${digest}`;
    item.digestSk = `GATE#${gate.state}#${id}`;
  }
  // An ACTED or STALE gate stays in the index while the sweep still has to ask whether its approval ended,
  // and one a person's answer ended until they are named (the end event or CloudTrail's record may be lost):
  // sorted by when it asks next.
  const reconcile = reconcilable(gate) ? gate.reconcileAt : undefined;
  if (OPEN_STATES.has(gate.state) || reconcile) {
    item.openPk = `OPEN#${openShard(id)}`;
    item.openSk = `${sortableTime(reconcile ?? gate.deadline)}#${id}`;
  }
  if (gate.tokenHash) item.tokenHash = gate.tokenHash;
  return guardSize(item, `gate ${id}`);
}

function runPk(actionExecutionId: string): string {
  return `RUN#${actionExecutionId}`;
}

/**
 * How long a run's claim is kept, from its gate's opening: past the longest a Manual approval can wait (60
 * days, when its action sets the longest timeout; 7 by default) and the longest a dead-lettered event can then
 * wait to be redriven (the queues keep messages 14 days). A claim gone while its approval still waits let the
 * sweep open a second gate for the run, and an end event of another attempt's number close a stand-in.
 */
const RUN_CLAIM_SECONDS = (60 + 14 + 1) * 86_400;

/** Tries of a gate's opening cancelled by a conflicting transaction (see createGate). */
const CREATE_ATTEMPTS = 4;
/** Writes of a status that tied with another of the same second, before the call gives up (and is retried). */
const SCAN_TIE_ATTEMPTS = 4;

/** The claim on a run of an approval action by the gate that names it (none: the gate names no run). */
function runClaimItem(gate: Gate): Item | undefined {
  const run = gate.actionExecutionId;
  if (!run) return undefined;
  return {
    pk: runPk(run),
    sk: 'RUN',
    type: 'RUN',
    gate: storable(gate.key, 'run claim'),
    [TTL_ATTRIBUTE]: Math.floor(Date.parse(gate.updatedAt) / 1000) + RUN_CLAIM_SECONDS,
  };
}

function decisionItem(decision: StoredDecision): Item {
  const id = gateId(decision.key);
  const at = sortableTime(decision.decidedAt);
  const item: Item = {
    pk: gatePk(decision.key),
    sk: 'DECISION',
    type: 'DECISION',
    decision: storable(decision, 'decision'),
    pipelinePk: `PIPELINE#${decision.key.pipeline}`,
    pipelineSk: `${at}#${id}`,
    outcomePk: `OUTCOME#${decision.record.outcome}`,
    outcomeSk: `${at}#${id}`,
  };
  const digest = decision.image?.digest ?? decision.record.subject.digest;
  if (digest) {
    item.digestPk = `DIGEST#${digest}`;
    item.digestSk = `DECISION#${at}#${id}`;
  }
  return guardSize(item, `decision ${id}`);
}

/**
 * One status per registry and repository of a digest: a copy pushed elsewhere is scanned apart, and a
 * repository of the same name in another account (a delegated administrator's events name its members')
 * is another repository. Keyed by name alone, a member's newer status replaced this account's, and ties of
 * one second merged the two's counts.
 */
function scanSk(registryId: string, repository: string): string {
  return `SCAN#${registryId}#${repository}`;
}

function scanItem(scan: ScanStatus): Item {
  const atMs = Date.parse(scan.at);
  // A status whose time cannot be compared could never be replaced by a newer one.
  if (Number.isNaN(atMs)) throw new UnstorableValueError('scan.at', scan.at);
  // A status of no known registry could be any account's repository of that name: it is not stored (a scan
  // event always names one: its repository ARN's account, else the event's).
  if (typeof scan.registryId !== 'string' || scan.registryId === '') {
    throw new Error(
      `scan status ${scan.digest} in ${scan.repository}: expected the registry (account id) it is of; got ${scan.registryId === undefined ? 'none' : JSON.stringify(scan.registryId)}`,
    );
  }
  return guardSize(
    {
      pk: `SCAN#${scan.digest}`,
      sk: scanSk(scan.registryId, scan.repository),
      type: 'SCAN',
      atMs,
      // A revision, so that a merge of two statuses of the same second is written over the one it read.
      rev: randomUUID(),
      scan: storable(scan, 'scan'),
    },
    `scan status ${scan.digest} in ${scan.registryId}/${scan.repository}`,
  );
}

/** Equal as stored (a field left undefined is no field in the item), the time as an instant, not a text. */
function sameScan(a: ScanStatus, b: ScanStatus): boolean {
  const plain = (s: ScanStatus) => JSON.parse(JSON.stringify({ ...s, at: Date.parse(s.at) })) as unknown;
  return isDeepStrictEqual(plain(a), plain(b));
}

function domain<T>(item: Item | undefined, attribute: 'gate' | 'decision' | 'scan'): T | undefined {
  if (item === undefined) return undefined;
  const value = item[attribute];
  if (typeof value !== 'object' || value === null) {
    throw new Error(`item ${String(item.pk)}/${String(item.sk)} has no ${attribute} map`);
  }
  return value as T;
}

function isConditionFailure(error: unknown): boolean {
  return error instanceof Error && error.name === 'ConditionalCheckFailedException';
}

type TransactItem = NonNullable<TransactWriteCommandInput['TransactItems']>[number];

function cancellationCodes(error: unknown): (string | undefined)[] | undefined {
  if (!(error instanceof Error) || error.name !== 'TransactionCanceledException') return undefined;
  const reasons: unknown = Reflect.get(error, 'CancellationReasons');
  if (!Array.isArray(reasons)) return undefined;
  return reasons.map((r: unknown) => {
    const code: unknown = typeof r === 'object' && r !== null ? Reflect.get(r, 'Code') : undefined;
    return typeof code === 'string' ? code : undefined;
  });
}

/**
 * What a cancelled transaction means. The items before `auditFrom` are the gate's (and the decision's):
 * a failed condition there is a lost race (`lost`). The items from `auditFrom` on are the audit append: a
 * failed condition or a conflict there means the chain head moved (`moved`: re-read it and re-chain).
 * Anything else (throttling, validation, a conflict on the gate) is an error for the caller to retry.
 */
function cancelKind(error: unknown, auditFrom: number): 'lost' | 'moved' | undefined {
  const codes = cancellationCodes(error);
  if (!codes) return undefined;
  const known = new Set([undefined, 'None', 'ConditionalCheckFailed', 'TransactionConflict']);
  if (!codes.every((c) => known.has(c))) return undefined;
  const gatePart = codes.slice(0, auditFrom);
  if (gatePart.includes('TransactionConflict')) return undefined;
  if (gatePart.includes('ConditionalCheckFailed')) return 'lost';
  const auditPart = codes.slice(auditFrom);
  if (auditPart.includes('ConditionalCheckFailed') || auditPart.includes('TransactionConflict'))
    return 'moved';
  return undefined;
}

/**
 * The VULN# index items go out in TransactWriteItems of plain Puts, never BatchWriteItem: IAM authorises
 * a transaction per action (each Put as dynamodb:PutItem), but BatchWriteItem as one action whether its
 * requests put or delete, so a role granted it could delete audit index items. At most 100 actions per
 * transaction (the API's limit); this many transactions at once. No byte limit is needed besides: an index
 * item's key is at most 2 KB (`indexPk`) and its other attributes are short, so 100 of them stay near
 * 250 KB, far under a transaction's 4 MB.
 */
const INDEX_CHUNK_ITEMS = 100;
const INDEX_CONCURRENCY = 4;
/** Attempts per chunk, the first included, while it is cancelled by conflicts or throttling. */
const INDEX_ATTEMPTS = 8;
/**
 * How long a pending marker whose repair failed waits before the sweep tries it again: the first wait, then
 * doubling with each failure up to the last. The sweep runs every minute.
 */
export const REPAIR_BACKOFF = { firstMs: 60_000, maxMs: 3_600_000 } as const;

/** Items in order, cut into chunks of at most INDEX_CHUNK_ITEMS items. */
export function indexChunks(items: readonly Item[]): Item[][] {
  const chunks: Item[][] = [];
  for (let i = 0; i < items.length; i += INDEX_CHUNK_ITEMS)
    chunks.push(items.slice(i, i + INDEX_CHUNK_ITEMS));
  return chunks;
}

/** Cancellation reasons that say "again, later": nothing about the items themselves is wrong. */
const PASSING_REASONS = new Set(['TransactionConflict', 'ThrottlingError', 'ProvisionedThroughputExceeded']);

/**
 * Whether an index chunk's failure is worth another attempt: a cancellation whose reasons are all conflicts
 * or throttling (with None for the items that were fine). The SDK never retries a cancelled transaction;
 * a throttled request it has already retried by its standard strategy, so it is not tried again here (the
 * attempts would multiply). A validation error, a failed condition or access denied would fail the same
 * way again.
 */
function retryableIndexWrite(error: unknown): boolean {
  const codes = cancellationCodes(error);
  if (!codes) return false;
  return (
    codes.some((c) => c !== undefined && PASSING_REASONS.has(c)) &&
    codes.every((c) => c === 'None' || (c !== undefined && PASSING_REASONS.has(c)))
  );
}

function checkVersion(gate: Gate, expectedVersion: number): void {
  // A gate written at the version it was read at would let the next writer's check pass: a lost update.
  if (gate.version !== expectedVersion + 1) {
    throw new Error(
      `gate ${gateId(gate.key)} has version ${gate.version}; an update from version ${expectedVersion} must write ${expectedVersion + 1}`,
    );
  }
}

/** Inclusive bounds on `decidedAt` (ISO 8601). */
export interface TimeRange {
  readonly from?: string;
  readonly to?: string;
}

export class DynamoStore implements StorePort {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async getGate(key: GateKey): Promise<Gate | undefined> {
    return domain<Gate>(await this.get(gatePk(key), 'GATE'), 'gate');
  }

  async createGate(gate: Gate, audit?: AuditRecord): Promise<boolean> {
    const claim = runClaimItem(gate);
    if (!audit && !claim) return this.conditionalPut(gateItem(gate), 'attribute_not_exists(pk)');
    const create = (Item: Item): TransactItem => ({
      Put: { TableName: this.tableName, Item, ConditionExpression: 'attribute_not_exists(pk)' },
    });
    const items = [create(gateItem(gate)), ...(claim ? [create(claim)] : [])];
    // Two openings of one gate or one run at the same moment (a duplicate delivery, the sweep and a late
    // event) can cancel each other as a conflict rather than a failed condition: once the other has
    // committed, trying again tells which it was.
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.transact(items, audit);
      } catch (error) {
        if (attempt >= CREATE_ATTEMPTS || !cancellationCodes(error)?.includes('TransactionConflict'))
          throw error;
        await new Promise((resolve) => setTimeout(resolve, 10 + Math.random() * 40 * attempt));
      }
    }
  }

  async gateOfRun(actionExecutionId: string): Promise<GateKey | undefined> {
    if (!actionExecutionId) return undefined;
    return domain<GateKey>(await this.get(runPk(actionExecutionId), 'RUN'), 'gate');
  }

  async updateGate(gate: Gate, expectedVersion: number, audit?: AuditRecord): Promise<boolean> {
    checkVersion(gate, expectedVersion);
    if (!audit) {
      return this.conditionalPut(
        gateItem(gate),
        '#version = :expected',
        { '#version': 'version' },
        {
          ':expected': expectedVersion,
        },
      );
    }
    return this.transact([this.gatePut(gate, expectedVersion)], audit);
  }

  async decide(
    decision: StoredDecision,
    gate: Gate,
    expectedVersion: number,
    audit?: AuditRecord,
  ): Promise<boolean> {
    checkVersion(gate, expectedVersion);
    if (gateId(decision.key) !== gateId(gate.key)) {
      throw new Error(`decision for ${gateId(decision.key)} cannot be stored with gate ${gateId(gate.key)}`);
    }
    return this.transact(
      [
        {
          Put: {
            TableName: this.tableName,
            Item: decisionItem(decision),
            ConditionExpression: 'attribute_not_exists(pk)',
          },
        },
        this.gatePut(gate, expectedVersion),
      ],
      audit,
    );
  }

  // ── the audit trail's writes (the items: audit-items.ts) ────────────────────────────────────────────

  /** The chain head of a pipeline (a consistent read); undefined before its first record. */
  async auditHead(pipeline: string): Promise<ChainHead | undefined> {
    const item = await this.get(auditPk(pipeline), HEAD_SK);
    if (!item) return undefined;
    return { pipeline, seq: Number(item.seq), hash: String(item.hash) };
  }

  /**
   * Appends a record alone, without a gate change (tests, tools): the record, the head, the registry and
   * the index items in one transaction; ChainHeadMovedError when the record's place is taken.
   */
  async appendAudit(record: AuditRecord): Promise<void> {
    await this.transact([], record);
  }

  /**
   * Writes a decision record's VULN# index items (TransactWriteItems of plain Puts, at most 100 a call, a
   * few calls at once; idempotent: writing them again writes the same items), then marks its pending
   * marker done. A failure of any chunk leaves the marker for `repairAuditIndexes`.
   */
  async indexAudit(record: AuditRecord): Promise<void> {
    const items = vulnerabilityItems(record);
    if (items.length === 0) return;
    const chunks = indexChunks(items);
    let next = 0;
    let failed = false;
    const worker = async (): Promise<void> => {
      // After a chunk fails no other is started: the marker stays, and the sweep writes them all again.
      while (!failed && next < chunks.length) {
        try {
          await this.transactPuts(chunks[next++]!);
        } catch (error) {
          failed = true;
          throw error;
        }
      }
    };
    // Settled, not Promise.all: no chunk is still being written once this has returned or thrown.
    const settled = await Promise.allSettled(
      Array.from({ length: Math.min(INDEX_CONCURRENCY, chunks.length) }, worker),
    );
    const rejected = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (rejected) throw rejected.reason;
    await this.finishMarker(record);
  }

  /**
   * Marks a pending marker done, by a Put: the functions' roles have no DeleteItem at all, so a finished
   * marker is overwritten as `done` with a TTL, and DynamoDB's own expiry removes it (a day later at the
   * earliest: TTL deletes expired items within a few days).
   */
  private async finishMarker(record: Pick<AuditRecord, 'pipeline' | 'seq'>): Promise<void> {
    await this.doc.send(
      new PutCommand({
        TableName: this.tableName,
        Item: {
          ...pendingItem(record),
          done: true,
          [TTL_ATTRIBUTE]: Math.floor(Date.now() / 1000) + 86_400,
        },
      }),
    );
  }

  /**
   * Finishes the index items of decision records whose writing failed or was cut short: at most `limit` of
   * the pending markers due now, in key order (by pipeline, then seq). A record that fails again is put off
   * (REPAIR_BACKOFF), so that records failing sweep after sweep cannot take every place of the ones behind
   * them. Returns how many records were finished; throws AuditIndexRepairError, once the others are done,
   * when some failed.
   */
  async repairAuditIndexes(at: Date = new Date(), limit = 25): Promise<number> {
    const now = at.getTime();
    // Done and put-off markers wait in the same partition: page past them (a bounded number of pages).
    const markers: Record<string, unknown>[] = [];
    let start: Record<string, unknown> | undefined;
    for (let page = 0; page < 20 && markers.length < limit; page++) {
      const output = await this.doc.send(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: 'pk = :pk',
          FilterExpression:
            'attribute_not_exists(done) AND (attribute_not_exists(retryAt) OR retryAt <= :now)',
          ExpressionAttributeValues: { ':pk': PENDING_PK, ':now': now },
          ConsistentRead: true,
          ...(start ? { ExclusiveStartKey: start } : {}),
        }),
      );
      markers.push(...(output.Items ?? []));
      start = output.LastEvaluatedKey;
      if (!start) break;
    }
    let done = 0;
    const failures: { readonly marker: string; readonly error: unknown }[] = [];
    for (const marker of markers.slice(0, limit)) {
      const pipeline = String(marker.pipeline);
      const seq = Number(marker.seq);
      try {
        const item = await this.get(auditPk(pipeline), auditSk(seq));
        const record = item?.record as AuditRecord | undefined;
        // A marker with nothing left to write (its record gone, or listing no id that is indexed) is done.
        if (record !== undefined && vulnerabilityItems(record).length > 0) await this.indexAudit(record);
        else await this.finishMarker({ pipeline, seq });
        done++;
      } catch (error) {
        failures.push({ marker: `${pipeline}#${seq}`, error });
        await this.putOff(marker, now);
      }
    }
    if (failures.length > 0) throw new AuditIndexRepairError(done, failures);
    return done;
  }

  /**
   * Counts a failed repair on its marker and sets when to try again (1, 2, 4 … minutes, at most an hour),
   * unless the marker was finished meanwhile. Best effort: if this write fails too, the marker is simply due
   * again at the next sweep, and the failure it records is reported by the caller either way.
   */
  private async putOff(marker: Record<string, unknown>, now: number): Promise<void> {
    const failures = (typeof marker.failures === 'number' ? marker.failures : 0) + 1;
    const pipeline = String(marker.pipeline);
    const seq = Number(marker.seq);
    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          Item: {
            ...pendingItem({ pipeline, seq }),
            failures,
            retryAt: now + Math.min(REPAIR_BACKOFF.maxMs, REPAIR_BACKOFF.firstMs * 2 ** (failures - 1)),
          },
          ConditionExpression: 'attribute_not_exists(done)',
        }),
      );
    } catch {
      // See above: nothing is lost, the marker stays due.
    }
  }

  private gatePut(gate: Gate, expectedVersion: number): TransactItem {
    return {
      Put: {
        TableName: this.tableName,
        Item: gateItem(gate),
        ConditionExpression: '#version = :expected',
        ExpressionAttributeNames: { '#version': 'version' },
        ExpressionAttributeValues: { ':expected': expectedVersion },
      },
    };
  }

  /** The audit append's items: the record, the head moved on from the record's predecessor, the registry (with the first record), index items, the pending marker. */
  private auditItems(record: AuditRecord): TransactItem[] {
    const item = guardSize(
      { ...auditRecordItem(record), record: storable(record, 'record') },
      `audit record ${record.pipeline}#${record.seq}`,
    );
    const head: TransactItem =
      record.seq === 1
        ? {
            Put: {
              TableName: this.tableName,
              Item: headItem(record),
              ConditionExpression: 'attribute_not_exists(pk)',
            },
          }
        : {
            Put: {
              TableName: this.tableName,
              Item: headItem(record),
              ConditionExpression: '#seq = :prev AND #hash = :prevHash',
              ExpressionAttributeNames: { '#seq': 'seq', '#hash': 'hash' },
              ExpressionAttributeValues: { ':prev': record.seq - 1, ':prevHash': record.prevHash },
            },
          };
    const items: TransactItem[] = [
      { Put: { TableName: this.tableName, Item: item, ConditionExpression: 'attribute_not_exists(pk)' } },
      head,
      ...transactionalIndexItems(record).map(
        (index): TransactItem => ({ Put: { TableName: this.tableName, Item: index } }),
      ),
    ];
    if (record.seq === 1)
      items.push({ Put: { TableName: this.tableName, Item: registryItem(record.pipeline, record.time) } });
    // Exactly when indexAudit has items to write: a marker it would never finish would be repaired forever.
    if (vulnerabilityItems(record).length > 0)
      items.push({ Put: { TableName: this.tableName, Item: pendingItem(record) } });
    return items;
  }

  /**
   * One TransactWriteItems: the gate's items, then the audit append's. `false` on a lost race (a condition
   * of the gate's items); ChainHeadMovedError when only the append lost its place.
   *
   * No ClientRequestToken of our own: the SDK draws a random one per call and sends it again on its own
   * retries, which makes a retry after a lost answer idempotent. A token derived from the content would let
   * two writers that built the same request (the same gate version and record, in the same millisecond)
   * both be told they won, and one that differs only in its timestamps be refused with
   * IdempotentParameterMismatch instead of losing the race.
   */
  private async transact(gateItems: TransactItem[], audit: AuditRecord | undefined): Promise<boolean> {
    const items = audit ? [...gateItems, ...this.auditItems(audit)] : gateItems;
    try {
      await this.doc.send(new TransactWriteCommand({ TransactItems: items }));
      return true;
    } catch (error) {
      const kind = cancelKind(error, gateItems.length);
      if (kind === 'lost') return false;
      if (kind === 'moved' && audit) throw new ChainHeadMovedError(audit.pipeline, audit.seq);
      throw error;
    }
  }

  /**
   * One chunk of index items as one TransactWriteItems of unconditional Puts, sent again (with jittered
   * backoff) while DynamoDB cancels it for conflicts or throttling of its items (see retryableIndexWrite);
   * any other failure, a throttled request included (the SDK's own retries are spent by then), is thrown.
   */
  private async transactPuts(items: readonly Item[]): Promise<void> {
    const TransactItems = items.map((Item): TransactItem => ({ Put: { TableName: this.tableName, Item } }));
    for (let attempt = 1; ; attempt++) {
      try {
        await this.doc.send(new TransactWriteCommand({ TransactItems }));
        return;
      } catch (error) {
        if (!retryableIndexWrite(error)) throw error;
        if (attempt >= INDEX_ATTEMPTS) {
          throw new Error(
            `TransactWriteItems of ${items.length} VULN# index item(s) still failing after ${INDEX_ATTEMPTS} attempts: ${
              error instanceof Error ? `${error.name}: ${error.message}` : String(error)
            }`,
            { cause: error },
          );
        }
        // Jittered: a sweep repairing the record while its decision still writes it sends the same chunks,
        // which conflict; on one fixed schedule the two would collide on every attempt.
        await new Promise((resolve) =>
          setTimeout(resolve, Math.random() * Math.min(1000, 20 * 2 ** attempt)),
        );
      }
    }
  }

  async getDecision(key: GateKey): Promise<StoredDecision | undefined> {
    return domain<StoredDecision>(await this.get(gatePk(key), 'DECISION'), 'decision');
  }

  async gatesForDigest(digest: string, states: readonly GateState[]): Promise<readonly Gate[]> {
    if (!digest) return [];
    const pages = await Promise.all(
      [...new Set(states)].map((state) =>
        this.query({
          IndexName: INDEX.digest,
          KeyConditionExpression: 'digestPk = :pk AND begins_with(digestSk, :prefix)',
          ExpressionAttributeValues: { ':pk': `DIGEST#${digest}`, ':prefix': `GATE#${state}#` },
        }),
      ),
    );
    return pages.flat().map((item) => domain<Gate>(item, 'gate')!);
  }

  async openGates(): Promise<readonly Gate[]> {
    const shards = Array.from({ length: OPEN_SHARDS }, (_, shard) =>
      this.query({
        IndexName: INDEX.open,
        KeyConditionExpression: 'openPk = :pk',
        ExpressionAttributeValues: { ':pk': `OPEN#${shard}` },
      }),
    );
    const items = (await Promise.all(shards)).flat();
    items.sort((a, b) => byText(String(a.openSk), String(b.openSk)));
    return items.map((item) => domain<Gate>(item, 'gate')!);
  }

  async gateByTokenHash(tokenHash: string): Promise<Gate | undefined> {
    if (!tokenHash) return undefined;
    const items = await this.query({
      IndexName: INDEX.token,
      KeyConditionExpression: 'tokenHash = :hash',
      ExpressionAttributeValues: { ':hash': tokenHash },
    });
    // Tokens are unique per approval; were a hash ever shared, the gate that saw it last is the one acting.
    const gates = items.map((item) => domain<Gate>(item, 'gate')!);
    return gates.sort((a, b) => byText(sortableTime(b.updatedAt), sortableTime(a.updatedAt)))[0];
  }

  async putScan(scan: ScanStatus): Promise<boolean> {
    const item = scanItem(scan);
    const atMs = Date.parse(scan.at);
    for (let attempt = 1; attempt <= SCAN_TIE_ATTEMPTS; attempt++) {
      if (
        await this.conditionalPut(
          item,
          'attribute_not_exists(pk) OR #atMs < :atMs',
          { '#atMs': 'atMs' },
          { ':atMs': atMs },
        )
      ) {
        return true;
      }
      // Not newer: older (kept out), or of the same second, when neither is known to be the newer one.
      const stored = await this.get(String(item.pk), String(item.sk));
      if (stored === undefined) continue;
      if (stored.atMs !== atMs) return false;
      const kept = domain<ScanStatus>(stored, 'scan')!;
      const merged = tiedScan(kept, scan);
      if (sameScan(merged, kept)) return sameScan(kept, scan);
      // Written only over the status read (its revision): another tie written meanwhile is merged again.
      const revised = await this.conditionalPut(
        scanItem(merged),
        stored.rev === undefined ? 'attribute_not_exists(#rev)' : '#rev = :rev',
        { '#rev': 'rev' },
        stored.rev === undefined ? undefined : { ':rev': stored.rev },
      );
      // `false`: the status stored is not this one as given, so the caller reads the store for it.
      if (revised) return sameScan(merged, scan);
    }
    throw new Error(
      `scan status ${scan.digest} in ${scan.registryId}/${scan.repository}: not stored after ${SCAN_TIE_ATTEMPTS} attempts (concurrent writes of the same second)`,
    );
  }

  async getScan(digest: string, registryId: string, repository: string): Promise<ScanStatus | undefined> {
    return domain<ScanStatus>(await this.get(`SCAN#${digest}`, scanSk(registryId, repository)), 'scan');
  }

  /** Audit: a pipeline's decisions, oldest first. */
  async decisionsForPipeline(pipeline: string, range: TimeRange = {}): Promise<readonly StoredDecision[]> {
    return this.decisionsIn(INDEX.pipeline, 'pipelinePk', 'pipelineSk', `PIPELINE#${pipeline}`, range);
  }

  /** Audit: decisions with one outcome, oldest first. */
  async decisionsByOutcome(outcome: Outcome, range: TimeRange = {}): Promise<readonly StoredDecision[]> {
    return this.decisionsIn(INDEX.outcome, 'outcomePk', 'outcomeSk', `OUTCOME#${outcome}`, range);
  }

  /** Audit: the decisions about one image, oldest first. */
  async decisionsForDigest(digest: string): Promise<readonly StoredDecision[]> {
    if (!digest) return [];
    const items = await this.query({
      IndexName: INDEX.digest,
      KeyConditionExpression: 'digestPk = :pk AND begins_with(digestSk, :prefix)',
      ExpressionAttributeValues: { ':pk': `DIGEST#${digest}`, ':prefix': 'DECISION#' },
    });
    return items.map((item) => domain<StoredDecision>(item, 'decision')!);
  }

  private async decisionsIn(
    indexName: string,
    partition: string,
    sort: string,
    value: string,
    range: TimeRange,
  ): Promise<readonly StoredDecision[]> {
    const values: Item = { ':pk': value };
    let condition = `${partition} = :pk`;
    const from = range.from === undefined ? undefined : sortableTime(range.from);
    // The sort key is `<time>#<gate id>`: every key of the instant `to` sorts below `<to>#\uffff`.
    const to = range.to === undefined ? undefined : `${sortableTime(range.to)}#\uffff`;
    if (from !== undefined && to !== undefined) {
      if (from > to) return [];
      condition += ` AND ${sort} BETWEEN :from AND :to`;
      values[':from'] = from;
      values[':to'] = to;
    } else if (from !== undefined) {
      condition += ` AND ${sort} >= :from`;
      values[':from'] = from;
    } else if (to !== undefined) {
      condition += ` AND ${sort} <= :to`;
      values[':to'] = to;
    }
    const items = await this.query({
      IndexName: indexName,
      KeyConditionExpression: condition,
      ExpressionAttributeValues: values,
    });
    return items.map((item) => domain<StoredDecision>(item, 'decision')!);
  }

  private async get(pk: string, sk: string): Promise<Item | undefined> {
    const output = await this.doc.send(
      new GetCommand({ TableName: this.tableName, Key: { pk, sk }, ConsistentRead: true }),
    );
    return output.Item;
  }

  /**
   * A Put under a condition; `false` when another write got there first. The SDK retries a Put whose answer
   * was lost (a 5xx, a timeout, a reset connection) although the first attempt may have landed: the retry then
   * fails its condition against this very write. So a failed condition re-reads the item (consistently) and
   * answers `true` when it carries this write's `rev`, which every item written here has, unique per write.
   */
  private async conditionalPut(
    item: Item,
    condition: string,
    names?: Record<string, string>,
    values?: Item,
  ): Promise<boolean> {
    const rev = item.rev;
    if (typeof rev !== 'string' || rev === '') {
      throw new Error(
        `conditional write of ${String(item.pk)}/${String(item.sk)} needs a string rev unique per write, got ${typeof rev}`,
      );
    }
    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          Item: item,
          ConditionExpression: condition,
          ...(names ? { ExpressionAttributeNames: names } : {}),
          ...(values ? { ExpressionAttributeValues: values } : {}),
        }),
      );
      return true;
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
      const stored = await this.get(String(item.pk), String(item.sk));
      return stored?.rev === rev;
    }
  }

  private async query(input: Omit<QueryCommandInput, 'TableName'>): Promise<Item[]> {
    const items: Item[] = [];
    for await (const page of paginateQuery({ client: this.doc }, { TableName: this.tableName, ...input })) {
      items.push(...(page.Items ?? []));
    }
    return items;
  }
}
