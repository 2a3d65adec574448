import { createHash } from 'node:crypto';
import { archivedRecordProblem, canonical, hashOf } from '../../shared/audit/chain.js';
import type { AuditRecord } from '../../shared/audit/record.js';

/*
 * Where the archive puts each audit record, as pure functions: the stack (IAM, the Glue table, partition
 * projection) and the function share them, so the two cannot disagree on a prefix or a partition name.
 *
 *   s3://<bucket>/records/date=YYYY-MM-DD/<pipeline>-<firstSeq>-<lastSeq>-<batchHash>.jsonl
 *
 * One object per date (the record's `time`, UTC) and per pipeline of a batch, its records in `seq` order, one
 * per line, each line the record's canonical form (`shared/audit/chain.ts`: sorted keys, no whitespace), so
 * `sha256(line without "hash") = hash` can be checked on the archive alone.
 */

/** The prefix of every archived record: the function may write there and nowhere else. */
export const RECORDS_PREFIX = 'records/';
/** The partition column (Hive style, `date=YYYY-MM-DD`), a string in the Glue table. */
export const PARTITION = 'date';
/** The audit items of the gate's table: `pk` AUDIT#<pipeline>, `sk` SEQ#<seq, 12 digits>, `type` audit. */
export const AUDIT_ITEM_TYPE = 'audit';
/**
 * How an audit record's keys begin (adapters/dynamodb/audit-items.ts: `auditPk`, `auditSk`). No other item
 * has both: a chain's head is AUDIT#<pipeline> / HEAD, the registry and pending markers AUDIT-PIPELINES and
 * AUDIT-PENDING (no `#` after AUDIT), index items REPO#, REVIEWER#, VULN#; a pipeline name holds no `#`. The
 * event source mapping filters a REMOVE on them: a NEW_IMAGE stream's REMOVE carries its keys and no image.
 */
export const AUDIT_PK_PREFIX = 'AUDIT#';
export const AUDIT_SK_PREFIX = 'SEQ#';
export const SEQ_DIGITS = 12;

/** An audit item that breaks the contract: it is not archived, and the batch fails so that it is isolated. */
export class MalformedAuditItemError extends Error {
  constructor(
    readonly where: string,
    readonly problem: string,
  ) {
    super(`archive: ${where}: ${problem}`);
    this.name = 'MalformedAuditItemError';
  }
}

export interface ArchiveObject {
  readonly key: string;
  readonly body: string;
  readonly date: string;
  readonly pipeline: string;
  readonly firstSeq: number;
  readonly lastSeq: number;
  readonly records: number;
}

export const pad = (seq: number): string => String(seq).padStart(SEQ_DIGITS, '0');

/**
 * A pipeline name as a key segment: CodePipeline names are letters, digits, `.`, `@`, `-`, `_`; `@` (and
 * anything else unexpected) becomes `_`. Two names that collide here still get distinct keys: the batch hash
 * covers the records' hashes, which cover their pipelines.
 */
export function keySafe(pipeline: string): string {
  return pipeline.replace(/[^A-Za-z0-9._-]/g, '_');
}

/** The UTC date of an ISO-8601 instant, `YYYY-MM-DD`: the partition of a record. */
export function partitionDate(time: string): string | undefined {
  if (!/^\d{4}-\d{2}-\d{2}T/.test(time)) return undefined;
  const ms = Date.parse(time);
  return Number.isNaN(ms) ? undefined : new Date(ms).toISOString().slice(0, 10);
}

/**
 * The record of an audit item (the stream's NewImage, unmarshalled), after checking what the archive relies
 * on: the item's keys name the record's chain and place, and the fields that place it in the archive are
 * there. The record itself is not otherwise changed.
 */
export function auditRecordOf(item: Readonly<Record<string, unknown>>, where: string): AuditRecord {
  const record = item.record;
  if (typeof record !== 'object' || record === null || Array.isArray(record)) {
    throw new MalformedAuditItemError(where, 'the item has no record map');
  }
  const r = record as Record<string, unknown>;
  // The reader's own check of an archive line (parseArchiveLine): a record it would refuse, once in the
  // Object-Locked bucket, would fail every later `verify --archive` and could never be taken out.
  const problem = archivedRecordProblem(r);
  if (problem) {
    const field = problem.field.startsWith('(') ? 'the record' : `record.${problem.field}`;
    throw new MalformedAuditItemError(where, `${field}: expected ${problem.expected}, got ${problem.got}`);
  }
  const seq = r.seq as number;
  if (item.pk !== `${AUDIT_PK_PREFIX}${r.pipeline}` || item.sk !== `${AUDIT_SK_PREFIX}${pad(seq)}`) {
    throw new MalformedAuditItemError(
      where,
      `the item's keys (${String(item.pk)}, ${String(item.sk)}) are not those of record ${String(r.pipeline)} #${seq}`,
    );
  }
  if (typeof r.time !== 'string' || partitionDate(r.time) === undefined) {
    throw new MalformedAuditItemError(where, 'record.time is not an ISO-8601 instant');
  }
  return record as AuditRecord;
}

/** Whether the record's hash is that of its content (a mismatch is archived as it is, and reported). */
export function hashMatches(record: AuditRecord): boolean {
  return hashOf(record) === record.hash;
}

/**
 * The objects of a batch: one per date and pipeline, records in `seq` order (a record delivered twice in
 * the batch is written once). Keys are deterministic: the same records always give the same key, so a
 * retried batch finds its objects already there (conditional PUT) instead of writing them again.
 */
export function archiveObjects(records: readonly AuditRecord[]): ArchiveObject[] {
  const groups = new Map<string, Map<string, AuditRecord>>();
  for (const record of records) {
    const date = partitionDate(record.time) as string;
    const group = `${date}\u0000${record.pipeline}`;
    let byIdentity = groups.get(group);
    if (!byIdentity) {
      byIdentity = new Map();
      groups.set(group, byIdentity);
    }
    byIdentity.set(`${pad(record.seq)}#${record.hash}`, record);
  }
  return [...groups.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([group, byIdentity]) => {
      const [date = '', pipeline = ''] = group.split('\u0000');
      const sorted = [...byIdentity.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([, r]) => r);
      const first = sorted[0]?.seq ?? 0;
      const last = sorted[sorted.length - 1]?.seq ?? 0;
      const batchHash = createHash('sha256')
        .update(sorted.map((r) => r.hash).join('\n'))
        .digest('hex')
        .slice(0, 16);
      return {
        key: `${RECORDS_PREFIX}${PARTITION}=${date}/${keySafe(pipeline)}-${pad(first)}-${pad(last)}-${batchHash}.jsonl`,
        body: sorted.map((r) => `${canonical(r)}\n`).join(''),
        date,
        pipeline,
        firstSeq: first,
        lastSeq: last,
        records: sorted.length,
      };
    });
}
