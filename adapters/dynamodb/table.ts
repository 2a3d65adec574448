import {
  type AttributeDefinition,
  CreateTableCommand,
  type CreateTableCommandInput,
  DescribeTableCommand,
  type DynamoDBClient,
  type GlobalSecondaryIndex,
  type KeySchemaElement,
  type TableDescription,
} from '@aws-sdk/client-dynamodb';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';

/*
 * The gate's one DynamoDB table (single-table design). README.md in this folder says the same in prose.
 *
 * Base key: `pk` (S) + `sk` (S). Items:
 *
 *   Gate      pk GATE#<pipeline>/<executionId>/<stage>/<action>  sk GATE
 *             attributes: type, state, version, gate (the Gate as a map), and the index keys below
 *   Decision  pk GATE#<same gate id>                              sk DECISION
 *             attributes: type, decision (the StoredDecision as a map), and the index keys below
 *   Scan      pk SCAN#<digest>                                    sk SCAN#<registryId>#<repository>
 *             attributes: type, atMs (the event time in epoch ms), rev, scan (the ScanStatus as a map).
 *             One per registry (account) and repository: a same-named repository of another account (a
 *             delegated administrator's events name its members') is another image's scan. Items written
 *             before the registry was in the key (sk SCAN#<repository>) are no longer found: a gate then asks
 *             Inspector's coverage, as when no scan event came (no counts: two reads a sweep apart settle).
 *   Run claim pk RUN#<actionExecutionId>                          sk RUN
 *             attributes: type, gate (the GateKey of the one gate of that run of an approval), expiresAt:
 *             written with the gate that names its run, so that no second gate can be opened for it
 *
 * The gate and its decision share a partition: a gate's whole story is one item collection.
 *
 * Global secondary indexes (all projecting ALL, so a query answers without a GetItem per item; all sparse:
 * an item is in an index only while it carries that index's key attributes):
 *
 *   by-digest              digestPk DIGEST#<digest>
 *                          digestSk GATE#<state>#<gate id>           gates with an image
 *                                   DECISION#<decidedAt>#<gate id>   decisions with an image
 *     gatesForDigest: one Query per wanted state, `begins_with(digestSk, GATE#<state>#)`, so a state filter
 *     never reads gates of other states and other digests are never in the partition. Audit: decisions of
 *     a digest, in time order.
 *   open-gates             openPk OPEN#<0..3>  openSk <deadline or reconcileAt>#<gate id>
 *     Only WAITING and DECIDED gates, and ACTED or STALE gates the sweep still has to ask whether their
 *     approval ended, or CLOSED (or STALE) ones who answered (`reconcileAt`), carry these attributes; every gate
 *     write is a whole-item Put, so the write that records the end with its reviewer known (or nobody to name),
 *     or a gate past asking, drops them and the gate leaves the index.
 *     Four shards (by a hash of the gate id) keep the sweep's index writes off one hot partition; the sweep
 *     queries all four concurrently. Sorted by deadline: the gates whose scan wait runs out first come first.
 *   by-token               tokenHash <sha-256 of the last approval token>
 *     Only gates that have seen a token. CloudTrail's PutApprovalResult names the token, not the gate.
 *   decisions-by-pipeline  pipelinePk PIPELINE#<pipeline>  pipelineSk <decidedAt>#<gate id>
 *   decisions-by-outcome   outcomePk OUTCOME#<outcome>    outcomeSk <decidedAt>#<gate id>
 *     Audit queries over a time range. Decisions arrive at approval pace (far below a partition's 1,000
 *     writes a second), so an outcome partition is not sharded.
 *   audit-by-day           auditDay DAY#<YYYY-MM-DD>     auditSk <time>#<pipeline>#<seq12>
 *     Audit records by time (`tollgate audit list --since/--until`, `export`): one partition per day.
 *
 * The audit trail (audit-items.ts) reuses decisions-by-pipeline, decisions-by-outcome and by-digest with
 * partition values of its own (`AUDIT#<pipeline>`, `AUDIT#<outcome>`, `AUDIT#<digest>`), and adds only
 * audit-by-day: DynamoDB (and so CloudFormation) creates one GSI per table update, so a table deployed
 * before the audit trail takes it in one deploy. Repository, reviewer and vulnerability are served by
 * index items in the base table (REPO#, REVIEWER#, VULN# partitions), not by indexes.
 *
 * Times in sort keys are normalised to `toISOString()` so that they sort as instants whatever format the
 * event gave. Index reads are eventually consistent: a gate read from an index may be a moment old, and the
 * conditional write that follows (on `version`) turns that into a lost race, never into a lost update.
 *
 * Conditional writes and why:
 *   createGate  Put, attribute_not_exists(pk): the approval event arrives more than once; the first creates.
 *   updateGate  Put, #version = :expected: optimistic concurrency between the handlers and the sweep.
 *   decide      TransactWriteItems [Put decision attribute_not_exists(pk), Put gate #version = :expected]:
 *               a gate is decided once, and the decision and the gate's new state are stored both or
 *               neither, in one round trip.
 *   putScan     Put, attribute_not_exists(pk) OR atMs < :atMs: scan events arrive out of order; an older
 *               one must not overwrite a newer status (the failed condition is the expected outcome). One
 *               of the same time is merged into the stored one (each severity's higher count), written
 *               with #rev = :rev on the revision read.
 *
 * The domain objects are stored as DynamoDB maps, not JSON strings: an auditor can read and filter them in
 * the console, with PartiQL or in a table export, without decoding. The price is that the 400 KB item limit
 * has to be checked by computing the item's size (store.ts), where a string's length would have said it.
 */

export const INDEX = {
  digest: 'by-digest',
  open: 'open-gates',
  token: 'by-token',
  pipeline: 'decisions-by-pipeline',
  outcome: 'decisions-by-outcome',
  day: 'audit-by-day',
} as const;

/** Shards of the open-gates index: the sweep reads them all, so more shards cost more queries. */
export const OPEN_SHARDS = 4;

/** The table's TTL attribute (epoch seconds): finished audit-pending markers and run claims carry it. */
export const TTL_ATTRIBUTE = 'expiresAt';

export interface TableDefinition {
  readonly AttributeDefinitions: AttributeDefinition[];
  readonly KeySchema: KeySchemaElement[];
  readonly GlobalSecondaryIndexes: GlobalSecondaryIndex[];
  readonly BillingMode: NonNullable<CreateTableCommandInput['BillingMode']>;
}

function key(partition: string, sort?: string): KeySchemaElement[] {
  const schema: KeySchemaElement[] = [{ AttributeName: partition, KeyType: 'HASH' }];
  if (sort !== undefined) schema.push({ AttributeName: sort, KeyType: 'RANGE' });
  return schema;
}

function index(name: string, partition: string, sort?: string): GlobalSecondaryIndex {
  return { IndexName: name, KeySchema: key(partition, sort), Projection: { ProjectionType: 'ALL' } };
}

const STRING_ATTRIBUTES = [
  'pk',
  'sk',
  'digestPk',
  'digestSk',
  'openPk',
  'openSk',
  'tokenHash',
  'pipelinePk',
  'pipelineSk',
  'outcomePk',
  'outcomeSk',
  'auditDay',
  'auditSk',
] as const;

/** The table as data: the CDK stack and the local run create the same table from it. */
export const TABLE_DEFINITION: TableDefinition = {
  AttributeDefinitions: STRING_ATTRIBUTES.map(
    (name): AttributeDefinition => ({ AttributeName: name, AttributeType: 'S' }),
  ),
  KeySchema: key('pk', 'sk'),
  GlobalSecondaryIndexes: [
    index(INDEX.digest, 'digestPk', 'digestSk'),
    index(INDEX.open, 'openPk', 'openSk'),
    index(INDEX.token, 'tokenHash'),
    index(INDEX.pipeline, 'pipelinePk', 'pipelineSk'),
    index(INDEX.outcome, 'outcomePk', 'outcomeSk'),
    index(INDEX.day, 'auditDay', 'auditSk'),
  ],
  BillingMode: 'PAY_PER_REQUEST',
};

export interface EnsureTableOptions {
  /** How long to wait for the table to become ACTIVE (real DynamoDB takes seconds, dynalite none). */
  readonly timeoutMs?: number;
}

type TableClient = DynamoDBClient | DynamoDBDocumentClient;

async function describe(client: TableClient, tableName: string): Promise<TableDescription | undefined> {
  try {
    // Both clients accept the low-level command; the union of their `send` overloads does not narrow.
    const output = await (client as DynamoDBClient).send(new DescribeTableCommand({ TableName: tableName }));
    return output.Table;
  } catch (error) {
    if (error instanceof Error && error.name === 'ResourceNotFoundException') return undefined;
    throw error;
  }
}

function sameKey(
  actual: readonly KeySchemaElement[] | undefined,
  expected: readonly KeySchemaElement[],
): boolean {
  return (
    actual !== undefined &&
    actual.length === expected.length &&
    expected.every((e, i) => actual[i]?.AttributeName === e.AttributeName && actual[i]?.KeyType === e.KeyType)
  );
}

/**
 * A table left by an older version of this definition (a persisted local database) would fail on the
 * first query of a missing index; say so up front instead.
 */
function checkShape(table: TableDescription, tableName: string): void {
  const problems: string[] = [];
  if (!sameKey(table.KeySchema, TABLE_DEFINITION.KeySchema)) problems.push('its key is not pk/sk');
  for (const wanted of TABLE_DEFINITION.GlobalSecondaryIndexes) {
    const found = table.GlobalSecondaryIndexes?.find((i) => i.IndexName === wanted.IndexName);
    if (!found) problems.push(`index ${wanted.IndexName} is missing`);
    else if (!sameKey(found.KeySchema, wanted.KeySchema ?? []))
      problems.push(`index ${wanted.IndexName} has another key`);
  }
  if (problems.length > 0) {
    throw new Error(
      `table ${tableName} exists but does not match Tollgate's table definition: ${problems.join('; ')}`,
    );
  }
}

function ready(table: TableDescription): boolean {
  return (
    table.TableStatus === 'ACTIVE' &&
    (table.GlobalSecondaryIndexes ?? []).every(
      (i) => i.IndexStatus === undefined || i.IndexStatus === 'ACTIVE',
    )
  );
}

/** Creates the table unless it exists, then waits until it and its indexes are ACTIVE. */
export async function ensureTable(
  client: TableClient,
  tableName: string,
  options: EnsureTableOptions = {},
): Promise<void> {
  const deadline = Date.now() + (options.timeoutMs ?? 300_000);
  let table = await describe(client, tableName);
  if (!table) {
    try {
      await (client as DynamoDBClient).send(
        new CreateTableCommand({ TableName: tableName, ...structuredClone(TABLE_DEFINITION) }),
      );
    } catch (error) {
      // Another process created it first: wait for theirs.
      if (!(error instanceof Error && error.name === 'ResourceInUseException')) throw error;
    }
    table = await describe(client, tableName);
  }
  for (;;) {
    if (table) {
      checkShape(table, tableName);
      if (ready(table)) return;
    }
    if (Date.now() > deadline) throw new Error(`table ${tableName} did not become ACTIVE in time`);
    await new Promise((resolve) => setTimeout(resolve, 100));
    table = await describe(client, tableName);
  }
}
