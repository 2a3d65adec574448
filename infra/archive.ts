import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Duration, RemovalPolicy, Stack, Token, Validations } from 'aws-cdk-lib';
import * as athena from 'aws-cdk-lib/aws-athena';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as glue from 'aws-cdk-lib/aws-glue';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import type * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import {
  AUDIT_ITEM_TYPE,
  AUDIT_PK_PREFIX,
  AUDIT_SK_PREFIX,
  PARTITION,
  RECORDS_PREFIX,
} from '../functions/archive/layout.js';
import type { AuditAction, AuditImage, AuditRecord, AuditResolution } from '../shared/audit/record.js';
import type { ExceptionsByState, Violation } from '../shared/decision/record.js';
import type { Severity } from '../shared/findings/finding.js';
import type { GateKey } from '../shared/gate/model.js';
import { PAGES_ON_ANY } from './alarms.js';
import { ARCHIVE_FUNCTION_ENTRY, BUNDLING } from './bundling.js';
import { shown, TollgateConfigError } from './patterns.js';

/*
 * The audit archive: every audit record of the gate's table, also in S3 for years, as JSON lines by date,
 * locked (Object Lock, compliance mode), with a Glue table and an Athena workgroup to query them in SQL.
 *
 *   table stream (NEW_IMAGE) ─▶ event source mapping (INSERTs of type audit; and any MODIFY or REMOVE of an
 *     audit record, which is tampering: counted and paged, never archived) ─▶ archive function
 *     ─▶ s3://<bucket>/records/date=YYYY-MM-DD/<pipeline>-<firstSeq>-<lastSeq>-<hash>.jsonl
 *   Glue table over records/ (partition projection on date: no crawler) ◀─ Athena workgroup (results
 *     encrypted in a bucket of their own)
 */

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

export const ARCHIVE_RETENTION_DEFAULT_DAYS = 400;
/** S3 Object Lock's longest default retention, in days (100 years). */
export const ARCHIVE_RETENTION_MAX_DAYS = 36_500;
/** After this many days, an archived object moves to S3 Glacier Instant Retrieval (still read by Athena). */
export const ARCHIVE_COLD_AFTER_DAYS = 90;
/** Athena query results are throw-away: kept this long. */
export const QUERY_RESULTS_DAYS = 30;
/** The most one query may scan: a runaway query stops there ($5 per TB scanned: about $0.50). */
export const QUERY_SCAN_LIMIT_BYTES = 100 * 1024 ** 3;
/** The archive function's lag that pages: the stream keeps records 24 hours, after which they are lost to it. */
export const ITERATOR_AGE_ALARM_MINUTES = 60;

/**
 * `archiveRetentionDays` checked: whole days from 1 to 36,500 (S3's limit). `key` is the prop or context
 * key the value came from, so the message names it.
 */
export function checkArchiveRetentionDays(key: string, value: unknown): number {
  if (
    typeof value !== 'number' ||
    !Number.isInteger(value) ||
    value < 1 ||
    value > ARCHIVE_RETENTION_MAX_DAYS
  ) {
    throw new TollgateConfigError(
      key,
      `whole days from 1 to ${ARCHIVE_RETENTION_MAX_DAYS} (the Object Lock retention of each archived record)`,
      shown(value),
    );
  }
  return value;
}

// ── the Glue table's columns: the AuditRecord, field for field ───────────────────────────────────────
// Typed by the record's own interfaces, so a field added to AuditRecord (or to a struct in it) does not
// compile until its column is here. Hive names are lower case; the JSON SerDe matches keys case-insensitively
// (`prevHash` → prevhash, `byTollgate` → bytollgate).

type Fields<T> = { readonly [K in keyof Required<T>]: string };

function struct<T>(fields: Fields<T>): string {
  return `struct<${Object.entries(fields as Record<string, string>)
    .map(([name, type]) => `${name.toLowerCase()}:${type}`)
    .join(',')}>`;
}
const arrayOf = (type: string): string => `array<${type}>`;
const STRINGS = arrayOf('string');

// bigint: a policy may allow up to 2^53 - 1 findings, past Athena's int, which would fail every query that
// reads the column.
const VIOLATION = struct<Violation>({
  rule: 'string',
  action: 'string',
  allow: 'bigint',
  count: 'bigint',
  findings: STRINGS,
  findingsOmitted: 'bigint',
  description: 'string',
});

/** The Glue columns, by AuditRecord field (the column is the field's name in lower case). */
export const ARCHIVE_COLUMNS: Fields<AuditRecord> = {
  pipeline: 'string',
  seq: 'bigint',
  prevHash: 'string',
  hash: 'string',
  type: 'string',
  time: 'string',
  actor: 'string',
  gate: struct<GateKey>({
    pipeline: 'string',
    executionId: 'string',
    stage: 'string',
    action: 'string',
    attempt: 'int',
  }),
  image: struct<AuditImage>({ repository: 'string', digest: 'string', tags: STRINGS }),
  outcome: 'string',
  summary: 'string',
  violations: arrayOf(VIOLATION),
  warnings: arrayOf(VIOLATION),
  exceptions: struct<ExceptionsByState>({
    applied: STRINGS,
    expired: STRINGS,
    revoked: STRINGS,
    unused: STRINGS,
    expiringSoon: STRINGS,
  }),
  counts: struct<Record<Severity, number>>({
    CRITICAL: 'int',
    HIGH: 'int',
    MEDIUM: 'int',
    LOW: 'int',
    INFORMATIONAL: 'int',
    UNTRIAGED: 'int',
  }),
  policy: struct<{ name: string; sha256: string }>({ name: 'string', sha256: 'string' }),
  mode: 'string',
  wouldBe: 'string',
  ignored: 'int',
  vulnerabilities: STRINGS,
  vulnerabilitiesTruncated: 'boolean',
  action: struct<AuditAction>({ kind: 'string', status: 'string', answer: 'string', subject: 'string' }),
  resolution: struct<AuditResolution>({
    state: 'string',
    reviewer: 'string',
    sourceIdentity: 'string',
    source: 'string',
    byTollgate: 'boolean',
    status: 'string',
    summary: 'string',
  }),
};

const COLUMN_COMMENTS: Partial<Record<keyof AuditRecord, string>> = {
  pipeline: 'the chain: one per pipeline',
  seq: 'place in the chain, 1, 2, 3, … without gaps',
  type: 'decision | action | resolution',
  time: 'ISO-8601 instant of what is recorded',
  actor: 'tollgate, or the CloudTrail identity of a person',
  outcome: 'APPROVE | REJECT | ESCALATE (decisions)',
  vulnerabilities: 'distinct vulnerability ids the decision saw',
  resolution: 'how the approval ended and who resolved it (resolution records)',
};

export const ARCHIVE_TABLE_NAME = 'records';

// ── the three example queries of the README, also saved in the workgroup ────────────────────────────
// Records may be archived twice (a batch retried after Lambda split it): the queries count a record once,
// by (pipeline, seq). Narrow "date" (the partition) to what you need: it is what a query pays for.

export interface ArchiveQuery {
  readonly name: string;
  readonly description: string;
  readonly sql: string;
}

export const ARCHIVE_QUERIES: readonly ArchiveQuery[] = [
  {
    name: 'approvals-with-cve',
    description: 'Releases Tollgate approved while a given vulnerability was present',
    sql: `SELECT DISTINCT r.pipeline, r.seq, r."time", r.gate.executionid, r.gate.stage, r.gate.action,
       r.image.repository, r.image.digest, r.policy.name AS policy_name, r.policy.sha256 AS policy_sha256,
       r.summary
FROM records r
WHERE r.type = 'decision'
  AND r.outcome = 'APPROVE'
  AND contains(r.vulnerabilities, 'CVE-2024-21538')
  AND r."date" BETWEEN '2025-01-01' AND '2026-12-31'
ORDER BY r."time" DESC`,
  },
  {
    name: 'escalations-approved-by-a-person',
    description: 'Escalations a person approved, by reviewer, with the decision they overrode',
    sql: `WITH escalations AS (
  SELECT DISTINCT r.pipeline, r.seq, r.gate.executionid AS execution_id, r.gate.stage AS stage,
         r.gate.action AS approval_action, coalesce(r.gate.attempt, 1) AS attempt,
         r."time" AS decided_at, r.summary,
         r.policy.name AS policy_name, r.policy.sha256 AS policy_sha256
  FROM records r
  WHERE r.type = 'decision'
    AND r.outcome = 'ESCALATE'
    AND r."date" BETWEEN '2025-01-01' AND '2026-12-31'
),
resolutions AS (
  SELECT r.pipeline, r.gate.executionid AS execution_id, r.gate.stage AS stage,
         r.gate.action AS approval_action, coalesce(r.gate.attempt, 1) AS attempt,
         max_by(r.resolution.reviewer, r.seq)
           FILTER (WHERE r.resolution.reviewer IS NOT NULL AND r.resolution.bytollgate = false) AS reviewer,
         max_by(r.resolution.summary, r.seq)
           FILTER (WHERE r.resolution.reviewer IS NOT NULL AND r.resolution.bytollgate = false) AS reviewer_summary,
         bool_or(r.resolution.state = 'SUCCEEDED') AS approved,
         max(r."time") AS resolved_at
  FROM records r
  WHERE r.type = 'resolution'
    AND r."date" BETWEEN '2025-01-01' AND '2026-12-31'
  GROUP BY r.pipeline, r.gate.executionid, r.gate.stage, r.gate.action, coalesce(r.gate.attempt, 1)
)
SELECT s.reviewer, count(*) OVER (PARTITION BY s.reviewer) AS approvals_by_reviewer,
       e.pipeline, e.execution_id, e.stage, e.approval_action, e.attempt, e.decided_at, s.resolved_at,
       e.summary, s.reviewer_summary, e.policy_name, e.policy_sha256
FROM escalations e
JOIN resolutions s
  ON s.pipeline = e.pipeline AND s.execution_id = e.execution_id
 AND s.stage = e.stage AND s.approval_action = e.approval_action AND s.attempt = e.attempt
WHERE s.reviewer IS NOT NULL
  AND s.approved
ORDER BY s.reviewer, s.resolved_at`,
  },
  {
    name: 'decisions-per-policy-version',
    description: 'Decisions per policy name and version (SHA-256), by outcome',
    sql: `WITH decisions AS (
  SELECT DISTINCT r.pipeline, r.seq, r.outcome, r."time" AS decided_at,
         r.policy.name AS policy_name, r.policy.sha256 AS policy_sha256
  FROM records r
  WHERE r.type = 'decision'
    AND r."date" BETWEEN '2025-01-01' AND '2026-12-31'
)
SELECT d.policy_name, d.policy_sha256, count(*) AS decisions,
       count_if(d.outcome = 'APPROVE') AS approved,
       count_if(d.outcome = 'REJECT') AS rejected,
       count_if(d.outcome = 'ESCALATE') AS escalated,
       min(d.decided_at) AS first_decision, max(d.decided_at) AS last_decision
FROM decisions d
GROUP BY d.policy_name, d.policy_sha256
ORDER BY first_decision`,
  },
];

/** An audit record's keys (AUDIT#<pipeline>, SEQ#<seq>): no other item of the table has both (layout.ts). */
const AUDIT_RECORD_KEYS = {
  pk: { S: lambda.FilterRule.beginsWith(AUDIT_PK_PREFIX) },
  sk: { S: lambda.FilterRule.beginsWith(AUDIT_SK_PREFIX) },
};

/**
 * The event source mapping's filters (ORed; Lambda allows five by default). Audit records are only ever
 * inserted (a Put on `attribute_not_exists(pk)`; no role has UpdateItem or DeleteItem), so anything but the
 * first is tampering, which the function counts (`ArchiveAuditRecordsChanged`, paged) and never archives:
 *   - an INSERT of an item of type audit: a record, archived;
 *   - a MODIFY whose new image is of type audit: a record written over in place;
 *   - a MODIFY or REMOVE at an audit record's keys, whatever the image: a record written over by another kind
 *     of item, deleted, or expired by the table's TTL (a Put that added the TTL attribute is the MODIFY before
 *     it). A NEW_IMAGE stream's REMOVE carries its keys and no image, hence the keys' prefixes; the stream
 *     stays NEW_IMAGE (its records are written once, and nothing else reads it).
 * Gates, decisions, scans, run claims, chain heads (AUDIT#<pipeline> / HEAD, rewritten at every append),
 * the registry, pending markers (AUDIT-PENDING, removed by the TTL once done) and index items match none.
 */
export const ARCHIVE_STREAM_FILTERS: readonly Record<string, unknown>[] = [
  {
    eventName: lambda.FilterRule.isEqual('INSERT'),
    dynamodb: { NewImage: { type: { S: lambda.FilterRule.isEqual(AUDIT_ITEM_TYPE) } } },
  },
  {
    eventName: lambda.FilterRule.isEqual('MODIFY'),
    dynamodb: { NewImage: { type: { S: lambda.FilterRule.isEqual(AUDIT_ITEM_TYPE) } } },
  },
  {
    eventName: lambda.FilterRule.or('MODIFY', 'REMOVE'),
    dynamodb: { Keys: AUDIT_RECORD_KEYS },
  },
];

export interface TollgateArchiveProps {
  /** The gate's table, with its stream on (NEW_IMAGE). */
  readonly table: dynamodb.Table;
  /**
   * The gate's key: the table's (its stream is read through it), the dead-letter queue's and the log group's
   * (its policy must let CloudWatch Logs use it, as `Tollgate`'s does).
   */
  readonly tableKey: kms.IKey;
  /** Where the archive's alarms go. */
  readonly alarmTopic: sns.ITopic;
  /** Object Lock (compliance mode) default retention of each archived object, in days. */
  readonly retentionDays: number;
  /** The function's logs. */
  readonly logRetention: logs.RetentionDays;
  /**
   * For the function's log group, the dead-letter queue, the Glue and Athena resources. Never for the
   * buckets and their key: those are retained whatever this says.
   */
  readonly removalPolicy: RemovalPolicy;
  /** Powertools: the `service` dimension and the metrics namespace. */
  readonly metrics: { readonly namespace: string; readonly service: string };
}

export interface TollgateArchiveAlarms {
  /** Batches the function gave up on (their description, not their records: the table still has them). */
  readonly failedBatches: cloudwatch.Alarm;
  readonly errors: cloudwatch.Alarm;
  /** The function is more than an hour behind the stream, which keeps records 24 hours. */
  readonly iteratorAge: cloudwatch.Alarm;
  /**
   * A batch given up on that Lambda could not describe in the failed-batches queue (`DestinationDeliveryFailures`):
   * the queue's depth never shows it.
   */
  readonly undeliveredFailures: cloudwatch.Alarm;
  /**
   * A record inserted with a hash that does not match its content reached the archive: written so by whoever
   * could put it (a forged or hand-edited record), or corrupt. Not a record changed in place: that is
   * `auditRecordsChanged`.
   */
  readonly hashMismatches: cloudwatch.Alarm;
  /**
   * An audit record was modified (a Put over it) or removed (a DeleteItem, or the table's TTL after someone gave
   * it the TTL attribute) in the table: records are only ever inserted, so this is tampering.
   */
  readonly auditRecordsChanged: cloudwatch.Alarm;
  /**
   * The archive stopped: decisions were made (the gate's `Decisions`) and nothing was archived, in each of two
   * hours running. A stream mapping disabled or deleted invokes nothing, so neither `errors` nor
   * `iteratorAge` (no invocation, no data) would say so.
   */
  readonly stopped: cloudwatch.Alarm;
}

/**
 * The audit archive (see the file's head). Created by `Tollgate` unless its `archive` prop is false; needs
 * the table's stream (NEW_IMAGE).
 */
export class TollgateArchive extends Construct {
  readonly retentionDays: number;
  /** The archive's own key: the archive and the query results. Retained with them. */
  readonly key: kms.Key;
  /** The records: Object Lock in compliance mode, versioned, KMS, retained. */
  readonly bucket: s3.Bucket;
  /** Server access logs of the archive and results buckets (SSE-S3: S3 log delivery cannot use KMS). */
  readonly accessLogsBucket: s3.Bucket;
  /** Athena query results. */
  readonly resultsBucket: s3.Bucket;
  readonly role: iam.Role;
  readonly function: nodejs.NodejsFunction;
  readonly eventSourceMapping: lambda.EventSourceMapping;
  /** Batches the function gave up on: their stream positions (the event source mapping's on-failure destination). */
  readonly failedQueue: sqs.Queue;
  readonly alarms: TollgateArchiveAlarms;
  readonly databaseName: string;
  readonly tableName: string;
  readonly workGroupName: string;
  readonly database: glue.CfnDatabase;
  readonly glueTable: glue.CfnTable;
  readonly workGroup: athena.CfnWorkGroup;
  readonly namedQueries: readonly athena.CfnNamedQuery[];

  constructor(scope: Construct, id: string, props: TollgateArchiveProps) {
    super(scope, id);
    // S3 server access logs delivered under a bucket policy (scoped to the source bucket and account), not
    // the legacy log-delivery ACL; set before the buckets exist, since CDK reads it when it wires them.
    this.node.setContext('@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy', true);
    this.retentionDays = checkArchiveRetentionDays('archiveRetentionDays', props.retentionDays);
    const stack = Stack.of(this);
    const { account, region } = stack;
    const streamArn = props.table.tableStreamArn;
    if (streamArn === undefined) {
      throw new Error('TollgateArchive: the table has no stream; enable it (NEW_IMAGE) before the archive');
    }

    // ── storage ─────────────────────────────────────────────────────────────────────────────────────
    // A key of its own: an auditor who may read the archive gets no use of the gate's key (table, queues,
    // topics), and the key outlives the stack as the locked objects do; deleting it would make them unreadable
    // while Object Lock still forbids deleting them.
    this.key = new kms.Key(this, 'Key', {
      description: `Tollgate ${stack.stackName}: the audit archive and its query results`,
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });

    this.accessLogsBucket = new s3.Bucket(this, 'AccessLogs', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      lifecycleRules: [
        { id: 'expire-access-logs', expiration: Duration.days(this.retentionDays) },
        { id: 'abort-uploads', abortIncompleteMultipartUploadAfter: Duration.days(1) },
      ],
      // Who read the archive is evidence too; and CloudFormation cannot delete a bucket that holds objects.
      removalPolicy: RemovalPolicy.RETAIN,
    });

    // Bucket's optional `isWebsite` does not match IBucket's under exactOptionalPropertyTypes: same object.
    const logsTarget = this.accessLogsBucket as unknown as s3.IBucket;
    this.bucket = new s3.Bucket(this, 'Bucket', {
      // Compliance mode: no one, the root user included, can delete or overwrite an object version before its
      // retention ends, nor shorten it. Versioning is what Object Lock protects, and it requires it.
      objectLockEnabled: true,
      objectLockDefaultRetention: s3.ObjectLockRetention.compliance(Duration.days(this.retentionDays)),
      versioned: true,
      encryption: s3.BucketEncryption.KMS,
      encryptionKey: this.key,
      // One data key per bucket rather than per object: S3 calls KMS rarely.
      bucketKeyEnabled: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      serverAccessLogsBucket: logsTarget,
      serverAccessLogsPrefix: 'archive/',
      // S3's default since September 2024, said here: objects under 128 KB (most batches) do not transition,
      // since Glacier Instant Retrieval bills every object as at least 128 KB.
      transitionDefaultMinimumObjectSize: s3.TransitionDefaultMinimumObjectSize.ALL_STORAGE_CLASSES_128_K,
      lifecycleRules: [
        {
          id: 'records',
          prefix: RECORDS_PREFIX,
          // Transitions keep the object version and its lock; Athena reads Glacier Instant Retrieval.
          transitions: [
            {
              storageClass: s3.StorageClass.GLACIER_INSTANT_RETRIEVAL,
              transitionAfter: Duration.days(ARCHIVE_COLD_AFTER_DAYS),
            },
          ],
          // Current versions never expire: the archive is kept for years. A version becomes noncurrent only
          // when someone deletes its object (a delete marker), which the bucket policy below forbids; it then
          // expires `retentionDays` after that, never before its lock ends (the lock counts from its creation,
          // which is earlier), and S3 lifecycle never removes a locked version anyway.
          noncurrentVersionExpiration: Duration.days(this.retentionDays),
          expiredObjectDeleteMarker: true,
          abortIncompleteMultipartUploadAfter: Duration.days(1),
        },
      ],
      // Compliance: the records must outlive the stack (and CloudFormation could not delete locked objects).
      removalPolicy: RemovalPolicy.RETAIN,
    });
    const records = this.bucket.arnForObjects(`${RECORDS_PREFIX}*`);
    // Create only: a PUT must carry If-None-Match, so no writer (the function included) can add a second
    // version of an archived object; and no one may delete or hide one while this policy stands.
    this.bucket.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'RecordsAreCreatedOnly',
        effect: iam.Effect.DENY,
        principals: [new iam.AnyPrincipal()],
        actions: ['s3:PutObject'],
        resources: [records],
        conditions: { Null: { 's3:if-none-match': 'true' } },
      }),
    );
    this.bucket.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'RecordsAreNeverDeleted',
        effect: iam.Effect.DENY,
        principals: [new iam.AnyPrincipal()],
        actions: ['s3:DeleteObject', 's3:DeleteObjectVersion'],
        resources: [records],
      }),
    );

    this.resultsBucket = new s3.Bucket(this, 'QueryResults', {
      encryption: s3.BucketEncryption.KMS,
      encryptionKey: this.key,
      bucketKeyEnabled: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      serverAccessLogsBucket: logsTarget,
      serverAccessLogsPrefix: 'query-results/',
      lifecycleRules: [
        {
          id: 'expire-results',
          expiration: Duration.days(QUERY_RESULTS_DAYS),
          abortIncompleteMultipartUploadAfter: Duration.days(1),
        },
      ],
      // Results may quote the archive; and CloudFormation cannot delete a bucket that holds objects.
      removalPolicy: RemovalPolicy.RETAIN,
    });

    // ── the function ────────────────────────────────────────────────────────────────────────────────
    this.failedQueue = new sqs.Queue(this, 'FailedBatches', {
      encryption: sqs.QueueEncryption.KMS,
      encryptionMasterKey: props.tableKey,
      dataKeyReuse: Duration.minutes(5),
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
      removalPolicy: props.removalPolicy,
    });
    // The gate's key, whose policy lets CloudWatch Logs use it (`Tollgate`): the archive's own key is for what
    // auditors may read, and outlives the stack; the logs go with the stack.
    const logGroup = new logs.LogGroup(this, 'Logs', {
      encryptionKey: props.tableKey,
      retention: props.logRetention,
      removalPolicy: props.removalPolicy,
    });
    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: 'Tollgate archive: read the table stream, write audit records to the archive',
    });
    const add = (sid: string, actions: string[], resources: string[], conditions?: Record<string, unknown>) =>
      this.role.addToPolicy(
        new iam.PolicyStatement({ sid, actions, resources, ...(conditions ? { conditions } : {}) }),
      );
    const via = (service: string) => ({
      StringEquals: { 'kms:ViaService': `${service}.${region}.amazonaws.com` },
    });
    add('Logs', ['logs:CreateLogStream', 'logs:PutLogEvents'], [logGroup.logGroupArn]);
    // What Lambda's poller calls on the function's behalf (the event source mapping uses this role).
    add(
      'ReadStream',
      ['dynamodb:DescribeStream', 'dynamodb:GetRecords', 'dynamodb:GetShardIterator'],
      [streamArn],
    );
    add('ListStreams', ['dynamodb:ListStreams'], ['*']);
    add('ReadStreamKey', ['kms:Decrypt'], [props.tableKey.keyArn], via('dynamodb'));
    add('FailedBatches', ['sqs:SendMessage'], [this.failedQueue.queueArn]);
    add('FailedBatchesKey', ['kms:Decrypt', 'kms:GenerateDataKey'], [props.tableKey.keyArn], via('sqs'));
    // PutObject alone, on records/ alone: no read, no delete, no retention or legal-hold change.
    add('WriteRecords', ['s3:PutObject'], [records]);
    add('ArchiveKey', ['kms:GenerateDataKey'], [this.key.keyArn], via('s3'));

    this.function = new nodejs.NodejsFunction(this, 'Function', {
      entry: ARCHIVE_FUNCTION_ENTRY,
      handler: 'handler',
      projectRoot: ROOT,
      depsLockFilePath: join(ROOT, 'package-lock.json'),
      description: 'Tollgate: archive audit records from the table stream to S3, as JSON lines by date',
      runtime: lambda.Runtime.NODEJS_22_X,
      architecture: lambda.Architecture.ARM_64,
      memorySize: 512,
      timeout: Duration.minutes(2),
      role: this.role,
      logGroup,
      tracing: lambda.Tracing.ACTIVE,
      environment: {
        TOLLGATE_ARCHIVE_BUCKET: this.bucket.bucketName,
        POWERTOOLS_SERVICE_NAME: props.metrics.service,
        POWERTOOLS_METRICS_NAMESPACE: props.metrics.namespace,
        POWERTOOLS_LOG_LEVEL: 'INFO',
        NODE_OPTIONS: '--enable-source-maps',
      },
      bundling: BUNDLING,
    });
    this.function.node.addDependency(this.role);

    this.eventSourceMapping = new lambda.EventSourceMapping(this, 'StreamMapping', {
      target: this.function,
      eventSourceArn: streamArn,
      // The stream keeps 24 hours: from its oldest record, so a first deployment archives what it still has.
      startingPosition: lambda.StartingPosition.TRIM_HORIZON,
      filters: ARCHIVE_STREAM_FILTERS.map((pattern) => lambda.FilterCriteria.filter(pattern)),
      // Larger objects for Athena, at most a minute late; Lambda also cuts a batch at its 6 MB payload.
      batchSize: 1000,
      maxBatchingWindow: Duration.minutes(1),
      // A failing batch is halved until the record that fails is alone; the others are archived.
      bisectBatchOnError: true,
      retryAttempts: 10,
      // Where a batch goes when its retries are spent: its stream positions, not its records.
      onFailure: { bind: () => ({ destination: this.failedQueue.queueArn }) },
    });
    // Lambda checks the role's stream and queue permissions when it creates the mapping.
    this.eventSourceMapping.node.addDependency(this.role);

    this.alarms = this.createAlarms(props.alarmTopic, props.metrics);

    // ── Glue and Athena ─────────────────────────────────────────────────────────────────────────────
    const base = Token.isUnresolved(stack.stackName) ? 'tollgate' : stack.stackName;
    this.databaseName = `${base.toLowerCase().replace(/[^a-z0-9_]/g, '_')}_audit`;
    this.tableName = ARCHIVE_TABLE_NAME;
    this.workGroupName = `${base}-audit`;

    this.database = new glue.CfnDatabase(this, 'Database', {
      catalogId: account,
      databaseInput: {
        name: this.databaseName,
        description: 'Tollgate audit records (decisions, actions, resolutions), archived from the gate table',
      },
    });
    const location = `s3://${this.bucket.bucketName}/${RECORDS_PREFIX}`;
    this.glueTable = new glue.CfnTable(this, 'Table', {
      catalogId: account,
      databaseName: this.databaseName,
      tableInput: {
        name: this.tableName,
        description:
          'One row per audit record (functions/archive): JSON lines under records/date=YYYY-MM-DD/',
        tableType: 'EXTERNAL_TABLE',
        parameters: {
          EXTERNAL: 'TRUE',
          classification: 'json',
          // Partition projection: Athena computes the date partitions from the query, no crawler and no
          // partition to register, ever.
          'projection.enabled': 'true',
          [`projection.${PARTITION}.type`]: 'date',
          [`projection.${PARTITION}.format`]: 'yyyy-MM-dd',
          [`projection.${PARTITION}.range`]: '2024-01-01,NOW',
          [`projection.${PARTITION}.interval`]: '1',
          [`projection.${PARTITION}.interval.unit`]: 'DAYS',
          // `${date}` is Athena's placeholder, filled in per partition.
          'storage.location.template': `${location}${PARTITION}=\${${PARTITION}}/`,
        },
        partitionKeys: [
          { name: PARTITION, type: 'string', comment: 'UTC date of the record time, YYYY-MM-DD' },
        ],
        storageDescriptor: {
          location,
          inputFormat: 'org.apache.hadoop.mapred.TextInputFormat',
          outputFormat: 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat',
          compressed: false,
          serdeInfo: {
            serializationLibrary: 'org.openx.data.jsonserde.JsonSerDe',
            parameters: {
              // The records' camelCase keys map to Hive's lower-case names.
              'case.insensitive': 'true',
              // A line that is not JSON fails the query rather than being read as nulls.
              'ignore.malformed.json': 'false',
            },
          },
          columns: Object.entries(ARCHIVE_COLUMNS).map(([field, type]) => ({
            name: field.toLowerCase(),
            type: type as string,
            ...(COLUMN_COMMENTS[field as keyof AuditRecord]
              ? { comment: COLUMN_COMMENTS[field as keyof AuditRecord] }
              : {}),
          })),
        },
      },
    });
    this.glueTable.node.addDependency(this.database);

    this.workGroup = new athena.CfnWorkGroup(this, 'WorkGroup', {
      name: this.workGroupName,
      description: 'Tollgate audit archive: SQL over the audit records (results encrypted, scan capped)',
      state: 'ENABLED',
      // With a sandbox's DESTROY, the workgroup goes even if queries were saved in it.
      recursiveDeleteOption: props.removalPolicy === RemovalPolicy.DESTROY,
      workGroupConfiguration: {
        // Clients cannot override where results go, their encryption, or the scan limit.
        enforceWorkGroupConfiguration: true,
        publishCloudWatchMetricsEnabled: true,
        bytesScannedCutoffPerQuery: QUERY_SCAN_LIMIT_BYTES,
        engineVersion: { selectedEngineVersion: 'AUTO' },
        requesterPaysEnabled: false,
        resultConfiguration: {
          outputLocation: `s3://${this.resultsBucket.bucketName}/`,
          expectedBucketOwner: account,
          encryptionConfiguration: { encryptionOption: 'SSE_KMS', kmsKey: this.key.keyArn },
        },
      },
    });

    this.namedQueries = ARCHIVE_QUERIES.map((query) => {
      const named = new athena.CfnNamedQuery(this, `Query-${query.name}`, {
        name: query.name,
        description: query.description,
        database: this.databaseName,
        workGroup: this.workGroupName,
        queryString: query.sql,
      });
      named.node.addDependency(this.workGroup);
      named.node.addDependency(this.glueTable);
      return named;
    });
    for (const resource of [this.database, this.glueTable, this.workGroup, ...this.namedQueries]) {
      resource.applyRemovalPolicy(props.removalPolicy);
    }

    this.acknowledge();
  }

  /**
   * What an auditor needs to query the archive in its workgroup: run queries there, read the Glue table, read
   * the records (never write or delete them) and the results, and use the archive's key through S3. Also what
   * `tollgate audit verify --archive s3://…` reads: every version of every record object (ListBucketVersions,
   * GetObjectVersion), so that a delete marker or a newer version hides nothing from it.
   */
  grantQuery(grantee: iam.IGrantable): void {
    const { account, region, partition } = Stack.of(this);
    const statement = (actions: string[], resources: string[], conditions?: Record<string, unknown>) =>
      grantee.grantPrincipal.addToPrincipalPolicy(
        new iam.PolicyStatement({ actions, resources, ...(conditions ? { conditions } : {}) }),
      );
    statement(
      [
        'athena:StartQueryExecution',
        'athena:StopQueryExecution',
        'athena:GetQueryExecution',
        'athena:GetQueryResults',
        'athena:BatchGetQueryExecution',
        'athena:ListQueryExecutions',
        'athena:GetWorkGroup',
        'athena:GetNamedQuery',
        'athena:BatchGetNamedQuery',
        'athena:ListNamedQueries',
      ],
      [`arn:${partition}:athena:${region}:${account}:workgroup/${this.workGroupName}`],
    );
    statement(
      ['glue:GetDatabase', 'glue:GetTable', 'glue:GetTables', 'glue:GetPartition', 'glue:GetPartitions'],
      [
        `arn:${partition}:glue:${region}:${account}:catalog`,
        `arn:${partition}:glue:${region}:${account}:database/${this.databaseName}`,
        `arn:${partition}:glue:${region}:${account}:table/${this.databaseName}/${this.tableName}`,
      ],
    );
    statement(['s3:GetObject', 's3:GetObjectVersion'], [this.bucket.arnForObjects(`${RECORDS_PREFIX}*`)]);
    statement(['s3:ListBucket', 's3:ListBucketVersions'], [this.bucket.bucketArn], {
      StringLike: { 's3:prefix': [`${RECORDS_PREFIX}*`] },
    });
    statement(['s3:GetBucketLocation'], [this.bucket.bucketArn, this.resultsBucket.bucketArn]);
    statement(
      ['s3:GetObject', 's3:PutObject', 's3:AbortMultipartUpload', 's3:ListMultipartUploadParts'],
      [this.resultsBucket.arnForObjects('*')],
    );
    statement(['s3:ListBucket'], [this.resultsBucket.bucketArn]);
    statement(['kms:Decrypt', 'kms:GenerateDataKey'], [this.key.keyArn], {
      StringEquals: { 'kms:ViaService': `s3.${region}.amazonaws.com` },
    });
  }

  /**
   * What `tollgate audit archive` needs beyond `grantQuery` (which it also needs, to read what the bucket
   * holds) to archive again the records the function gave up on: what the function itself may do, PutObject
   * on records/ (create-only, by the bucket policy) and the archive's key through S3 to encrypt. No read, no
   * delete, no retention or legal-hold change.
   */
  grantArchive(grantee: iam.IGrantable): void {
    const { region } = Stack.of(this);
    grantee.grantPrincipal.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['s3:PutObject'],
        resources: [this.bucket.arnForObjects(`${RECORDS_PREFIX}*`)],
      }),
    );
    grantee.grantPrincipal.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['kms:GenerateDataKey'],
        resources: [this.key.keyArn],
        conditions: { StringEquals: { 'kms:ViaService': `s3.${region}.amazonaws.com` } },
      }),
    );
  }

  private createAlarms(topic: sns.ITopic, metrics: TollgateArchiveProps['metrics']): TollgateArchiveAlarms {
    const action = new cwActions.SnsAction(topic);
    const alarm = (id: string, props: cloudwatch.AlarmProps): cloudwatch.Alarm => {
      const a = new cloudwatch.Alarm(this, id, props);
      a.addAlarmAction(action);
      return a;
    };
    return {
      failedBatches: alarm('FailedBatchesAlarm', {
        alarmDescription:
          'Tollgate: the archive gave up on a batch of audit records after its retries. The message gives its ' +
          'stream positions; the records are still in the table: fix the cause, then archive them again with ' +
          '"tollgate audit archive --table <table> --bucket s3://<archive bucket> --since <a day before>" ' +
          '(--dry-run first; it writes only what the bucket lacks).',
        metric: this.failedQueue.metricApproximateNumberOfMessagesVisible({
          period: Duration.minutes(1),
          statistic: 'Maximum',
        }),
        threshold: 0,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
      errors: alarm('ErrorsAlarm', {
        alarmDescription:
          'Tollgate: the archive function is failing; Lambda retries its batch (its log group says why).',
        metric: this.function.metricErrors({ period: Duration.minutes(5), statistic: 'Sum' }),
        ...PAGES_ON_ANY,
      }),
      // The mapping drops a batch's description it cannot send to the on-failure queue (a permission on the
      // queue or its key) and says so only by this metric.
      undeliveredFailures: alarm('DestinationDeliveryFailuresAlarm', {
        alarmDescription:
          'Tollgate: the archive gave up on a batch of audit records and Lambda could not describe it in the ' +
          "failed-batches queue (the mapping's role or the queue's key refused it): nothing says which records. " +
          'They are still in the table: fix the cause, then archive them again with "tollgate audit archive ' +
          '--table <table> --bucket s3://<archive bucket> --since <a day before>" (--dry-run first).',
        metric: this.function.metric('DestinationDeliveryFailures', {
          period: Duration.minutes(5),
          statistic: 'Sum',
        }),
        ...PAGES_ON_ANY,
      }),
      iteratorAge: alarm('IteratorAgeAlarm', {
        alarmDescription:
          `Tollgate: the archive is more than ${ITERATOR_AGE_ALARM_MINUTES} minutes behind the table stream, ` +
          'which keeps records 24 hours; records older than that leave the stream unarchived.',
        metric: new cloudwatch.Metric({
          namespace: 'AWS/Lambda',
          metricName: 'IteratorAge',
          dimensionsMap: { FunctionName: this.function.functionName },
          statistic: 'Maximum',
          period: Duration.minutes(5),
        }),
        threshold: ITERATOR_AGE_ALARM_MINUTES * 60_000,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
      // A record inserted with a hash that is not its content's: forged or edited before it was put (by whoever
      // may write the table; also one put again, altered, after its original was deleted, whose REMOVE the next
      // alarm sees), or corrupt. It sees only INSERTs: a record changed in place is the next alarm's.
      // Emitted only when it happens: no data is no mismatch.
      hashMismatches: alarm('HashMismatchesAlarm', {
        alarmDescription:
          'Tollgate: an audit record was inserted in the table with a hash that does not match its content ' +
          '(forged or edited before it was written, or put again altered after its original was deleted, or ' +
          'corrupt); it was archived as it is. Run "tollgate audit verify --archive" and look at who wrote to ' +
          'the table (CloudTrail data events).',
        ...everyOne(metrics, 'ArchiveHashMismatches'),
      }),
      // The one place an audit record altered or removed in the table is seen as it happens (the stream's
      // MODIFY and REMOVE of audit records, ARCHIVE_STREAM_FILTERS): otherwise only the next `tollgate audit
      // verify --archive` would say so. Emitted only when it happens.
      auditRecordsChanged: alarm('AuditRecordsChangedAlarm', {
        alarmDescription:
          'Tollgate: an audit record was modified or removed in the table (records are only ever inserted: ' +
          "tampering, or an expiry by the table's TTL after someone gave it the TTL attribute). The archive " +
          'kept the original and did not archive the change; its log gives the keys, the event and who made it ' +
          '(userIdentity dynamodb.amazonaws.com: the TTL). Run "tollgate audit verify --archive" and look at ' +
          'who wrote to the table (CloudTrail data events).',
        ...everyOne(metrics, 'ArchiveAuditRecordsChanged'),
      }),
      stopped: alarm('StoppedAlarm', {
        alarmDescription:
          'Tollgate: the gate made decisions and the archive archived nothing, in each of the last two hours: ' +
          'its stream mapping may be disabled or gone (nothing invokes the function, so no error or lag is ' +
          'seen). The table still has the records while the stream keeps them (24 hours): re-enable the mapping, ' +
          'then archive what the stream lost with "tollgate audit archive".',
        metric: new cloudwatch.MathExpression({
          // Decisions carry their outcome as a dimension: the three are summed. An hour's period, two of them
          // breaching: a decision archived in the next hour's first minute is not a stopped archive.
          expression:
            'IF((FILL(approve, 0) + FILL(reject, 0) + FILL(escalate, 0)) > 0 AND FILL(archived, 0) == 0, 1, 0)',
          usingMetrics: {
            ...Object.fromEntries(
              (['APPROVE', 'REJECT', 'ESCALATE'] as const).map((outcome) => [
                outcome.toLowerCase(),
                new cloudwatch.Metric({
                  namespace: metrics.namespace,
                  metricName: 'Decisions',
                  dimensionsMap: { service: metrics.service, outcome },
                  statistic: 'Sum',
                  period: Duration.hours(1),
                }),
              ]),
            ),
            archived: new cloudwatch.Metric({
              namespace: metrics.namespace,
              metricName: 'ArchivedRecords',
              dimensionsMap: { service: metrics.service },
              statistic: 'Sum',
              period: Duration.hours(1),
            }),
          },
          label: 'hours with decisions and nothing archived',
          period: Duration.hours(1),
        }),
        threshold: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: 2,
        datapointsToAlarm: 2,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
    };
  }

  private acknowledge(): void {
    const stack = Stack.of(this);
    const bucketId = stack.getLogicalId(this.bucket.node.defaultChild as s3.CfnBucket);
    Validations.of(this.role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'Resource "*" is granted only for actions that support no resource-level permissions in IAM: ' +
        'xray:PutTraceSegments and xray:PutTelemetryRecords (added by Lambda active tracing), and ' +
        'dynamodb:ListStreams (which Lambda’s stream poller calls; it returns stream ARNs, no data).',
    });
    Validations.of(this.role).acknowledge({
      id: `AwsSolutions-IAM5[Resource::<${bucketId}.Arn>/${RECORDS_PREFIX}*]`,
      reason:
        'The archive function writes objects whose names it computes at run time (date, pipeline, seq range, ' +
        'hash), only under records/, with s3:PutObject alone; the bucket policy makes every PUT create-only ' +
        '(If-None-Match) and Object Lock keeps each version for the retention.',
    });
    Validations.of(this.function).acknowledge({
      id: 'AwsSolutions-L1',
      reason:
        'nodejs22.x is pinned on purpose: it is the runtime the bundles target (esbuild target node22) and the ' +
        'Node line the gate is tested on; moving to a newer runtime is a tested change, not a silent default.',
    });
    Validations.of(this.failedQueue).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason:
        'This queue is itself the dead-letter destination of the archive’s event source mapping (batches it ' +
        'gave up on); its depth is alarmed, and a queue behind it would only hide the messages.',
    });
  }
}

/**
 * An alarm on one of the archive's own counters, published only when what it counts happens (no data is
 * none): any one in 5 minutes pages.
 */
function everyOne(
  metrics: TollgateArchiveProps['metrics'],
  metricName: string,
): Pick<
  cloudwatch.AlarmProps,
  'metric' | 'threshold' | 'comparisonOperator' | 'evaluationPeriods' | 'treatMissingData'
> {
  return {
    metric: new cloudwatch.Metric({
      namespace: metrics.namespace,
      metricName,
      dimensionsMap: { service: metrics.service },
      statistic: 'Sum',
      period: Duration.minutes(5),
    }),
    ...PAGES_ON_ANY,
  };
}
