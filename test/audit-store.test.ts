import { createHash } from 'node:crypto';
import { ThrottlingException, TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import { DeleteCommand, GetCommand, PutCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  auditPk,
  auditRecordItem,
  auditSk,
  chainItems,
  headItem,
  indexItem,
  indexPk,
  PENDING_PK,
  PIPELINES_PK,
  pendingItem,
  pendingKey,
  transactionalIndexItems,
  vulnerabilityItems,
} from '../adapters/dynamodb/audit-items.js';
import { AuditRecordError, DynamoAuditStore, matchesFilter } from '../adapters/dynamodb/audit-store.js';
import { type LocalDynamo, startLocalDynamo } from '../adapters/dynamodb/local.js';
import {
  AuditIndexRepairError,
  createDocumentClient,
  DynamoStore,
  indexChunks,
  REPAIR_BACKOFF,
} from '../adapters/dynamodb/store.js';
import { ensureTable } from '../adapters/dynamodb/table.js';
import { ChainHeadMovedError, chainRecord } from '../shared/audit/chain.js';
import type { AuditEntry, AuditFilter, AuditRecord } from '../shared/audit/record.js';
import type { Outcome } from '../shared/decision/record.js';

/*
 * The audit store against dynalite: a trail of 3 pipelines over 4 days, written through the store's own
 * append (record, head, registry and index items in one transaction, VULN# items after), then every filter
 * of `tollgate audit list` compared with the same filter applied to the whole trail in memory.
 */

const TABLE = `tollgate-audit-${process.pid}-${Date.now()}`;
const PIPELINES = ['payments-api', 'orders-worker', 'web-frontend'] as const;
const REPOS: Record<string, string> = {
  'payments-api': 'payments/api',
  'orders-worker': 'orders/worker',
  'web-frontend': 'web/frontend',
};
const OUTCOMES: readonly Outcome[] = ['APPROVE', 'REJECT', 'ESCALATE'];
const REVIEWERS = [
  'arn:aws:sts::123456789012:assumed-role/SecurityEngineer/alice',
  'arn:aws:sts::123456789012:assumed-role/SecurityEngineer/bob',
];
const START = Date.parse('2026-11-21T08:00:00.000Z');
const HOUR = 3_600_000;

let dynamo: LocalDynamo;
let store: DynamoStore;
let audit: DynamoAuditStore;
const trail: AuditRecord[] = [];

function entry(pipeline: string, n: number, type: AuditEntry['type'], at: number): AuditEntry {
  const outcome = OUTCOMES[n % 3]!;
  const digest = `sha256:${String((n % 7) + 1).repeat(64)}`;
  return {
    type,
    time: new Date(at).toISOString(),
    actor: type === 'resolution' ? REVIEWERS[n % 2]! : 'tollgate',
    gate: { pipeline, executionId: `exec-${n}`, stage: 'Gate', action: 'TollgateApproval' },
    image: { repository: REPOS[pipeline]!, digest, tags: [`1.${n}.0`] },
    outcome,
    summary: `${outcome} ${pipeline} ${n}`,
    violations: [],
    warnings: [],
    exceptions: { applied: [], expired: [], revoked: [], unused: [], expiringSoon: [] },
    counts: { CRITICAL: n % 2, HIGH: n % 3, MEDIUM: 4, LOW: 1, INFORMATIONAL: 0, UNTRIAGED: 0 },
    policy: { name: 'baseline', sha256: 'e'.repeat(64) },
    vulnerabilities: type === 'decision' ? [`CVE-2026-${1000 + (n % 5)}`, `CVE-2026-${2000 + (n % 3)}`] : [],
    vulnerabilitiesTruncated: false,
    action:
      type === 'action'
        ? { kind: 'approval-result', status: 'Approved', answer: 'accepted', subject: null }
        : null,
    resolution:
      type === 'resolution'
        ? {
            state: 'SUCCEEDED',
            reviewer: REVIEWERS[n % 2]!,
            // Some sessions of the shared role carry who is behind it (sts:SourceIdentity).
            ...(n % 4 === 1 ? { sourceIdentity: 'carol@example.com' } : {}),
            byTollgate: false,
            status: 'Approved',
            summary: 'ok',
          }
        : null,
  };
}

beforeAll(async () => {
  dynamo = await startLocalDynamo();
  await ensureTable(dynamo.client, TABLE);
  store = new DynamoStore(dynamo.client, TABLE);
  audit = new DynamoAuditStore(dynamo.client, TABLE);
  // 3 pipelines × 10 gates, each a decision, an action and (every other gate) a resolution, over 4 days.
  const heads = new Map<string, AuditRecord>();
  let n = 0;
  for (let gate = 0; gate < 10; gate++) {
    for (const pipeline of PIPELINES) {
      n++;
      const at = START + n * 3 * HOUR + PIPELINES.indexOf(pipeline) * 60_000;
      const types: AuditEntry['type'][] =
        gate % 2 === 0 ? ['decision', 'action', 'resolution'] : ['decision', 'action'];
      for (const [i, type] of types.entries()) {
        const record = chainRecord(entry(pipeline, n, type, at + i * 60_000), pipeline, heads.get(pipeline));
        await store.appendAudit(record);
        await store.indexAudit(record);
        heads.set(pipeline, record);
        trail.push(record);
      }
    }
  }
});

afterAll(async () => {
  await dynamo?.close();
});

/** The trail filtered in memory, newest first. */
function expected(filter: AuditFilter): AuditRecord[] {
  return trail
    .filter((r) => matchesFilter(r, filter))
    .sort((a, b) => b.time.localeCompare(a.time) || b.pipeline.localeCompare(a.pipeline) || b.seq - a.seq);
}

async function list(
  filter: AuditFilter,
  pageSize?: number,
  order?: 'newest' | 'oldest',
): Promise<AuditRecord[]> {
  const out: AuditRecord[] = [];
  for await (const r of audit.list(filter, {
    ...(pageSize ? { pageSize } : {}),
    ...(order ? { order } : {}),
  }))
    out.push(r);
  return out;
}

const key = (r: AuditRecord) => `${r.pipeline}#${r.seq}`;

describe('DynamoAuditStore.list', () => {
  const since = new Date('2026-11-22T06:00:00.000Z');
  const until = new Date('2026-11-24T03:00:00.000Z');
  const cases: [string, AuditFilter, string][] = [
    ['pipeline', { pipeline: 'orders-worker' }, 'decisions-by-pipeline'],
    ['pipeline and time range', { pipeline: 'payments-api', since, until }, 'decisions-by-pipeline'],
    ['since and until', { since, until }, 'audit-by-day'],
    ['since only', { since: new Date('2026-11-24T00:00:00.000Z') }, 'audit-by-day'],
    ['until only', { until: new Date('2026-11-22T00:00:00.000Z') }, 'audit-by-day'],
    ['everything', {}, 'audit-by-day'],
    ['outcome', { outcome: 'ESCALATE' }, 'decisions-by-outcome'],
    ['outcome and range', { outcome: 'REJECT', since, until }, 'decisions-by-outcome'],
    ['digest', { digest: `sha256:${'3'.repeat(64)}` }, 'by-digest'],
    ['repository', { repository: 'web/frontend' }, 'REPO# items'],
    ['repository and range', { repository: 'payments/api', since }, 'REPO# items'],
    ['reviewer', { reviewer: REVIEWERS[1]! }, 'REVIEWER# items'],
    ['reviewer by short name', { reviewer: 'bob' }, 'REVIEWER# items'],
    ['reviewer by role and name', { reviewer: 'SecurityEngineer/alice', since }, 'REVIEWER# items'],
    ['reviewer by source identity', { reviewer: 'carol@example.com' }, 'REVIEWER# items'],
    ['vulnerability', { vulnerability: 'CVE-2026-1003' }, 'VULN# items'],
    ['vulnerability and range', { vulnerability: 'CVE-2026-2001', until }, 'VULN# items'],
  ];

  for (const [name, filter, index] of cases) {
    it(`by ${name}: exactly the matching records, newest first, read through ${index} only`, async () => {
      const want = expected(filter);
      expect(want.length).toBeGreaterThan(0);
      const got = await list(filter);
      expect(got.map(key)).toEqual(want.map(key));
      expect(got).toEqual(want);
      expect(audit.stats.index).toBe(index);
      expect(audit.stats.returned).toBe(want.length);
      // Only what is returned is read: one filter, one index, nothing read to be thrown away.
      expect(audit.stats.scanned).toBe(want.length);
      if (index.endsWith('items')) expect(audit.stats.fetched).toBe(want.length);
      else expect(audit.stats.fetched).toBe(0);
    });
  }

  it("reads index items (the table's own) strongly, so a record indexed a moment ago is not missed; an index never", async () => {
    const queries: {
      IndexName: string | undefined;
      ConsistentRead: boolean | undefined;
      pk: string | undefined;
    }[] = [];
    const name = 'capture-queries';
    dynamo.client.middlewareStack.add(
      (next) => async (args) => {
        const request = args.request as { headers?: Record<string, string>; body?: unknown };
        if (request.headers?.['x-amz-target']?.endsWith('.Query')) {
          const body = JSON.parse(String(request.body)) as {
            IndexName?: string;
            ConsistentRead?: boolean;
            ExpressionAttributeValues?: Record<string, { S?: string }>;
          };
          const pk = Object.values(body.ExpressionAttributeValues ?? {}).find((v) => v.S?.includes('#'))?.S;
          queries.push({ IndexName: body.IndexName, ConsistentRead: body.ConsistentRead, pk });
        }
        return next(args);
      },
      { step: 'build', name },
    );
    try {
      for (const filter of [
        { vulnerability: 'CVE-2026-1003' },
        { repository: 'web/frontend' },
        { reviewer: 'bob' },
        { outcome: 'REJECT' as const, since, until },
      ]) {
        expect((await list(filter)).length, JSON.stringify(filter)).toBeGreaterThan(0);
      }
    } finally {
      dynamo.client.middlewareStack.remove(name);
    }
    const items = queries.filter(
      (q) => q.IndexName === undefined && /^(VULN|REPO|REVIEWER)#/.test(q.pk ?? ''),
    );
    expect(items.length).toBeGreaterThanOrEqual(3);
    for (const q of items) expect(q, q.pk).toMatchObject({ ConsistentRead: true });
    // A global secondary index refuses a strong read: never asked of one.
    const gsi = queries.filter((q) => q.IndexName !== undefined);
    expect(gsi.length).toBeGreaterThan(0);
    for (const q of gsi) expect(q.ConsistentRead, q.IndexName).not.toBe(true);
  });

  it('finds a reviewer by short name exactly as by the identity, and nobody by a part of a name', async () => {
    const byArn = (await list({ reviewer: REVIEWERS[0]! })).map(key);
    expect(byArn.length).toBeGreaterThan(0);
    expect((await list({ reviewer: 'alice' })).map(key)).toEqual(byArn);
    expect((await list({ reviewer: 'assumed-role/SecurityEngineer/alice' })).map(key)).toEqual(byArn);
    expect(await list({ reviewer: 'lice' })).toEqual([]);
    // The source identity finds exactly the resolutions whose session had it, whatever its session name.
    const bySource = await list({ reviewer: 'carol@example.com' });
    expect(bySource.length).toBeGreaterThan(0);
    expect(bySource.every((r) => r.resolution?.sourceIdentity === 'carol@example.com')).toBe(true);
    expect(bySource.length).toBe(
      trail.filter((r) => r.resolution?.sourceIdentity === 'carol@example.com').length,
    );
    expect(await list({ reviewer: 'carol' })).toEqual([]);
    expect(await list({ reviewer: 'SecurityEngineer' })).toEqual([]);
  });

  it('applies the other filters to what the index returned (and only to that)', async () => {
    const filter: AuditFilter = { pipeline: 'payments-api', outcome: 'REJECT', type: 'decision' };
    const want = expected(filter);
    expect(want.length).toBeGreaterThan(0);
    expect((await list(filter)).map(key)).toEqual(want.map(key));
    expect(audit.stats.index).toBe('decisions-by-pipeline');
    expect(audit.stats.scanned).toBe(trail.filter((r) => r.pipeline === 'payments-api').length);

    const both: AuditFilter = { vulnerability: 'CVE-2026-1001', pipeline: 'web-frontend' };
    expect((await list(both)).map(key)).toEqual(expected(both).map(key));
    expect(audit.stats.index).toBe('VULN# items');
  });

  it('pages: small pages give the same records, page after page, either order', async () => {
    for (const filter of [
      {},
      { pipeline: 'web-frontend' },
      { vulnerability: 'CVE-2026-2000' },
      { since },
    ] as AuditFilter[]) {
      const want = expected(filter);
      const got = await list(filter, 2);
      expect(got.map(key)).toEqual(want.map(key));
      expect(audit.stats.requests).toBeGreaterThan(Math.floor(want.length / 2));
      expect((await list(filter, 3, 'oldest')).map(key)).toEqual([...want].reverse().map(key));
    }
  });

  it('streams: the first record comes after the first page, not after the whole result', async () => {
    const iterator = audit.list({ pipeline: 'orders-worker' }, { pageSize: 2 })[Symbol.asyncIterator]();
    const first = await iterator.next();
    expect(first.done).toBe(false);
    expect(audit.stats.requests).toBe(1);
    await iterator.return?.(undefined);
  });

  it('returns nothing for an empty range or unknown values', async () => {
    expect(await list({ since: until, until: since })).toEqual([]);
    expect(await list({ pipeline: 'nope' })).toEqual([]);
    expect(await list({ vulnerability: 'CVE-1999-0001' })).toEqual([]);
    expect(
      await list({
        since: new Date('2030-01-01T00:00:00.000Z'),
        until: new Date('2030-01-03T00:00:00.000Z'),
      }),
    ).toEqual([]);
  });
});

describe('DynamoAuditStore.list over records appended out of time order', () => {
  it('reads every day a chain has records on, not only the days from its first record to its head', async () => {
    // A table of its own: one chain whose last appended records carry older times than the one before them
    // (late events: an end redriven from a dead-letter queue, a reviewer's call seen days later).
    const table = `${TABLE}-late`;
    await ensureTable(dynamo.client, table);
    const lateStore = new DynamoStore(dynamo.client, table);
    const lateAudit = new DynamoAuditStore(dynamo.client, table);
    const day = (d: number) => Date.parse(`2026-11-${String(d).padStart(2, '0')}T10:00:00.000Z`);
    let head: AuditRecord | undefined;
    for (const [n, type, d] of [
      [1, 'decision', 20],
      [2, 'decision', 25],
      [3, 'resolution', 21],
      [4, 'resolution', 10],
    ] as const) {
      head = chainRecord(entry('late-events', n, type, day(d)), 'late-events', head);
      await lateStore.appendAudit(head);
    }
    const seqs = async (filter: AuditFilter) => {
      const out: number[] = [];
      for await (const r of lateAudit.list(filter)) out.push(r.seq);
      return out;
    };
    expect(await seqs({})).toEqual([2, 3, 1, 4]);
    expect(await seqs({ since: new Date(day(19)) })).toEqual([2, 3, 1]);
    expect(await seqs({ until: new Date(day(22)) })).toEqual([3, 1, 4]);
  });
});

describe('DynamoAuditStore reads', () => {
  it('gets a record, a chain in seq order, a head and the pipelines', async () => {
    const mine = trail.filter((r) => r.pipeline === 'web-frontend');
    expect(await audit.get('web-frontend', 3)).toEqual(mine[2]);
    expect(await audit.get('web-frontend', 999)).toBeUndefined();
    const chain: AuditRecord[] = [];
    for await (const r of audit.chain('web-frontend', { pageSize: 4 })) chain.push(r);
    expect(chain).toEqual(mine);
    expect(await audit.head('web-frontend')).toEqual({
      pipeline: 'web-frontend',
      seq: mine.length,
      hash: mine.at(-1)!.hash,
      time: mine.at(-1)!.time,
    });
    expect(await audit.head('nope')).toBeUndefined();
    expect(await audit.pipelines()).toEqual([...PIPELINES].sort());
    const registry = await audit.registry();
    expect(registry.find((p) => p.pipeline === 'web-frontend')).toEqual({
      pipeline: 'web-frontend',
      firstTime: mine[0]!.time,
      lastTime: mine.at(-1)!.time,
      records: mine.length,
    });
  });

  it('verifies every chain, and names a record edited in the table', async () => {
    expect(await audit.verify()).toEqual({ ok: true, records: trail.length, problems: [] });
    const pk = auditPk('orders-worker');
    const sk = auditSk(4);
    const { Item } = await dynamo.client.send(new GetCommand({ TableName: TABLE, Key: { pk, sk } }));
    const original = Item!;
    await dynamo.client.send(
      new PutCommand({
        TableName: TABLE,
        Item: {
          ...original,
          record: { ...(original.record as AuditRecord), summary: 'APPROVE (nothing to see)' },
        },
      }),
    );
    try {
      const result = await audit.verify('orders-worker');
      expect(result.ok).toBe(false);
      expect(result.problems).toEqual([
        {
          pipeline: 'orders-worker',
          seq: 4,
          kind: 'changed',
          detail: expect.stringContaining('record 4 was changed'),
        },
      ]);
      expect((await audit.verify()).problems).toHaveLength(1);
    } finally {
      await dynamo.client.send(new PutCommand({ TableName: TABLE, Item: original }));
    }
  });

  it('with the Scan of index items: names a record whose REPO#, REVIEWER# or VULN# item was deleted', async () => {
    // Someone who may delete items hides a record from `list --repository` (or --reviewer, --vulnerability)
    // by deleting its index item: the chain stays whole, so only a look at the index items finds it.
    expect(await audit.verify('orders-worker', await audit.indexItemKeys('orders-worker'))).toMatchObject({
      ok: true,
    });
    const decision = trail.find((r) => r.pipeline === 'orders-worker' && r.vulnerabilities.length > 0)!;
    const resolution = trail.find((r) => r.pipeline === 'orders-worker' && r.resolution?.reviewer)!;
    const cases = [
      [
        transactionalIndexItems(decision)[0]!,
        decision,
        /index item REPO#orders\/worker is missing: list --repository/,
      ],
      [
        transactionalIndexItems(resolution)[1]!,
        resolution,
        /index item REVIEWER#.* is missing: list --reviewer/,
      ],
      [
        vulnerabilityItems(decision)[1]!,
        decision,
        /index item VULN#CVE-2026-\d+ is missing: list --vulnerability/,
      ],
    ] as const;
    for (const [item, record, detail] of cases) {
      const key = { pk: item.pk, sk: item.sk };
      await dynamo.client.send(new DeleteCommand({ TableName: TABLE, Key: key }));
      try {
        // Without the Scan nothing says so; with it, the record is named.
        expect((await audit.verify('orders-worker')).ok).toBe(true);
        const result = await audit.verify('orders-worker', await audit.indexItemKeys());
        expect(result.problems).toEqual([
          {
            pipeline: 'orders-worker',
            seq: record.seq,
            kind: 'unindexed',
            detail: expect.stringMatching(detail),
          },
        ]);
      } finally {
        await dynamo.client.send(new PutCommand({ TableName: TABLE, Item: item }));
      }
    }
  });

  it('an index item the Scan missed but the table has (written meanwhile), or a VULN# item still being written, is not missing', async () => {
    const decision = trail.find((r) => r.pipeline === 'orders-worker' && r.vulnerabilities.length > 0)!;
    const vuln = vulnerabilityItems(decision)[0]!;
    // A Scan that ran before the items were written: each is read before it is called missing.
    expect((await audit.verify('orders-worker', { keys: new Set() })).ok).toBe(true);
    // A VULN# item not written yet, its record's marker not done: indexAudit or the sweep's repair writes it.
    await dynamo.client.send(new DeleteCommand({ TableName: TABLE, Key: { pk: vuln.pk, sk: vuln.sk } }));
    await dynamo.client.send(new PutCommand({ TableName: TABLE, Item: pendingItem(decision) }));
    try {
      expect((await audit.verify('orders-worker', await audit.indexItemKeys())).ok).toBe(true);
    } finally {
      await dynamo.client.send(new PutCommand({ TableName: TABLE, Item: vuln }));
      await dynamo.client.send(new DeleteCommand({ TableName: TABLE, Key: pendingKey(decision) }));
    }
  });

  it("names a record whose index keys were changed, which the chain's hashes cannot see", async () => {
    // The hash covers the record map only: an outcome key removed hides an APPROVE from `list --outcome
    // APPROVE`, and a day key moved hides it from `--since`, while every hash and link still holds.
    const items = (
      await dynamo.client.send(
        new QueryCommand({
          TableName: TABLE,
          KeyConditionExpression: 'pk = :pk AND begins_with(sk, :seq)',
          ExpressionAttributeValues: { ':pk': auditPk('orders-worker'), ':seq': 'SEQ#' },
        }),
      )
    ).Items!;
    const original = items.find((i) => i.outcomePk !== undefined)!;
    const seq = original.seq as number;
    const { outcomePk: _pk, outcomeSk: _sk, ...hidden } = original;
    for (const tampered of [hidden, { ...original, auditDay: 'DAY#2020-01-01' }]) {
      await dynamo.client.send(new PutCommand({ TableName: TABLE, Item: tampered }));
      try {
        const result = await audit.verify('orders-worker');
        expect(result.ok).toBe(false);
        expect(result.problems).toEqual([
          {
            pipeline: 'orders-worker',
            seq,
            kind: 'unindexed',
            detail: expect.stringMatching(
              new RegExp(
                `^record ${seq}'s index keys are not the ones its content gives \\((outcomePk, outcomeSk|auditDay)\\)`,
              ),
            ),
          },
        ]);
      } finally {
        await dynamo.client.send(new PutCommand({ TableName: TABLE, Item: original }));
      }
    }
    expect((await audit.verify('orders-worker')).ok).toBe(true);
  });
});

describe('DynamoStore audit append', () => {
  it('refuses a record whose place is taken, and one chained to an old head', async () => {
    const head = (await store.auditHead('payments-api'))!;
    const mine = trail.filter((r) => r.pipeline === 'payments-api');
    const stale = chainRecord(entry('payments-api', 99, 'decision', START), 'payments-api', mine.at(-2));
    await expect(store.appendAudit(stale)).rejects.toThrow(ChainHeadMovedError);
    const forged = chainRecord(entry('payments-api', 99, 'decision', START), 'payments-api', {
      seq: head.seq,
      hash: 'f'.repeat(64),
    });
    await expect(store.appendAudit(forged)).rejects.toThrow(ChainHeadMovedError);
    expect(await store.auditHead('payments-api')).toEqual(head);
    expect(await audit.get('payments-api', head.seq + 1)).toBeUndefined();
  });

  it('sends each write its own request token, so DynamoDB cannot take a second writer for a retry of the first', async () => {
    // DynamoDB answers a TransactWriteItems whose token it saw in the last 10 minutes as a success when the
    // request is the same: two writers that built the same append must not share a token (dynalite keeps no
    // tokens, so what is sent is what can be checked).
    const tokens: unknown[] = [];
    const name = 'capture-request-token';
    dynamo.client.middlewareStack.add(
      (next) => async (args) => {
        const request = args.request as { headers?: Record<string, string>; body?: unknown };
        if (request.headers?.['x-amz-target']?.endsWith('.TransactWriteItems')) {
          const body =
            typeof request.body === 'string'
              ? request.body
              : Buffer.from(request.body as Uint8Array).toString();
          tokens.push((JSON.parse(body) as { ClientRequestToken?: unknown }).ClientRequestToken);
        }
        return next(args);
      },
      { step: 'build', name },
    );
    const record = chainRecord(entry('token-test', 5, 'decision', START), 'token-test', undefined);
    try {
      await store.appendAudit(record);
      await expect(store.appendAudit(record)).rejects.toThrow(ChainHeadMovedError);
    } finally {
      dynamo.client.middlewareStack.remove(name);
    }
    // Its VULN# items written, its marker done: the repair test counts the markers left.
    await store.indexAudit(record);
    expect(tokens).toHaveLength(2);
    for (const token of tokens) expect(token).toMatch(/^[0-9a-f-]{36}$/);
    expect(tokens[0]).not.toEqual(tokens[1]);
  });

  it('leaves a pending marker until the vulnerability items are written, and the repair finishes them', async () => {
    // A pipeline of its own, 40 days before: the trail the other tests read is not touched (and not after
    // the clock: verify would name a record dated in the future).
    const record = chainRecord(
      {
        ...entry('marker-test', 77, 'decision', START - 40 * 24 * HOUR),
        vulnerabilities: ['CVE-2031-0001', 'CVE-2031-0002'],
      },
      'marker-test',
      undefined,
    );
    await store.appendAudit(record);
    const marker = await dynamo.client.send(
      new GetCommand({ TableName: TABLE, Key: { pk: PENDING_PK, sk: 'marker-test#000000000001' } }),
    );
    expect(marker.Item).toBeDefined();
    const vulnItems = async () =>
      (
        await dynamo.client.send(
          new QueryCommand({
            TableName: TABLE,
            KeyConditionExpression: 'pk = :pk',
            ExpressionAttributeValues: { ':pk': indexPk('VULN', 'CVE-2031-0002') },
          }),
        )
      ).Items ?? [];
    // No VULN# item yet; the record is listed all the same, from its marker.
    expect(await vulnItems()).toEqual([]);
    expect(await list({ vulnerability: 'CVE-2031-0002' })).toEqual([record]);
    expect(await store.repairAuditIndexes()).toBe(1);
    expect(await vulnItems()).toHaveLength(1);
    expect(await list({ vulnerability: 'CVE-2031-0002' })).toEqual([record]);
    expect(await store.repairAuditIndexes()).toBe(0);
    // Finished, the marker is overwritten as done with a TTL (the roles have no DeleteItem).
    const finished = await dynamo.client.send(
      new GetCommand({ TableName: TABLE, Key: { pk: PENDING_PK, sk: 'marker-test#000000000001' } }),
    );
    expect(finished.Item).toMatchObject({ done: true, expiresAt: expect.any(Number) });
    expect(await audit.verify('marker-test')).toEqual({ ok: true, records: 1, problems: [] });
  });
});

/*
 * The VULN# index items go out as TransactWriteItems of plain Puts (IAM authorises each as PutItem; a
 * BatchWriteItem grant would also let the role delete them). A store on a client of its own counts the
 * calls it sends and, when told to, fails some before they leave (in front of dynalite, as the service would).
 */
describe('DynamoStore VULN# index items', () => {
  const DAY = 24 * HOUR;

  interface Sent {
    readonly operation: string;
    readonly items: Record<string, unknown>[];
    /** Transaction actions that are not a Put, or carry a condition. */
    readonly notPlainPuts: number;
  }

  /** `fail(call, n)`: the error the n-th TransactWriteItems (from 1) fails with, if any. */
  function countedStore(fail?: (n: number, sent: Sent) => Error | undefined, table = TABLE) {
    const doc = createDocumentClient({ endpoint: dynamo.endpoint });
    const sent: Sent[] = [];
    let transactions = 0;
    doc.middlewareStack.add(
      (next, context) => async (args) => {
        const operation = (context.commandName ?? '').replace(/Command$/, '');
        const input = args.input as {
          TransactItems?: { Put?: { Item?: Record<string, unknown>; ConditionExpression?: string } }[];
        };
        const actions = input.TransactItems ?? [];
        const call: Sent = {
          operation,
          items: actions.map((t) => t.Put?.Item ?? {}),
          notPlainPuts: actions.filter((t) => Object.keys(t).join() !== 'Put' || t.Put?.ConditionExpression)
            .length,
        };
        sent.push(call);
        if (operation === 'TransactWriteItems') {
          const error = fail?.(++transactions, call);
          if (error) throw error;
        }
        return next(args);
      },
      { step: 'initialize', name: 'countStoreCalls' },
    );
    return { store: new DynamoStore(doc, table), sent, doc };
  }

  /** A decision record of a pipeline of its own (so the trail the other tests read is not touched). */
  async function decisionWith(pipeline: string, ids: readonly string[], day: number): Promise<AuditRecord> {
    const record = chainRecord(
      { ...entry(pipeline, 5, 'decision', START + day * DAY), vulnerabilities: [...ids] },
      pipeline,
      undefined,
    );
    await store.appendAudit(record);
    return record;
  }

  const ids = (prefix: string, n: number) =>
    Array.from({ length: n }, (_, i) => `${prefix}-${String(i).padStart(5, '0')}`);

  async function marker(record: AuditRecord): Promise<Record<string, unknown> | undefined> {
    const out = await dynamo.client.send(
      new GetCommand({ TableName: TABLE, Key: pendingKey(record), ConsistentRead: true }),
    );
    return out.Item;
  }

  /** How many of the ids have a VULN# item that points at the record (16 Queries at a time). */
  async function indexedByEvery(record: AuditRecord, vulnerabilities: readonly string[]): Promise<number> {
    let found = 0;
    for (let i = 0; i < vulnerabilities.length; i += 16) {
      const pages = await Promise.all(
        vulnerabilities.slice(i, i + 16).map((v) =>
          dynamo.client.send(
            new QueryCommand({
              TableName: TABLE,
              KeyConditionExpression: 'pk = :pk',
              ExpressionAttributeValues: { ':pk': indexPk('VULN', v) },
              ConsistentRead: true,
            }),
          ),
        ),
      );
      for (const page of pages) {
        const items = page.Items ?? [];
        if (
          items.length === 1 &&
          items[0]!.recordPk === auditPk(record.pipeline) &&
          items[0]!.recordSk === auditSk(record.seq)
        )
          found++;
      }
    }
    return found;
  }

  /**
   * How many of the ids list exactly the record (16 lists at a time): through the VULN# items, or from its
   * pending marker while they are not all written.
   */
  async function listedByEvery(record: AuditRecord, vulnerabilities: readonly string[]): Promise<number> {
    let found = 0;
    for (let i = 0; i < vulnerabilities.length; i += 16) {
      const lists = await Promise.all(
        vulnerabilities.slice(i, i + 16).map((v) => list({ vulnerability: v })),
      );
      for (const l of lists) if (l.length === 1 && l[0]!.hash === record.hash) found++;
    }
    return found;
  }

  const transactions = (sent: readonly Sent[]) => sent.filter((s) => s.operation === 'TransactWriteItems');

  /** The service's refusal of a request it will never take (a bad value): not retried. */
  const invalid = () =>
    Object.assign(new Error('One or more parameter values were invalid'), { name: 'ValidationException' });

  /** The service's refusal of a transaction of `items` actions, with each action's reason as it sends it. */
  const cancelled = (items: number, code: (i: number) => string) =>
    new TransactionCanceledException({
      message: 'Transaction cancelled, please refer cancellation reasons for specific reasons',
      $metadata: { httpStatusCode: 400 },
      CancellationReasons: Array.from({ length: items }, (_, i) => ({ Code: code(i) })),
    });

  it('writes 1,000 ids in 10 TransactWriteItems of 100 unconditional Puts, no BatchWriteItem; again, idempotently', async () => {
    const vulnerabilities = ids('CVE-2032', 1000);
    // Before the trail, not after the clock: verify would name a record dated in the future.
    const record = await decisionWith('vuln-thousand', vulnerabilities, -50);
    const { store: counted, sent, doc } = countedStore();
    try {
      await counted.indexAudit(record);
      expect(sent.filter((s) => s.operation === 'BatchWriteItem')).toEqual([]);
      const sentTransactions = transactions(sent);
      expect(sentTransactions).toHaveLength(Math.ceil(1000 / 100));
      expect(sentTransactions.map((t) => t.items.length)).toEqual(Array(10).fill(100));
      expect(sentTransactions.every((t) => t.notPlainPuts === 0)).toBe(true);
      const written = sentTransactions.flatMap((t) => t.items);
      expect(new Set(written.map((i) => i.pk))).toEqual(new Set(vulnerabilities.map((v) => `VULN#${v}`)));
      // The only other write marks the marker done (a Put: the roles have no DeleteItem).
      expect(sent.map((s) => s.operation).filter((o) => o !== 'TransactWriteItems')).toEqual(['PutItem']);
      expect(await marker(record)).toMatchObject({ done: true, expiresAt: expect.any(Number) });
      expect(await indexedByEvery(record, vulnerabilities)).toBe(1000);

      // A redelivered event writes them again: the same calls succeed, the same items, nothing doubled.
      const before = await dynamo.client.send(
        new GetCommand({ TableName: TABLE, Key: { pk: 'VULN#CVE-2032-00999', sk: written[999]!.sk } }),
      );
      sent.length = 0;
      await counted.indexAudit(record);
      expect(transactions(sent)).toHaveLength(10);
      const after = await dynamo.client.send(
        new GetCommand({ TableName: TABLE, Key: { pk: 'VULN#CVE-2032-00999', sk: written[999]!.sk } }),
      );
      expect(after.Item).toEqual(before.Item);
      const sample = vulnerabilities.filter((_, i) => i % 37 === 0);
      expect(await indexedByEvery(record, sample)).toBe(sample.length);
      expect(await audit.verify('vuln-thousand')).toEqual({ ok: true, records: 1, problems: [] });
    } finally {
      doc.destroy();
    }
  }, 60_000);

  it('cuts chunks at 100 items and keeps each transaction well under 4 MB', () => {
    const small = Array.from({ length: 250 }, (_, i) => ({ pk: `VULN#${i}`, sk: 'x' }));
    expect(indexChunks(small).map((c) => c.length)).toEqual([100, 100, 50]);
    expect(indexChunks([])).toEqual([]);
    // The largest items there can be: ids at the key limit (longer ones are hashed), a 100-character
    // pipeline name (CodePipeline's limit) in the sort key and the record's key.
    const pipeline = 'p'.repeat(100);
    const record = chainRecord(
      {
        ...entry(pipeline, 1, 'decision', START),
        vulnerabilities: Array.from({ length: 150 }, (_, i) => `${'x'.repeat(3000)}${i}`),
      },
      pipeline,
      undefined,
    );
    const chunks = indexChunks(vulnerabilityItems(record));
    expect(chunks.map((c) => c.length)).toEqual([100, 50]);
    const biggest = Array.from({ length: 100 }, (_, i) =>
      indexItem('VULN', `CVE-${String(i).padStart(2044 - 'VULN#CVE-'.length, '7')}`, record),
    );
    expect(biggest.every((item) => Buffer.byteLength(String(item.pk)) === 2048 - 4)).toBe(true);
    // As JSON (names and values, more than DynamoDB counts): a tenth of the 4 MB a transaction may carry.
    expect(Buffer.byteLength(JSON.stringify(biggest))).toBeLessThan(400_000);
  });

  it.each([
    [
      'cancelled by a TransactionConflict',
      (items: number) => cancelled(items, (i) => (i === 7 ? 'TransactionConflict' : 'None')),
    ],
    [
      'cancelled by a ThrottlingError',
      (items: number) => cancelled(items, (i) => (i < 3 ? 'ThrottlingError' : 'None')),
    ],
  ])('a chunk %s is sent again and succeeds; the marker is then done', async (what, error) => {
    const vulnerabilities = ids(`CVE-2033-${what.split(' ').at(-1)}`, 250);
    const record = await decisionWith(`vuln-retry-${what.replaceAll(' ', '-')}`, vulnerabilities, 60);
    // The second chunk fails twice, then goes through.
    const {
      store: counted,
      sent,
      doc,
    } = countedStore((n, call) => (n === 2 || n === 4 ? error(call.items.length) : undefined));
    try {
      await counted.indexAudit(record);
      const sentTransactions = transactions(sent);
      expect(sentTransactions).toHaveLength(3 + 2);
      // The failed chunk was sent again as it was.
      const chunks = new Set(sentTransactions.map((t) => JSON.stringify(t.items.map((i) => i.pk))));
      expect(chunks.size).toBe(3);
      expect(await marker(record)).toMatchObject({ done: true });
      expect(await indexedByEvery(record, vulnerabilities)).toBe(250);
    } finally {
      doc.destroy();
    }
  });

  it('a validation failure is not retried: the marker stays, indexAudit reports it, and the repair finishes later', async () => {
    const vulnerabilities = ids('CVE-2034', 250);
    const record = await decisionWith('vuln-invalid', vulnerabilities, 70);
    let failing = true;
    const { store: counted, sent, doc } = countedStore((n) => (failing && n === 2 ? invalid() : undefined));
    try {
      await expect(counted.indexAudit(record)).rejects.toThrow('One or more parameter values were invalid');
      // Each chunk at most once (the 3 start together): the failed one not again.
      const sentTransactions = transactions(sent);
      expect(sentTransactions).toHaveLength(3);
      expect(new Set(sentTransactions.map((t) => t.items[0]!.pk)).size).toBe(3);
      expect(sent.some((s) => s.operation === 'PutItem')).toBe(false);
      const pending = await marker(record);
      expect(pending).toBeDefined();
      expect(pending?.done).toBeUndefined();
      expect(await indexedByEvery(record, vulnerabilities)).toBeLessThan(250);
      // Meanwhile the record is still listed by every id, from its marker.
      expect(await listedByEvery(record, vulnerabilities.slice(140, 160))).toBe(20);

      // The sweep's repair, once the failure has passed.
      failing = false;
      expect(await counted.repairAuditIndexes()).toBe(1);
      expect(await marker(record)).toMatchObject({ done: true });
      expect(await indexedByEvery(record, vulnerabilities)).toBe(250);
      expect(await counted.repairAuditIndexes()).toBe(0);
    } finally {
      doc.destroy();
    }
  });

  it('a chunk cancelled by conflicts every time: 8 attempts, then an error naming them; the marker stays', async () => {
    const vulnerabilities = ids('CVE-2036', 40);
    const record = await decisionWith('vuln-always-conflicting', vulnerabilities, 90);
    const {
      store: counted,
      sent,
      doc,
    } = countedStore((_n, call) => cancelled(call.items.length, () => 'TransactionConflict'));
    try {
      await expect(counted.indexAudit(record)).rejects.toThrow(
        /TransactWriteItems of 40 VULN# index item\(s\) still failing after 8 attempts: TransactionCanceledException/,
      );
      expect(transactions(sent)).toHaveLength(8);
      expect((await marker(record))?.done).toBeUndefined();
    } finally {
      doc.destroy();
      await dynamo.client.send(
        new PutCommand({ TableName: TABLE, Item: { ...pendingKey(record), done: true, expiresAt: 1 } }),
      );
    }
  });

  it('a throttled chunk is not sent again here (the SDK has retried it already): the marker stays', async () => {
    const vulnerabilities = ids('CVE-2038', 150);
    const record = await decisionWith('vuln-throttled', vulnerabilities, 105);
    const throttled = () =>
      new ThrottlingException({ message: 'Rate exceeded', $metadata: { httpStatusCode: 400 } });
    const { store: counted, sent, doc } = countedStore((n) => (n === 1 ? throttled() : undefined));
    try {
      await expect(counted.indexAudit(record)).rejects.toThrow('Rate exceeded');
      expect(transactions(sent)).toHaveLength(2);
      expect((await marker(record))?.done).toBeUndefined();
      expect(await store.repairAuditIndexes()).toBeGreaterThanOrEqual(1);
      expect(await indexedByEvery(record, vulnerabilities)).toBe(150);
    } finally {
      doc.destroy();
    }
  });

  it('the repair goes past a record that keeps failing, finishes the others, then says which failed', async () => {
    // Markers are repaired in key order: the failing record sorts first, so the one behind it is reached
    // only by going past it.
    const stuck = await decisionWith('vuln-repair-a-stuck', ids('CVE-2039', 30), 110);
    const behind = await decisionWith('vuln-repair-b-behind', ids('CVE-2040', 30), 111);
    let failing = true;
    const { store: counted, doc } = countedStore((_n, call) =>
      failing && call.items[0]?.pipeline === stuck.pipeline ? invalid() : undefined,
    );
    try {
      const error = await counted.repairAuditIndexes().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(AuditIndexRepairError);
      const repair = error as AuditIndexRepairError;
      expect(repair.failures.map((f) => f.marker)).toEqual([`${stuck.pipeline}#${stuck.seq}`]);
      expect(repair.finished).toBeGreaterThanOrEqual(1);
      expect(repair.message).toMatch(
        /^1 audit record\(s\) could not have their index items finished, \d+ were: /,
      );
      expect(repair.message).toContain(
        `${stuck.pipeline}#${stuck.seq} (ValidationException: One or more parameter values were invalid)`,
      );
      // The record behind the failing one is finished; the failing one's marker waits for the next sweep.
      expect(await marker(behind)).toMatchObject({ done: true });
      expect(await indexedByEvery(behind, behind.vulnerabilities)).toBe(30);
      // The failing one's marker is put off: the next sweep passes it by, a later one tries it again.
      const now = Date.now();
      expect(await marker(stuck)).toMatchObject({ failures: 1, retryAt: expect.any(Number) });
      expect((await marker(stuck))?.done).toBeUndefined();
      expect(Number((await marker(stuck))?.retryAt)).toBeGreaterThan(now);

      failing = false;
      expect(await counted.repairAuditIndexes(new Date(now))).toBe(0);
      expect(await counted.repairAuditIndexes(new Date(now + REPAIR_BACKOFF.firstMs + 1000))).toBe(1);
      expect(await indexedByEvery(stuck, stuck.vulnerabilities)).toBe(30);
    } finally {
      doc.destroy();
    }
  });

  it('records that fail sweep after sweep are put off, so the ones behind them get their turn', async () => {
    // Markers are read in key order: these two sort before every other pipeline's, and fill a repair of 2.
    const stuck = [
      await decisionWith('aa-stuck-1', ids('CVE-2042', 5), 120),
      await decisionWith('aa-stuck-2', ids('CVE-2043', 5), 121),
    ];
    const behind = await decisionWith('ab-behind', ids('CVE-2044', 5), 122);
    const { store: counted, doc } = countedStore((_n, call) =>
      String(call.items[0]?.pipeline).startsWith('aa-stuck') ? invalid() : undefined,
    );
    const at = (ms: number) => new Date(Date.parse('2026-11-26T10:00:00.000Z') + ms);
    try {
      const first = await counted.repairAuditIndexes(at(0), 2).catch((e: unknown) => e);
      expect((first as AuditIndexRepairError).failures.map((f) => f.marker)).toEqual([
        'aa-stuck-1#1',
        'aa-stuck-2#1',
      ]);
      expect((await marker(behind))?.done).toBeUndefined();
      // The next sweep, a minute later: the two are not due yet, so the record behind them is finished.
      const next = await counted
        .repairAuditIndexes(at(REPAIR_BACKOFF.firstMs - 1), 2)
        .catch((e: unknown) => e);
      expect(next).not.toBeInstanceOf(Error);
      expect(await marker(behind)).toMatchObject({ done: true });
      expect(await indexedByEvery(behind, behind.vulnerabilities)).toBe(5);
      // Due again, they fail again and wait twice as long.
      await counted.repairAuditIndexes(at(REPAIR_BACKOFF.firstMs), 2).catch(() => undefined);
      for (const record of stuck) {
        expect(await marker(record)).toMatchObject({
          failures: 2,
          retryAt: at(REPAIR_BACKOFF.firstMs + 2 * REPAIR_BACKOFF.firstMs).getTime(),
        });
      }
      // Never more than the longest wait, however often they fail (the tenth would wait 512 minutes).
      let t = REPAIR_BACKOFF.firstMs;
      for (let k = 0; k < 8; k++) {
        t += REPAIR_BACKOFF.maxMs;
        await counted.repairAuditIndexes(at(t), 2).catch(() => undefined);
      }
      expect(await marker(stuck[0]!)).toMatchObject({
        failures: 10,
        retryAt: at(t + REPAIR_BACKOFF.maxMs).getTime(),
      });
    } finally {
      doc.destroy();
      for (const record of stuck) {
        await dynamo.client.send(
          new PutCommand({ TableName: TABLE, Item: { ...pendingKey(record), done: true, expiresAt: 1 } }),
        );
      }
    }
  });

  it('writes no marker for a record whose ids give no index item', async () => {
    const record = await decisionWith('vuln-empty-id', [''], 130);
    expect(await marker(record)).toBeUndefined();
    await store.indexAudit(record);
    expect(await marker(record)).toBeUndefined();
  });

  it('lists a record whose VULN# items are not written yet in its place, either order, and once when they are', async () => {
    // Three decisions of one pipeline naming one id, a day apart: the middle one not indexed.
    let head: AuditRecord | undefined;
    const records: AuditRecord[] = [];
    for (const day of [140, 141, 142]) {
      head = chainRecord(
        {
          ...entry('vuln-unindexed', day, 'decision', START + day * DAY),
          vulnerabilities: ['CVE-2045-0001'],
        },
        'vuln-unindexed',
        head,
      );
      await store.appendAudit(head);
      if (day !== 141) await store.indexAudit(head);
      records.push(head);
    }
    const [first, middle, last] = records as [AuditRecord, AuditRecord, AuditRecord];
    expect(await indexedByEvery(middle, ['CVE-2045-0001'])).toBe(0);
    const filter: AuditFilter = { vulnerability: 'CVE-2045-0001' };
    for (const pageSize of [1, 200]) {
      expect((await list(filter, pageSize)).map(key)).toEqual([last, middle, first].map(key));
      expect((await list(filter, pageSize, 'oldest')).map(key)).toEqual([first, middle, last].map(key));
    }
    // The filter still applies to it: out of range, or another id, it is not listed.
    expect((await list({ ...filter, until: new Date(START + 141 * DAY) })).map(key)).toEqual([key(first)]);
    expect(await list({ vulnerability: 'CVE-2045-0002' })).toEqual([]);
    // Its items written but its marker not yet marked done (a repair cut short): listed once.
    await store.indexAudit(middle);
    await dynamo.client.send(new PutCommand({ TableName: TABLE, Item: pendingItem(middle) }));
    expect((await list(filter, 1)).map(key)).toEqual([last, middle, first].map(key));
    await store.indexAudit(middle);
    expect(await marker(middle)).toMatchObject({ done: true });
    expect((await list(filter)).map(key)).toEqual([last, middle, first].map(key));
  });

  it('lists the records of more pending markers than one BatchGetItem takes (100), counted apart', async () => {
    const id = 'CVE-2047-0001';
    const records: AuditRecord[] = [];
    for (let i = 0; i < 130; i++) records.push(await decisionWith(`vuln-many-pending-${i}`, [id], 150));
    try {
      const listed = await list({ vulnerability: id }, 50, 'oldest');
      expect(listed.map(key).sort()).toEqual(records.map(key).sort());
      // No VULN# item yet: every record came from a marker, and `fetched` (index items' records) stays 0.
      expect(audit.stats).toMatchObject({ scanned: 0, fetched: 0, returned: 130, markerRecords: 130 });
      expect(audit.stats.markers).toBeGreaterThanOrEqual(130);
    } finally {
      for (const record of records) {
        await dynamo.client.send(
          new PutCommand({ TableName: TABLE, Item: { ...pendingKey(record), done: true, expiresAt: 1 } }),
        );
      }
    }
  });

  it("dynalite's own refusal (the table is not there) is not retried either", async () => {
    const vulnerabilities = ids('CVE-2035', 150);
    const record = await decisionWith('vuln-table-gone', vulnerabilities, 80);
    const { store: counted, sent, doc } = countedStore(undefined, `${TABLE}-gone`);
    try {
      await expect(counted.indexAudit(record)).rejects.toThrow(/ResourceNotFound|non-existent table/i);
      // The two chunks start together; neither is sent again, and the marker is left for the repair.
      expect(transactions(sent)).toHaveLength(2);
      expect(sent.some((s) => s.operation === 'PutItem')).toBe(false);
      expect((await marker(record))?.done).toBeUndefined();
      expect(await indexedByEvery(record, vulnerabilities)).toBe(0);
      // At least this one (another test's marker may still wait); its items are what the check is.
      expect(await store.repairAuditIndexes()).toBeGreaterThanOrEqual(1);
      expect(await indexedByEvery(record, vulnerabilities)).toBe(150);
    } finally {
      doc.destroy();
    }
  });

  it('an id too long for a key (over 2,048 bytes) is keyed by its SHA-256: written, and found by the same id', async () => {
    // Over the limit in characters (dynalite's count), and in UTF-8 bytes only (DynamoDB's): both hashed.
    const long = `CVE-${'9'.repeat(2100)}`;
    const wide = `GHSA-${'é'.repeat(1100)}`;
    const fits = `CVE-${'7'.repeat(2048 - 'VULN#CVE-'.length)}`;
    expect(Buffer.byteLength(`VULN#${fits}`)).toBe(2048);
    const vulnerabilities = [...ids('CVE-2037', 150), long, wide, fits];
    const record = await decisionWith('vuln-key-too-long', vulnerabilities, 100);
    const { store: counted, sent, doc } = countedStore();
    try {
      await counted.indexAudit(record);
      expect(transactions(sent)).toHaveLength(2);
      const keys = transactions(sent).flatMap((t) => t.items.map((i) => String(i.pk)));
      expect(keys.every((k) => Buffer.byteLength(k) <= 2048)).toBe(true);
      expect(keys.filter((k) => k.startsWith('VULN-SHA256#'))).toEqual([
        `VULN-SHA256#${createHash('sha256').update(long).digest('hex')}`,
        `VULN-SHA256#${createHash('sha256').update(wide).digest('hex')}`,
      ]);
      expect(keys).toContain(`VULN#${fits}`);
      expect(await marker(record)).toMatchObject({ done: true });
      expect(await listedByEvery(record, vulnerabilities)).toBe(vulnerabilities.length);
      // The gate's own index items (repository, reviewer) are keyed by the same function, in its transaction.
      expect(indexPk('REVIEWER', long)).toBe(
        `REVIEWER-SHA256#${createHash('sha256').update(long).digest('hex')}`,
      );
      expect(indexPk('REPO', 'payments/api')).toBe('REPO#payments/api');
      // A short id that looks like the digest is another key: it finds nothing.
      expect(await list({ vulnerability: createHash('sha256').update(long).digest('hex') })).toEqual([]);
    } finally {
      doc.destroy();
    }
  });
});

describe('DynamoAuditStore: records edited by hand (a time that is no time, a field removed)', () => {
  // A table of its own: these chains would otherwise be in every other test's answers.
  const DAMAGED = `${TABLE}-damaged`;
  let damaged: DynamoAuditStore;
  const chains = new Map<string, AuditRecord[]>();
  const at = (hour: number) => new Date(START + hour * HOUR).toISOString();

  /** A chain of 3 decisions, `change` applied to each entry before it is hashed (so the chain is whole). */
  function chainOf(
    pipeline: string,
    change: (e: AuditEntry, n: number) => AuditEntry = (e) => e,
  ): AuditRecord[] {
    const out: AuditRecord[] = [];
    for (let n = 1; n <= 3; n++)
      out.push(
        chainRecord(change(entry(pipeline, n, 'decision', START + n * HOUR), n), pipeline, out.at(-1)),
      );
    return out;
  }

  /** Replaces record `seq`'s map in the table, its index keys left as they were (an edit in place). */
  async function editInPlace(pipeline: string, seq: number, record: Record<string, unknown>): Promise<void> {
    const original = chains.get(pipeline)![seq - 1]!;
    await dynamo.client.send(
      new PutCommand({ TableName: DAMAGED, Item: { ...auditRecordItem(original), record } }),
    );
  }

  async function listed(filter: AuditFilter): Promise<string[]> {
    const out: string[] = [];
    for await (const r of damaged.list(filter)) out.push(key(r));
    return out;
  }

  beforeAll(async () => {
    await ensureTable(dynamo.client, DAMAGED);
    damaged = new DynamoAuditStore(dynamo.client, DAMAGED);
    // `rehashed`: record 2 has no time, and the chain was hashed with it so (every hash and link holds).
    chains.set(
      'rehashed',
      chainOf('rehashed', (e, n) => (n === 2 ? ({ ...e, time: undefined } as unknown as AuditEntry) : e)),
    );
    chains.set('whole', chainOf('whole'));
    chains.set('edited', chainOf('edited'));
    chains.set('truncated', chainOf('truncated'));
    for (const chain of chains.values())
      for (const Item of chainItems(chain))
        await dynamo.client.send(new PutCommand({ TableName: DAMAGED, Item }));
    // `edited`: record 2's time made a map in place; `truncated`: record 2 keeps only its place and hashes.
    const edited = chains.get('edited')![1]!;
    await editInPlace('edited', 2, { ...edited, time: { at: 'noon' } });
    const cut = chains.get('truncated')![1]!;
    await editInPlace('truncated', 2, {
      pipeline: cut.pipeline,
      seq: cut.seq,
      time: cut.time,
      type: cut.type,
      prevHash: cut.prevHash,
      hash: cut.hash,
    });
  });

  it('verify names each such record (unindexed when re-hashed, changed when not) and goes on to the other chains', async () => {
    expect(await damaged.verify('rehashed')).toEqual({
      ok: false,
      records: 3,
      problems: [
        {
          pipeline: 'rehashed',
          seq: 2,
          kind: 'unindexed',
          detail:
            "record 2's time is not a time (expected an ISO-8601 time, got nothing): list and export, which read by time, cannot place it",
        },
      ],
    });
    const all = await damaged.verify();
    // Every chain read, the whole one verified among them.
    expect(all.records).toBe(12);
    expect(all.problems.map((p) => [p.pipeline, p.seq, p.kind])).toEqual([
      ['edited', 2, 'changed'],
      ['rehashed', 2, 'unindexed'],
      ['truncated', 2, 'changed'],
    ]);
    expect((await damaged.verify('whole')).ok).toBe(true);
    // With the Scan of index items too (which builds each record's expected items from its time).
    expect((await damaged.verify(undefined, await damaged.indexItemKeys())).problems).toHaveLength(3);
  });

  it('list names a damaged record (its keys, the field, what was expected and what came), never leaves it out unsaid', async () => {
    expect(await listed({ pipeline: 'whole' })).toEqual(['whole#3', 'whole#2', 'whole#1']);
    const cases: [AuditFilter, RegExp][] = [
      // A time that is no time is in no range: --since would have dropped it, silently.
      [
        { pipeline: 'edited', since: new Date(START) },
        /^the record edited#2 \(item AUDIT#edited \/ SEQ#000000000002\) is damaged: time: expected an ISO-8601 time, got \{"at":"noon"\}; "tollgate audit show edited#2" prints what it holds/,
      ],
      [{ pipeline: 'edited' }, /edited#2 .* time: expected an ISO-8601 time, got \{"at":"noon"\}/],
      [{ pipeline: 'rehashed' }, /rehashed#2 .* time: expected an ISO-8601 time, got nothing/],
      [
        { pipeline: 'truncated', since: new Date(START) },
        /truncated#2 .* actor: expected an identity \(text\), got nothing/,
      ],
      [{ digest: `sha256:${'3'.repeat(64)}` }, /#2 .* is damaged: /],
      [{}, /is damaged: /],
    ];
    for (const [filter, message] of cases) {
      const refused = listed(filter);
      await expect(refused, JSON.stringify(filter)).rejects.toThrow(AuditRecordError);
      await expect(listed(filter), JSON.stringify(filter)).rejects.toThrow(message);
    }
  });

  it('get and chain still read a damaged record as stored, for show and verify to judge', async () => {
    expect(await damaged.get('truncated', 2)).toEqual({
      pipeline: 'truncated',
      seq: 2,
      time: at(2),
      type: 'decision',
      prevHash: chains.get('truncated')![1]!.prevHash,
      hash: chains.get('truncated')![1]!.hash,
    });
    const read: unknown[] = [];
    for await (const r of damaged.chain('edited')) read.push(r.time);
    expect(read).toEqual([at(1), { at: 'noon' }, at(3)]);
  });
});

describe('DynamoAuditStore: a record at keys that are not its own (forged into another chain, or moved)', () => {
  // A table of its own: the forged items would otherwise be in every other test's answers.
  const PLACED = `${TABLE}-placed`;
  let placed: DynamoAuditStore;
  const a: AuditRecord[] = [];
  const b: AuditRecord[] = [];

  beforeAll(async () => {
    await ensureTable(dynamo.client, PLACED);
    placed = new DynamoAuditStore(dynamo.client, PLACED);
    for (let n = 1; n <= 3; n++) {
      a.push(chainRecord(entry('payments-api', n, 'decision', START + n * HOUR), 'payments-api', a.at(-1)));
      b.push(chainRecord(entry('orders-worker', n, 'decision', START + n * HOUR), 'orders-worker', b.at(-1)));
    }
    for (const item of [...chainItems(a), ...chainItems(b)])
      await dynamo.client.send(new PutCommand({ TableName: PLACED, Item: item }));
  });

  async function put(item: Record<string, unknown>): Promise<() => Promise<void>> {
    await dynamo.client.send(new PutCommand({ TableName: PLACED, Item: item }));
    return async () => {
      await dynamo.client.send(new DeleteCommand({ TableName: PLACED, Key: { pk: item.pk, sk: item.sk } }));
    };
  }

  it("a whole chain of another pipeline, hashed right, stored in a chain's partition: verify fails, list refuses it", async () => {
    expect(await placed.verify()).toEqual({ ok: true, records: 6, problems: [] });
    // Record 1 of a chain "forged-api" (genesis, a right hash), at payments-api's keys after its head: read by
    // its own pipeline field it was a chain of its own that verified, and listed as a genuine APPROVE.
    const forged = chainRecord(
      {
        ...entry('forged-api', 7, 'decision', START + 9 * HOUR),
        outcome: 'APPROVE',
        summary: 'APPROVE forged',
      },
      'forged-api',
      undefined,
    );
    const item = { ...auditRecordItem(forged), pk: auditPk('payments-api'), sk: auditSk(99) };
    const remove = await put(item);
    try {
      const problem = {
        pipeline: 'payments-api',
        seq: 99,
        kind: 'changed',
        detail: expect.stringMatching(
          /^the item AUDIT#payments-api \/ SEQ#000000000099 holds record forged-api#1, whose keys would be AUDIT#forged-api \/ SEQ#000000000001: .*moved or forged$/,
        ),
      };
      expect(await placed.verify('payments-api')).toEqual({ ok: false, records: 4, problems: [problem] });
      expect((await placed.verify()).problems).toEqual([problem]);
      expect((await placed.verify('payments-api', await placed.indexItemKeys())).problems).toEqual([problem]);
      // list reads it through the indexes by its own fields: refused, named by its keys, never listed.
      await expect(async () => {
        for await (const _ of placed.list({ outcome: 'APPROVE' }));
      }).rejects.toThrow(
        /^the record payments-api#99 \(item AUDIT#payments-api \/ SEQ#000000000099\) is damaged: pipeline, seq: .* got forged-api#1/,
      );
      await expect(async () => {
        for await (const _ of placed.list({}));
      }).rejects.toThrow(AuditRecordError);
    } finally {
      await remove();
    }
    expect((await placed.verify()).ok).toBe(true);
  });

  it("another chain's record in place of one of this chain's, and a record of its own at another seq's keys", async () => {
    const original = auditRecordItem(a[1]!);
    // orders-worker's record 2 (a right hash, its own links) in payments-api's place 2.
    await put({ ...auditRecordItem(b[1]!), pk: original.pk, sk: original.sk });
    try {
      expect((await placed.verify('payments-api')).problems).toEqual([
        expect.objectContaining({ pipeline: 'payments-api', seq: 2, kind: 'changed' }),
      ]);
    } finally {
      await put(original);
    }
    // payments-api's last record moved to the keys of record 4: every link holds, the head still says 3, and
    // `show payments-api#3` finds nothing.
    const last = auditRecordItem(a[2]!);
    await dynamo.client.send(new DeleteCommand({ TableName: PLACED, Key: { pk: last.pk, sk: last.sk } }));
    const remove = await put({ ...last, sk: auditSk(4) });
    try {
      expect((await placed.verify('payments-api')).problems).toEqual([
        {
          pipeline: 'payments-api',
          seq: 4,
          kind: 'changed',
          detail: expect.stringContaining(
            'holds record payments-api#3, whose keys would be AUDIT#payments-api / SEQ#000000000003',
          ),
        },
      ]);
    } finally {
      await remove();
      await put(last);
    }
    expect((await placed.verify()).ok).toBe(true);
  });

  it('verifies chain by chain with the registry read once by the caller, not again by each call', async () => {
    const sent: string[] = [];
    const counting = {
      send: (command: { constructor: { name: string }; input: Record<string, unknown> }) => {
        const values = command.input.ExpressionAttributeValues as Record<string, unknown> | undefined;
        if (values?.[':pk'] === PIPELINES_PK) sent.push('registry');
        return dynamo.client.send(command as never);
      },
    } as unknown as typeof dynamo.client;
    const counted = new DynamoAuditStore(counting, PLACED);
    const registry = await counted.pipelines();
    expect(registry).toEqual(['orders-worker', 'payments-api']);
    expect(sent).toEqual(['registry']);
    for (const name of registry)
      expect(await counted.verify(name, undefined, registry)).toMatchObject({ ok: true });
    expect(sent).toEqual(['registry']);
    // A chain the registry given does not list has its own registry item read again (a GetItem, not the
    // registry's Query): the registry was read before the chain, which may have started since.
    expect(await counted.verify('payments-api', undefined, ['orders-worker'])).toMatchObject({ ok: true });
    expect(sent).toEqual(['registry']);
    // Its item really gone, the chain is said to be unlisted.
    const registryKey = { pk: PIPELINES_PK, sk: 'payments-api' };
    const item = (await dynamo.client.send(new GetCommand({ TableName: PLACED, Key: registryKey }))).Item!;
    await dynamo.client.send(new DeleteCommand({ TableName: PLACED, Key: registryKey }));
    try {
      expect((await counted.verify('payments-api', undefined, ['orders-worker'])).problems).toEqual([
        expect.objectContaining({
          pipeline: 'payments-api',
          kind: 'missing',
          detail: expect.stringContaining('registry does not list'),
        }),
      ]);
    } finally {
      await put(item);
    }
    // Without it, each call reads it.
    await counted.verify('payments-api');
    expect(sent).toEqual(['registry', 'registry']);
  });
});

describe('DynamoAuditStore.verify --scan: a chain started while the table was read', () => {
  const RACE = `${TABLE}-race`;

  it('a chain whose record 1 and registry item land after the run read the registry is not reported unlisted', async () => {
    await ensureTable(dynamo.client, RACE);
    const raced = new DynamoAuditStore(dynamo.client, RACE);
    const chain = (pipeline: string) => {
      const r1 = chainRecord(entry(pipeline, 1, 'decision', START), pipeline, undefined);
      return [r1, chainRecord(entry(pipeline, 2, 'decision', START + HOUR), pipeline, r1)];
    };
    const write = async (records: AuditRecord[]) => {
      for (const Item of chainItems(records))
        await dynamo.client.send(new PutCommand({ TableName: RACE, Item }));
    };
    await write(chain('old-pipeline'));
    // As `verify --scan` runs: the registry once, then a Scan for chains it does not list, each verified
    // against the registry read first. A pipeline's first records written in between are such a chain.
    const registry = await raced.pipelines();
    expect(registry).toEqual(['old-pipeline']);
    await write(chain('new-pipeline'));
    const unlisted = await raced.unlistedChains();
    expect(unlisted).toEqual([]);
    // The Scan's own registry read lists it here; one read before the write (the race) would not, and the
    // chain is then verified against the run's registry: it was reported as a registry item deleted (exit 2).
    expect(await raced.verify('new-pipeline', undefined, registry)).toEqual({
      ok: true,
      records: 2,
      problems: [],
    });
    for (const pipeline of [...registry, 'new-pipeline'])
      expect(await raced.verify(pipeline, undefined, registry)).toMatchObject({ ok: true });
  });
});

describe('DynamoAuditStore: records dated in the future, or decades back (written by hand)', () => {
  const MINUTE = 60_000;
  const DAY = 24 * HOUR;

  /** A chain hashed whole with the times given (a chain rewritten and re-hashed, its head moved). */
  function dated(pipeline: string, times: readonly number[]): AuditRecord[] {
    const out: AuditRecord[] = [];
    times.forEach((t, i) => {
      out.push(chainRecord(entry(pipeline, i + 1, 'decision', t), pipeline, out.at(-1)));
    });
    return out;
  }

  async function tableOf(name: string, ...chains: AuditRecord[][]): Promise<DynamoAuditStore> {
    const table = `${TABLE}-${name}`;
    await ensureTable(dynamo.client, table);
    for (const chain of chains)
      for (const Item of chainItems(chain))
        await dynamo.client.send(new PutCommand({ TableName: table, Item }));
    return new DynamoAuditStore(dynamo.client, table);
  }

  async function listed(audit: DynamoAuditStore, filter: AuditFilter): Promise<string[]> {
    const out: string[] = [];
    for await (const r of audit.list(filter)) out.push(key(r));
    return out;
  }

  it('verify names a record dated past the clock and its skew (changed), which the hashes cannot see', async () => {
    const now = Date.now();
    // #1 genuine; #2–3 rewritten and dated 2099, the chain hashed again and its head moved: every link holds.
    const forged = dated('future-tail', [
      now - 2 * HOUR,
      Date.parse('2099-01-01T00:00:00.000Z'),
      Date.parse('2099-01-01T00:00:01.000Z'),
    ]);
    // A record dated a few minutes ahead is a clock a little behind, not a forgery.
    const ahead = dated('clock-ahead', [now - HOUR, now + 5 * MINUTE]);
    const audit = await tableOf('future-verify', forged, ahead);
    const at = new Date(now);
    expect(await audit.verify('clock-ahead', undefined, undefined, at)).toEqual({
      ok: true,
      records: 2,
      problems: [],
    });
    expect(await audit.verify('future-tail', undefined, undefined, at)).toEqual({
      ok: false,
      records: 3,
      problems: [
        {
          pipeline: 'future-tail',
          seq: 2,
          kind: 'changed',
          detail: `record 2 is dated in the future: 2099-01-01T00:00:00.000Z, later than now (${at.toISOString()}) by more than the 15 minutes clocks may differ: Tollgate dates a record by its event or its clock, never later, so its time was written by hand (and the chain hashed again), or this machine's clock is behind`,
        },
      ],
    });
    // The whole table, on the reader's own clock.
    expect((await audit.verify()).problems.map((p) => [p.pipeline, p.seq, p.kind])).toEqual([
      ['future-tail', 2, 'changed'],
    ]);
  });

  it("verify names a chain's head dated in the future (its time is not hashed)", async () => {
    const now = Date.now();
    const chain = dated('head-ahead', [now - 2 * HOUR, now - HOUR]);
    const audit = await tableOf('future-head', chain);
    expect((await audit.verify('head-ahead')).ok).toBe(true);
    await dynamo.client.send(
      new PutCommand({
        TableName: `${TABLE}-future-head`,
        Item: { ...headItem(chain[1]!), time: '2099-01-01T00:00:00.000Z' },
      }),
    );
    expect(await audit.verify('head-ahead')).toMatchObject({
      ok: false,
      problems: [
        {
          pipeline: 'head-ahead',
          seq: 2,
          kind: 'head-mismatch',
          detail: expect.stringMatching(
            /^the chain's head is dated in the future: 2099-01-01T00:00:00\.000Z, /,
          ),
        },
      ],
    });
    // list without --until would read every day to it: refused, naming the head's item.
    await expect(listed(audit, {})).rejects.toThrow(
      /\(item AUDIT#head-ahead \/ HEAD\) is damaged: time: expected a time no later than now/,
    );
  });

  it('list without --until refuses a record dated in the future, naming it, in a few requests, not a Query a day to it', async () => {
    const now = Date.now();
    const forged = dated('future-list', [now - 2 * HOUR, Date.parse('2099-01-01T00:00:00.000Z')]);
    const audit = await tableOf('future-list', forged);
    const refused = listed(audit, { type: 'decision' });
    await expect(refused).rejects.toThrow(AuditRecordError);
    await expect(listed(audit, { type: 'decision' })).rejects.toThrow(
      /^the record future-list#2 \(item AUDIT#future-list \/ SEQ#000000000002\) is damaged: time: expected a time no later than now and the 15 minutes clocks may differ \(.*\): Tollgate dates no record later \(or this machine's clock is behind\), and a list without --until reads every day up to it, got "2099-01-01T00:00:00\.000Z"; "tollgate audit show future-list#2"/,
    );
    expect(audit.stats.requests).toBeLessThan(10);
    // Bounded, the days are the ones asked for.
    expect(await listed(audit, { until: new Date(now) })).toEqual(['future-list#1']);
    expect(
      await listed(audit, {
        since: new Date('2098-12-31T00:00:00.000Z'),
        until: new Date('2099-01-02T00:00:00.000Z'),
      }),
    ).toEqual(['future-list#2']);
  });

  it("a local store's records, dated by its scenarios' clock, are no forgery whatever their day: verified and listed", async () => {
    // `tollgate simulate` of a scenario that starts in 2099 (a start is any time): no store clock to judge by.
    const simulated = dated('simulated', [
      Date.parse('2099-01-01T09:00:00.000Z'),
      Date.parse('2099-01-01T09:01:00.000Z'),
    ]);
    const deployed = await tableOf('simulated', simulated);
    expect((await deployed.verify('simulated')).problems.map((p) => p.kind)).toEqual(['changed']);
    const local = new DynamoAuditStore(dynamo.client, `${TABLE}-simulated`, null);
    expect(await local.verify('simulated')).toEqual({ ok: true, records: 2, problems: [] });
    expect(await listed(local, {})).toEqual(['simulated#2', 'simulated#1']);
  });

  it('list without --since refuses a span of more than ten years (a record dated decades back), and reads a long one', async () => {
    const now = Date.now();
    const old = dated('decades-back', [Date.parse('1990-01-01T00:00:00.000Z'), now - HOUR]);
    const audit = await tableOf('decades-back', old);
    await expect(listed(audit, {})).rejects.toThrow(
      /^the audit trail's earliest time, 1990-01-01T00:00:00\.000Z \(item AUDIT#decades-back \/ SEQ#000000000001\), is \d+ days before its latest: more than the 3660 a list without --since reads \(a Query a day\); pass --since \(and --until\)/,
    );
    expect(audit.stats.requests).toBeLessThan(10);
    await expect(listed(audit, { until: new Date(now) })).rejects.toThrow(/more than the 3660/);
    // A far --until makes the range long, not the trail: the range is blamed, not an item.
    const young = await tableOf('far-until', dated('far-until', [now - 2 * HOUR, now - HOUR]));
    await expect(listed(young, { until: new Date(now + 3700 * DAY) })).rejects.toThrow(
      /^from the audit trail's earliest time, .*, to --until is \d+ days: more than the 3660 a list without --since reads \(a Query a day\); pass --since for the days to read$/,
    );
    expect(await listed(audit, { since: new Date(now - 2 * DAY) })).toEqual(['decades-back#2']);
    // A trail of a year and more is read whole, as before.
    const long = await tableOf('long-history', dated('long-history', [now - 400 * DAY, now - HOUR]));
    expect(await listed(long, {})).toEqual(['long-history#2', 'long-history#1']);
  });
});
