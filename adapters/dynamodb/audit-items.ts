import { createHash } from 'node:crypto';
import { type AuditRecord, resolutionNames } from '../../shared/audit/record.js';

/*
 * The audit trail's items (see README.md in this folder, "Audit trail"). Pure: the store writes them, the
 * audit store reads them, the benchmark and tests may write them directly.
 *
 *   record     pk AUDIT#<pipeline>   sk SEQ#<seq, 12 digits>   type audit
 *              record (the AuditRecord as a map, exactly), time, pipeline, seq, and the index keys:
 *                pipelinePk AUDIT#<pipeline>        pipelineSk <time>#<seq12>            decisions-by-pipeline
 *                outcomePk  AUDIT#<outcome>         outcomeSk  <time>#<pipeline>#<seq12> decisions-by-outcome
 *                digestPk   AUDIT#<digest>          digestSk   <time>#<pipeline>#<seq12> by-digest
 *                auditDay   DAY#<YYYY-MM-DD>        auditSk    <time>#<pipeline>#<seq12> audit-by-day
 *   head       pk AUDIT#<pipeline>   sk HEAD                   type audit-head: seq, hash, time
 *   registry   pk AUDIT-PIPELINES    sk <pipeline>             type audit-pipeline: pipeline, firstTime
 *              (written with the pipeline's first record; its last time and count are on its head)
 *   index      pk REPO#<repository> | REVIEWER#<identity> | VULN#<vulnerability id>
 *              (a value that would make the key longer than DynamoDB's 2,048 bytes: <kind>-SHA256#<hex>)
 *              sk <time>#<pipeline>#<seq12>                    type audit-index: recordPk, recordSk,
 *                                                              pipeline, seq, time
 *   pending    pk AUDIT-PENDING      sk <pipeline>#<seq12>     type audit-pending: pipeline, seq
 *              (a decision whose VULN# items are not all written yet; the sweep finishes them), after a
 *              failed repair also failures, retryAt; once finished done and the table's TTL attribute
 *
 * The record, head, registry, REPO# and REVIEWER# items are written in the same TransactWriteItems as the
 * gate change they record; VULN# items (up to VULNERABILITY_LIMIT per decision) after it, by TransactWriteItems
 * of up to 100 plain Puts each (never BatchWriteItem, which IAM cannot restrict to puts: see the store).
 * Index items are derived data: they are not part of the chain, and writing one twice writes the same item.
 */

type Item = Record<string, unknown>;

export const AUDIT_TYPE = {
  record: 'audit',
  head: 'audit-head',
  pipeline: 'audit-pipeline',
  index: 'audit-index',
  pending: 'audit-pending',
} as const;

export const PIPELINES_PK = 'AUDIT-PIPELINES';
export const PENDING_PK = 'AUDIT-PENDING';
export const HEAD_SK = 'HEAD';

export type IndexKind = 'REPO' | 'REVIEWER' | 'VULN';

export function seqText(seq: number): string {
  return String(seq).padStart(12, '0');
}

export function auditPk(pipeline: string): string {
  return `AUDIT#${pipeline}`;
}

export function auditSk(seq: number): string {
  return `SEQ#${seqText(seq)}`;
}

/**
 * Times in sort keys sort as instants only in one format (`toISOString`); a text that is no time is kept. A
 * record read back from a table someone edited may hold anything there (no time, a number, a map): that is
 * kept as its text, so the keys built from it are strings still and the record can be named (`verify` says
 * `unindexed`, see `timeDamage`), rather than the read failing on it.
 */
export function auditTime(text: string): string {
  const value: unknown = text;
  if (typeof value !== 'string') return String(value);
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? value : new Date(ms).toISOString();
}

/** The sort key every audit index shares: time, then the record's place (unique, and tells the record). */
export function auditSortKey(record: Pick<AuditRecord, 'time' | 'pipeline' | 'seq'>): string {
  return `${auditTime(record.time)}#${record.pipeline}#${seqText(record.seq)}`;
}

export function dayOf(time: string): string {
  return auditTime(time).slice(0, 10);
}

/** The record's item, with the keys of the indexes that serve it (each only when the record has the value). */
export function auditRecordItem(record: AuditRecord): Item {
  const time = auditTime(record.time);
  const sort = auditSortKey(record);
  const item: Item = {
    pk: auditPk(record.pipeline),
    sk: auditSk(record.seq),
    type: AUDIT_TYPE.record,
    record,
    time,
    pipeline: record.pipeline,
    seq: record.seq,
    pipelinePk: `AUDIT#${record.pipeline}`,
    pipelineSk: `${time}#${seqText(record.seq)}`,
    auditDay: `DAY#${time.slice(0, 10)}`,
    auditSk: sort,
  };
  if (record.outcome) {
    item.outcomePk = `AUDIT#${record.outcome}`;
    item.outcomeSk = sort;
  }
  const digest = record.image?.digest;
  if (digest) {
    item.digestPk = `AUDIT#${digest}`;
    item.digestSk = sort;
  }
  return item;
}

/** DynamoDB's limit on a partition key value, in bytes of UTF-8. */
export const PARTITION_KEY_BYTES = 2048;

/**
 * The index item's partition key. A value too long for a key (a scanner's id, an identity: nothing Tollgate
 * limits) is keyed by its SHA-256 instead, under a prefix no short value can take (`VULN-SHA256#`, not
 * `VULN#`), so it is still written and still found by the same value: DynamoDB would refuse the item, the
 * whole transaction with it, and every retry after.
 */
export function indexPk(kind: IndexKind, value: string): string {
  const pk = `${kind}#${value}`;
  if (Buffer.byteLength(pk, 'utf8') <= PARTITION_KEY_BYTES) return pk;
  return `${kind}-SHA256#${createHash('sha256').update(value, 'utf8').digest('hex')}`;
}

const INDEX_PK = /^(REPO|REVIEWER|VULN)(?:-SHA256)?#/;

/**
 * The kind of an index item's partition key, or undefined for any other item's. Callers that pick out
 * index writes by their keys (the benchmark, fault injection, tests) must use this rather than a
 * `VULN#` prefix: a hashed key (`VULN-SHA256#…`, see indexPk) is the same kind of item.
 */
export function indexKind(pk: unknown): IndexKind | undefined {
  if (typeof pk !== 'string') return undefined;
  return INDEX_PK.exec(pk)?.[1] as IndexKind | undefined;
}

/**
 * Whether a TransactWriteItems' items are all VULN# index items (a chunk that `indexAudit` writes after the
 * record's own transaction), hashed keys included; a transaction of no items is none.
 */
export function vulnIndexWrite(transactItems: unknown): boolean {
  return (
    Array.isArray(transactItems) &&
    transactItems.length > 0 &&
    transactItems.every((t: unknown) => {
      const put: unknown = typeof t === 'object' && t !== null ? Reflect.get(t, 'Put') : undefined;
      const item: unknown = typeof put === 'object' && put !== null ? Reflect.get(put, 'Item') : undefined;
      const pk: unknown = typeof item === 'object' && item !== null ? Reflect.get(item, 'pk') : undefined;
      return indexKind(pk) === 'VULN';
    })
  );
}

export function indexItem(kind: IndexKind, value: string, record: AuditRecord): Item {
  return {
    pk: indexPk(kind, value),
    sk: auditSortKey(record),
    type: AUDIT_TYPE.index,
    recordPk: auditPk(record.pipeline),
    recordSk: auditSk(record.seq),
    pipeline: record.pipeline,
    seq: record.seq,
    time: auditTime(record.time),
  };
}

/** The REPO# and REVIEWER# items: written with the record, in its transaction. */
export function transactionalIndexItems(record: AuditRecord): Item[] {
  const items: Item[] = [];
  const repository = record.image?.repository;
  if (repository) items.push(indexItem('REPO', repository, record));
  // Under the identity, each of its short names (alice, SecurityEngineer/alice) and the session's source
  // identity: an auditor asks for any, and each is one Query.
  if (record.resolution) {
    for (const name of resolutionNames(record.resolution)) items.push(indexItem('REVIEWER', name, record));
  }
  return items;
}

/** The VULN# items of a decision record: written after it (TransactWriteItems of up to 100 Puts each). */
export function vulnerabilityItems(record: AuditRecord): Item[] {
  return [...new Set(record.vulnerabilities)]
    .filter((id) => id !== '')
    .map((id) => indexItem('VULN', id, record));
}

export function headItem(record: AuditRecord): Item {
  return {
    pk: auditPk(record.pipeline),
    sk: HEAD_SK,
    type: AUDIT_TYPE.head,
    pipeline: record.pipeline,
    seq: record.seq,
    hash: record.hash,
    time: auditTime(record.time),
  };
}

export function pendingKey(record: Pick<AuditRecord, 'pipeline' | 'seq'>): { pk: string; sk: string } {
  return { pk: PENDING_PK, sk: `${record.pipeline}#${seqText(record.seq)}` };
}

export function pendingItem(record: Pick<AuditRecord, 'pipeline' | 'seq'>): Item {
  return { ...pendingKey(record), type: AUDIT_TYPE.pending, pipeline: record.pipeline, seq: record.seq };
}

/**
 * The registry's item of a pipeline: written once, with its first record (a Put: the functions are granted
 * no UpdateItem). Its last time and record count are on its head.
 */
export function registryItem(pipeline: string, firstTime: string): Item {
  return {
    pk: PIPELINES_PK,
    sk: pipeline,
    type: AUDIT_TYPE.pipeline,
    pipeline,
    firstTime: auditTime(firstTime),
  };
}

/**
 * Every item the store holds for one whole chain (in seq order), for bulk loads by BatchWriteItem
 * (the benchmark and tests only, with their own credentials; no function sends BatchWriteItem): records,
 * index items (REPO#, REVIEWER#, VULN#), the head and the registry item.
 */
export function chainItems(chain: readonly AuditRecord[]): Item[] {
  const first = chain[0];
  const last = chain.at(-1);
  if (!first || !last) return [];
  const items: Item[] = [];
  for (const record of chain) {
    items.push(auditRecordItem(record), ...transactionalIndexItems(record), ...vulnerabilityItems(record));
  }
  items.push(headItem(last), registryItem(first.pipeline, first.time));
  return items;
}
