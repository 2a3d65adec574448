import type { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { type Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import type { S3Client } from '@aws-sdk/client-s3';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import middy from '@middy/core';
import type { Context, DynamoDBRecord, DynamoDBStreamEvent } from 'aws-lambda';
import type { RetryOptions } from '../../adapters/aws/retry.js';
import type { AuditRecord } from '../../shared/audit/record.js';
import {
  type ArchiveObject,
  AUDIT_ITEM_TYPE,
  AUDIT_PK_PREFIX,
  AUDIT_SK_PREFIX,
  archiveObjects,
  auditRecordOf,
  hashMatches,
  MalformedAuditItemError,
} from './layout.js';
import { putArchiveObject } from './put.js';

/*
 * The audit archive: the gate table's stream (NEW_IMAGE, filtered by the event source mapping to the audit
 * records: ARCHIVE_STREAM_FILTERS in infra/archive.ts) to JSON lines in S3, by date (functions/archive/layout.ts):
 * the INSERTs of `type = audit`. Records are written once and never updated (a Put on
 * `attribute_not_exists(pk)`), so an INSERT is the whole story of a record.
 *
 * Anything else done to an audit record is tampering, and the mapping delivers it too: a MODIFY of an item of
 * `type = audit` or at an audit record's keys (a Put over the record, or one giving it the table's TTL
 * attribute), and a REMOVE at an audit record's keys (a DeleteItem, or DynamoDB's TTL, whose stream record
 * names dynamodb.amazonaws.com as its userIdentity). Each is counted (`ArchiveAuditRecordsChanged`, which pages)
 * and logged with its keys and who did it, when the stream says; never archived (the archived original stays
 * the truth, and a MODIFY's new image is not the record) and never a failure of the batch.
 *
 * Failures are thrown, never swallowed: Lambda then retries the batch, bisects it to isolate a record that
 * keeps failing, and finally sends the batch's description (not its records) to the dead-letter queue, which
 * pages. Retries overwrite nothing: each PUT is conditional (`If-None-Match: *`), and a key that is already
 * there (412) holds the same records, since the key is a hash of them.
 */

export interface ArchiveDeps {
  readonly s3: S3Client;
  readonly bucket: string;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly retry?: RetryOptions;
  /** PUTs in flight at once. */
  readonly concurrency?: number;
}

export interface ArchiveReport {
  /** Audit records in the batch (after de-duplication within it). */
  readonly records: number;
  /**
   * Stream records that are neither audit INSERTs nor changes of audit records (the event source mapping's
   * filter should leave none).
   */
  readonly ignored: number;
  /** Audit records modified or removed in the table (see AuditRecordChange): logged as errors, not archived. */
  readonly changed: number;
  readonly objects: number;
  readonly written: number;
  /** Objects already in the bucket: a retried batch. */
  readonly alreadyArchived: number;
  /** Records whose hash is not that of their content: archived as they are, and logged as errors. */
  readonly hashMismatches: number;
}

/** Sets (SS, NS, BS) as sorted arrays and binaries as base64: the archive holds JSON. */
function plain(value: unknown): unknown {
  if (value instanceof Set) {
    return [...value].map(plain).sort((a, b) => (String(a) < String(b) ? -1 : String(a) > String(b) ? 1 : 0));
  }
  if (value instanceof Uint8Array) return Buffer.from(value).toString('base64');
  if (Array.isArray(value)) return value.map(plain);
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  }
  return value;
}

/** Where a stream record came from, for messages: its event id and the item's keys, never its content. */
function describe(record: DynamoDBRecord): string {
  const keys = record.dynamodb?.Keys;
  return `stream record ${record.eventID ?? '?'} (pk ${keys?.pk?.S ?? '?'}, sk ${keys?.sk?.S ?? '?'})`;
}

/**
 * A MODIFY or REMOVE of an audit record in the table: of an item whose keys are an audit record's, or whose
 * image is of `type = audit`. Only what names it and who did it: never the item's content.
 */
export interface AuditRecordChange {
  readonly eventID: string | undefined;
  readonly eventName: 'MODIFY' | 'REMOVE';
  readonly pk: string | undefined;
  readonly sk: string | undefined;
  /** A MODIFY's new image's `type` (another than audit: the record was written over by another kind of item). */
  readonly newType?: string;
  /** Who made the change, when the stream says: DynamoDB's TTL is `Service`, `dynamodb.amazonaws.com`. */
  readonly userIdentity?: { readonly type?: string; readonly principalId?: string };
  /** The stream record's ApproximateCreationDateTime (epoch seconds). */
  readonly approximateTime?: number;
}

/** The text of a stream record's string attribute, or undefined. */
function text(value: { S?: string } | undefined): string | undefined {
  return typeof value?.S === 'string' ? value.S : undefined;
}

/** The stream record as an AuditRecordChange when it is a MODIFY or REMOVE of an audit record, else undefined. */
export function auditRecordChange(streamRecord: DynamoDBRecord): AuditRecordChange | undefined {
  const { eventName } = streamRecord;
  if (eventName !== 'MODIFY' && eventName !== 'REMOVE') return undefined;
  const data = streamRecord.dynamodb;
  const pk = text(data?.Keys?.pk);
  const sk = text(data?.Keys?.sk);
  const auditKeys = pk?.startsWith(AUDIT_PK_PREFIX) === true && sk?.startsWith(AUDIT_SK_PREFIX) === true;
  // A NEW_IMAGE stream's REMOVE has no image; a MODIFY's new image may be of any type (or none).
  const newType = text(data?.NewImage?.type);
  const oldType = text(data?.OldImage?.type);
  if (!auditKeys && newType !== AUDIT_ITEM_TYPE && oldType !== AUDIT_ITEM_TYPE) return undefined;
  const identity: unknown = streamRecord.userIdentity;
  const field = (name: string): string | undefined => {
    const v: unknown =
      typeof identity === 'object' && identity !== null ? Reflect.get(identity, name) : undefined;
    return typeof v === 'string' ? v : undefined;
  };
  const who = { type: field('type'), principalId: field('principalId') };
  const at = data?.ApproximateCreationDateTime;
  return {
    eventID: streamRecord.eventID,
    eventName,
    pk,
    sk,
    ...(eventName === 'MODIFY' ? { newType: newType ?? '(none)' } : {}),
    ...(who.type !== undefined || who.principalId !== undefined
      ? {
          userIdentity: {
            ...(who.type !== undefined ? { type: who.type } : {}),
            ...(who.principalId !== undefined ? { principalId: who.principalId } : {}),
          },
        }
      : {}),
    ...(typeof at === 'number' ? { approximateTime: at } : {}),
  };
}

/**
 * The audit records of a batch, in order; the changes of audit records (never archived); other records
 * counted as ignored. A broken audit INSERT throws; a change never does.
 */
export function auditRecordsOf(event: DynamoDBStreamEvent): {
  records: AuditRecord[];
  ignored: number;
  changed: AuditRecordChange[];
} {
  const records: AuditRecord[] = [];
  const changed: AuditRecordChange[] = [];
  let ignored = 0;
  for (const streamRecord of event.Records ?? []) {
    const change = auditRecordChange(streamRecord);
    if (change) {
      changed.push(change);
      continue;
    }
    const image = streamRecord.dynamodb?.NewImage;
    if (streamRecord.eventName !== 'INSERT' || image === undefined) {
      ignored++;
      continue;
    }
    const where = describe(streamRecord);
    let item: Record<string, unknown>;
    try {
      // The stream's AttributeValue and the SDK's are the same JSON; only their TypeScript types differ.
      item = plain(unmarshall(image as Record<string, AttributeValue>)) as Record<string, unknown>;
    } catch (e) {
      throw new MalformedAuditItemError(where, `the image cannot be read: ${(e as Error).message}`);
    }
    if (item.type !== AUDIT_ITEM_TYPE) {
      ignored++;
      continue;
    }
    records.push(auditRecordOf(item, where));
  }
  return { records, ignored, changed };
}

/** Runs `work` over `items`, at most `limit` at once; every item is tried, whatever the others do. */
async function settleAll<T, R>(
  items: readonly T[],
  limit: number,
  work: (item: T) => Promise<R>,
): Promise<PromiseSettledResult<R>[]> {
  const results: PromiseSettledResult<R>[] = new Array(items.length);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      try {
        results[i] = { status: 'fulfilled', value: await work(items[i] as T) };
      } catch (reason) {
        results[i] = { status: 'rejected', reason };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  return results;
}

/** Archives one batch; throws if any object could not be written (after retries of the transient errors). */
export async function archiveBatch(
  event: DynamoDBStreamEvent,
  deps: ArchiveDeps,
  signal?: AbortSignal,
): Promise<ArchiveReport> {
  const { logger, metrics } = deps;
  let parsed: ReturnType<typeof auditRecordsOf>;
  try {
    parsed = auditRecordsOf(event);
  } catch (e) {
    if (e instanceof MalformedAuditItemError) {
      // Nothing of the batch is written: Lambda bisects it until this record fails alone.
      logger.error('archive: an audit item breaks the contract; the batch fails so that it is isolated', {
        where: e.where,
        problem: e.problem,
      });
      metrics.addMetric('ArchiveMalformedItems', MetricUnit.Count, 1);
    }
    throw e;
  }
  // Said before anything is written, whatever the PUTs do: a batch retried says it again, which the alarm
  // (any in five minutes) does not mind.
  for (const change of parsed.changed) {
    logger.error(
      'archive: an audit record was modified or removed in the table (tampering: records are only ever ' +
        'inserted); not archived, the archived original stands',
      { ...change },
    );
  }
  if (parsed.changed.length > 0) {
    metrics.addMetric('ArchiveAuditRecordsChanged', MetricUnit.Count, parsed.changed.length);
  }
  const mismatched = parsed.records.filter((r) => !hashMatches(r));
  for (const r of mismatched) {
    logger.error('archive: a record whose hash is not that of its content; archived as it is', {
      pipeline: r.pipeline,
      seq: r.seq,
    });
  }

  const objects = archiveObjects(parsed.records);
  // Each PUT conditional, 412 read as already there, 409 and transient errors retried (put.ts).
  const put = (object: ArchiveObject) => putArchiveObject(deps.s3, deps.bucket, object, deps.retry, signal);
  const results = await settleAll(objects, deps.concurrency ?? 8, put);

  const failed: string[] = [];
  let written = 0;
  let already = 0;
  results.forEach((result, i) => {
    const key = objects[i]?.key ?? '?';
    if (result.status === 'rejected') {
      const e = result.reason as Error;
      failed.push(`${key}: ${e?.name ?? 'Error'}: ${e?.message ?? String(e)}`);
    } else if (result.value === 'written') {
      written++;
    } else {
      already++;
    }
  });
  const report: ArchiveReport = {
    records: objects.reduce((n, o) => n + o.records, 0),
    ignored: parsed.ignored,
    changed: parsed.changed.length,
    objects: objects.length,
    written,
    alreadyArchived: already,
    hashMismatches: mismatched.length,
  };
  metrics.addMetric('ArchivedRecords', MetricUnit.Count, failed.length === 0 ? report.records : 0);
  metrics.addMetric('ArchiveObjectsWritten', MetricUnit.Count, written);
  metrics.addMetric('ArchiveObjectsAlreadyThere', MetricUnit.Count, already);
  if (report.ignored > 0) metrics.addMetric('ArchiveIgnoredStreamRecords', MetricUnit.Count, report.ignored);
  if (mismatched.length > 0) metrics.addMetric('ArchiveHashMismatches', MetricUnit.Count, mismatched.length);

  if (failed.length > 0) {
    logger.error('archive: objects not written; the batch fails and Lambda retries it', {
      ...report,
      failed: failed.slice(0, 10),
    });
    throw new Error(
      `archive: ${failed.length} of ${objects.length} object(s) not written: ${failed.slice(0, 3).join('; ')}`,
    );
  }
  logger.info('archive: batch archived', {
    ...report,
    keys: objects.slice(0, 20).map((o) => o.key),
  });
  return report;
}

/** The Lambda handler: Powertools logger and metrics around `archiveBatch`, stopping short of the timeout. */
export function archiveHandler(deps: ArchiveDeps) {
  // Its own deadline aborts the work (below); middy's early timeout would leave it running (see gateHandler).
  return middy<DynamoDBStreamEvent, ArchiveReport, Error, Context>({ timeoutEarlyInMillis: 0 })
    .use(injectLambdaContext(deps.logger, { resetKeys: true }))
    .use(logMetrics(deps.metrics, { captureColdStartMetric: true }))
    .handler(async (event, context) => {
      const remaining =
        typeof context?.getRemainingTimeInMillis === 'function' ? context.getRemainingTimeInMillis() : 0;
      // Retries stop a few seconds before Lambda would kill the invocation, so the error says what failed.
      const signal = remaining > 0 ? AbortSignal.timeout(Math.max(1_000, remaining - 5_000)) : undefined;
      return archiveBatch(event, deps, signal);
    });
}
