import { marshall } from '@aws-sdk/util-dynamodb';
import type { DynamoDBRecord, DynamoDBStreamEvent } from 'aws-lambda';
import { auditRecordItem } from '../adapters/dynamodb/audit-items.js';
import { chainRecord } from '../shared/audit/chain.js';
import type { AuditEntry, AuditRecord } from '../shared/audit/record.js';

/*
 * Real-shaped DynamoDB stream records for the archive's tests: audit items exactly as the audit store writes
 * them (`auditRecordItem`: pk AUDIT#<pipeline>, sk SEQ#<12 digits>, type audit, the record as a map, and the
 * index attributes), marshalled with the store's options, delivered as the stream's NEW_IMAGE.
 */

export function entry(overrides: Partial<AuditEntry> = {}): AuditEntry {
  return {
    type: 'decision',
    time: '2026-03-01T10:00:00.000Z',
    actor: 'tollgate',
    gate: { pipeline: 'payments-api', executionId: 'exec-1', stage: 'Deploy', action: 'TollgateApproval' },
    image: {
      repository: 'payments/api',
      digest: `sha256:${'a'.repeat(64)}`,
      tags: ['1.4.2'],
    },
    outcome: 'ESCALATE',
    summary: 'ESCALATE by policy baseline: fixable-high (1 HIGH: CVE-2024-21538)',
    violations: [
      {
        rule: 'fixable-high',
        action: 'escalate',
        allow: 0,
        count: 1,
        findings: ['CVE-2024-21538'],
        description: 'fixable HIGH findings',
      },
    ],
    warnings: [],
    exceptions: { applied: [], expired: [], revoked: [], unused: [], expiringSoon: [] },
    counts: { CRITICAL: 0, HIGH: 1, MEDIUM: 2, LOW: 0, INFORMATIONAL: 0, UNTRIAGED: 0 },
    policy: { name: 'baseline', sha256: 'b'.repeat(64) },
    vulnerabilities: ['CVE-2024-21538', 'CVE-2023-0001'],
    vulnerabilitiesTruncated: false,
    action: null,
    resolution: null,
    ...overrides,
  };
}

/** A record with every optional part filled in (action and resolution too): for schema coverage. */
export function fullEntry(): AuditEntry {
  return entry({
    // A retried stage's gate: the only records with an attempt.
    gate: {
      pipeline: 'payments-api',
      executionId: 'exec-1',
      stage: 'Deploy',
      action: 'TollgateApproval',
      attempt: 2,
    },
    violations: [
      {
        rule: 'fixable-high',
        action: 'escalate',
        allow: 0,
        count: 3001,
        findings: ['CVE-2024-21538'],
        // A decision too large for one table item: the only records with ids left out.
        findingsOmitted: 3000,
        description: 'fixable HIGH findings',
      },
    ],
    warnings: [
      {
        rule: 'medium',
        action: 'warn',
        allow: 5,
        count: 2,
        findings: ['CVE-2023-0001'],
        findingsOmitted: 1,
        description: 'MEDIUM findings',
      },
    ],
    // An advisory decision's records, and findings set aside by status: the only records with these.
    mode: 'advisory',
    wouldBe: 'REJECT',
    ignored: 1,
    exceptions: {
      applied: ['EX-1'],
      expired: ['EX-2'],
      revoked: ['EX-3'],
      unused: ['EX-4'],
      expiringSoon: ['EX-5'],
    },
    action: { kind: 'approval-result', status: 'Approved', answer: 'accepted', subject: 'Tollgate: APPROVE' },
    resolution: {
      state: 'SUCCEEDED',
      reviewer: 'arn:aws:sts::123456789012:assumed-role/SecurityEngineer/alice',
      sourceIdentity: 'alice@example.com',
      source: 'listing',
      byTollgate: false,
      status: 'Approved',
      summary: 'accepted risk',
    },
  });
}

/** A chain of records for `pipeline`, one per entry, hashed as the audit store hashes them. */
export function chain(pipeline: string, entries: readonly AuditEntry[]): AuditRecord[] {
  const out: AuditRecord[] = [];
  for (const e of entries)
    out.push(chainRecord({ ...e, gate: { ...e.gate, pipeline } }, pipeline, out.at(-1)));
  return out;
}

/** The item the audit store writes for a record. */
export function auditItem(record: AuditRecord): Record<string, unknown> {
  return auditRecordItem(record);
}

let sequence = 1000;

/** Who DynamoDB's TTL is in a stream record of an item it deleted (the Record's `userIdentity`). */
export const TTL_IDENTITY = { type: 'Service', principalId: 'dynamodb.amazonaws.com' } as const;

/**
 * A stream record of `item`, as Lambda delivers it from a NEW_IMAGE stream: an INSERT's or MODIFY's new image;
 * a REMOVE carries the item's keys and no image at all (NEW_IMAGE has no old image). `userIdentity` only
 * for a TTL deletion, as DynamoDB writes it.
 */
export function streamRecord(
  item: Record<string, unknown>,
  eventName: DynamoDBRecord['eventName'] = 'INSERT',
  userIdentity?: typeof TTL_IDENTITY,
): DynamoDBRecord {
  const image = marshall(item, {
    removeUndefinedValues: true,
    convertClassInstanceToMap: false,
  }) as NonNullable<NonNullable<DynamoDBRecord['dynamodb']>['NewImage']>;
  sequence++;
  return {
    eventID: `event-${sequence}`,
    eventName,
    eventVersion: '1.1',
    eventSource: 'aws:dynamodb',
    awsRegion: 'eu-west-1',
    dynamodb: {
      ApproximateCreationDateTime: 1_772_359_200,
      Keys: { pk: image.pk as { S: string }, sk: image.sk as { S: string } },
      ...(eventName === 'REMOVE' ? {} : { NewImage: image }),
      SequenceNumber: String(sequence).padStart(21, '0'),
      SizeBytes: 1234,
      StreamViewType: 'NEW_IMAGE',
    },
    eventSourceARN:
      'arn:aws:dynamodb:eu-west-1:123456789012:table/Tollgate-Table/stream/2026-03-01T00:00:00.000',
    ...(userIdentity ? { userIdentity } : {}),
  };
}

export const eventOf = (...records: DynamoDBRecord[]): DynamoDBStreamEvent => ({ Records: records });
export const inserts = (records: readonly AuditRecord[]): DynamoDBRecord[] =>
  records.map((r) => streamRecord(auditItem(r)));
