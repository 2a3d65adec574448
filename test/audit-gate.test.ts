import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteCommand, GetCommand, PutCommand, paginateScan } from '@aws-sdk/lib-dynamodb';
import { describe, expect, it } from 'vitest';
import { auditPk, auditSk, vulnIndexWrite } from '../adapters/dynamodb/audit-items.js';
import { DynamoAuditStore } from '../adapters/dynamodb/audit-store.js';
import { ensureTable } from '../adapters/dynamodb/table.js';
import type { AuditRecord } from '../shared/audit/record.js';
import { runScenario, type SimulationOptions, type SimulationResult } from '../simulator/run.js';
import { loadScenario } from '../simulator/scenario.js';
import type { World } from '../simulator/world.js';
import { useLocalDynamo } from './gate-harness.js';
import { ROOT } from './helpers.js';

/*
 * The audit trail as the gate writes it: the example scenarios replayed through the handlers (simulator),
 * then the chains read back and verified, tampered with in the table, and searched for the token.
 */

const dynamo = useLocalDynamo();
const DIR = join(ROOT, 'examples', 'scenarios');
const FILES = readdirSync(DIR)
  .filter((f) => f.endsWith('.json'))
  .sort();
let tables = 0;

interface Replayed {
  readonly result: SimulationResult;
  readonly tableName: string;
  readonly audit: DynamoAuditStore;
}

async function replay(file: string, options: Partial<SimulationOptions> = {}): Promise<Replayed> {
  const { client } = dynamo();
  tables++;
  const tableName = `tollgate-audit-gate-${process.pid}-${tables}`;
  await ensureTable(client, tableName);
  const result = await runScenario(loadScenario(file), { doc: client, tableName, ...options });
  return { result, tableName, audit: new DynamoAuditStore(client, tableName) };
}

async function chainOf(audit: DynamoAuditStore, pipeline: string): Promise<AuditRecord[]> {
  const out: AuditRecord[] = [];
  for await (const r of audit.chain(pipeline)) out.push(r);
  return out;
}

async function allItems(tableName: string): Promise<Record<string, unknown>[]> {
  const items: Record<string, unknown>[] = [];
  for await (const page of paginateScan({ client: dynamo().client }, { TableName: tableName })) {
    items.push(...(page.Items ?? []));
  }
  return items;
}

/** Tokens the scenario's world hands out (every scenario names them). */
function tokensOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/"token":\s*"([^"]+)"/g)].map((m) => m[1]!);
}

describe('the gate writes the audit trail', () => {
  for (const file of FILES) {
    it(`${file}: every chain verifies, gapless, and no stored item holds a token`, async () => {
      const path = join(DIR, file);
      const { result, tableName, audit } = await replay(path);
      const verified = await audit.verify();
      expect(verified.problems).toEqual([]);
      expect(verified.ok).toBe(true);
      const pipelines = await audit.pipelines();
      expect(pipelines).toEqual([...new Set(result.gates.map((g) => g.pipeline))].sort());
      let decisions = 0;
      for (const pipeline of pipelines) {
        const chain = await chainOf(audit, pipeline);
        expect(chain.map((r) => r.seq)).toEqual(chain.map((_, i) => i + 1));
        expect(await audit.head(pipeline)).toMatchObject({ seq: chain.length, hash: chain.at(-1)!.hash });
        decisions += chain.filter((r) => r.type === 'decision').length;
        for (const r of chain) {
          expect(r.pipeline).toBe(pipeline);
          expect(r.gate.pipeline).toBe(pipeline);
          if (r.type !== 'resolution' || r.outcome !== null) {
            expect(r.policy).toMatchObject({
              name: expect.any(String),
              sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
            });
            expect(r.counts).not.toBeNull();
            expect(r.exceptions).not.toBeNull();
          }
        }
      }
      // One decision record per decided gate: a duplicate delivery or a sweep adds none.
      expect(decisions).toBe(result.gates.filter((g) => g.decision !== null).length);
      const tokens = tokensOf(path);
      const stored = JSON.stringify(await allItems(tableName));
      for (const token of tokens) expect(stored).not.toContain(token);
    });
  }

  it('records the decision, the escalation and the reviewer with what each carries', async () => {
    const { audit } = await replay(join(DIR, '03-fixable-high-escalated-then-approved.json'));
    const chain = await chainOf(audit, 'orders-worker');
    expect(chain.map((r) => r.type)).toEqual(['decision', 'action', 'resolution', 'resolution']);
    const [decision, action, reviewed, ended] = chain as [AuditRecord, AuditRecord, AuditRecord, AuditRecord];
    expect(decision).toMatchObject({
      actor: 'tollgate',
      outcome: 'ESCALATE',
      gate: { pipeline: 'orders-worker', stage: 'Deploy', action: 'TollgateApproval' },
      image: {
        repository: 'orders/worker',
        digest: expect.stringMatching(/^sha256:bbb1f2208c/),
        tags: [],
      },
      policy: { name: 'baseline' },
      violations: [expect.objectContaining({ rule: 'fixable-high', findings: ['CVE-2024-21538'] })],
      vulnerabilitiesTruncated: false,
      action: null,
      resolution: null,
    });
    expect(decision.vulnerabilities).toContain('CVE-2024-21538');
    expect(decision.summary).toContain('ESCALATE');
    expect(action).toMatchObject({
      actor: 'tollgate',
      outcome: 'ESCALATE',
      action: {
        kind: 'escalation',
        status: null,
        answer: null,
        subject: expect.stringContaining('ESCALATE'),
      },
      vulnerabilities: [],
    });
    const alice = 'arn:aws:sts::123456789012:assumed-role/SecurityEngineer/alice';
    expect(reviewed).toMatchObject({
      actor: alice,
      outcome: 'ESCALATE',
      resolution: {
        reviewer: alice,
        byTollgate: false,
        status: 'Approved',
        summary: expect.stringContaining('SEC-977'),
      },
    });
    // The end comes after the reviewer: the record carries both.
    expect(ended).toMatchObject({ actor: alice, resolution: { state: 'SUCCEEDED', reviewer: alice } });

    // The auditor's questions, through the indexes.
    const byReviewer: AuditRecord[] = [];
    for await (const r of audit.list({ reviewer: alice })) byReviewer.push(r);
    expect(byReviewer.map((r) => r.seq)).toEqual([4, 3]);
    const byCve: AuditRecord[] = [];
    for await (const r of audit.list({ vulnerability: 'CVE-2024-21538' })) byCve.push(r);
    expect(byCve).toEqual([decision]);
    const escalations: AuditRecord[] = [];
    for await (const r of audit.list({ outcome: 'ESCALATE', type: 'decision' })) escalations.push(r);
    expect(escalations).toEqual([decision]);
  });

  it('records the approval result sent and CodePipeline’s answer, and Tollgate’s own CloudTrail call', async () => {
    const { audit } = await replay(join(DIR, '01-clean-image-approved.json'));
    const chain = await chainOf(audit, 'billing-api');
    expect(chain.map((r) => r.type)).toEqual(['decision', 'action', 'resolution', 'resolution']);
    expect(chain[1]).toMatchObject({
      outcome: 'APPROVE',
      action: { kind: 'approval-result', status: 'Approved', answer: 'accepted', subject: null },
    });
    expect(chain.slice(2).map((r) => r.resolution?.byTollgate)).toEqual([true, true]);
    expect(chain[3]!.resolution?.state).toBe('SUCCEEDED');
  });
});

describe('duplicate deliveries', () => {
  it('every event delivered twice, at once: the same records as one delivery, no duplicate', async () => {
    const file = join(DIR, '03-fixable-high-escalated-then-approved.json');
    const once = await replay(file);
    const twice = await replay(file, {
      deliverVia: async (event, deliver) => {
        await Promise.all([deliver(event, 0), deliver(event, 1)]);
      },
    });
    const shape = (chain: AuditRecord[]) =>
      chain.map((r) => [r.type, r.outcome, r.action?.kind ?? null, r.resolution?.state ?? null]);
    const clean = await chainOf(once.audit, 'orders-worker');
    const doubled = await chainOf(twice.audit, 'orders-worker');
    expect(shape(doubled)).toEqual(shape(clean));
    expect((await twice.audit.verify()).ok).toBe(true);
  });
});

describe('verify catches a tampered trail', () => {
  async function trail(): Promise<{ audit: DynamoAuditStore; tableName: string; chain: AuditRecord[] }> {
    const { audit, tableName } = await replay(join(DIR, '03-fixable-high-escalated-then-approved.json'));
    const chain = await chainOf(audit, 'orders-worker');
    expect(chain).toHaveLength(4);
    expect((await audit.verify('orders-worker')).ok).toBe(true);
    return { audit, tableName, chain };
  }

  async function item(tableName: string, seq: number): Promise<Record<string, unknown>> {
    const out = await dynamo().client.send(
      new GetCommand({ TableName: tableName, Key: { pk: auditPk('orders-worker'), sk: auditSk(seq) } }),
    );
    return out.Item!;
  }

  it('an edited record: its summary rewritten in the table', async () => {
    const { audit, tableName } = await trail();
    const stored = await item(tableName, 1);
    const record = stored.record as AuditRecord;
    await dynamo().client.send(
      new PutCommand({
        TableName: tableName,
        Item: { ...stored, record: { ...record, summary: 'APPROVE: nothing to see here' } },
      }),
    );
    const result = await audit.verify('orders-worker');
    expect(result.ok).toBe(false);
    expect(result.problems).toEqual([
      {
        pipeline: 'orders-worker',
        seq: 1,
        kind: 'changed',
        detail: expect.stringContaining('record 1 was changed'),
      },
    ]);
  });

  it('a deleted record', async () => {
    const { audit, tableName } = await trail();
    await dynamo().client.send(
      new DeleteCommand({ TableName: tableName, Key: { pk: auditPk('orders-worker'), sk: auditSk(2) } }),
    );
    expect((await audit.verify()).problems).toEqual([
      {
        pipeline: 'orders-worker',
        seq: 2,
        kind: 'missing',
        detail: expect.stringContaining('record 2 is missing'),
      },
    ]);
  });

  it('the last record deleted: the head says it existed', async () => {
    const { audit, tableName } = await trail();
    await dynamo().client.send(
      new DeleteCommand({ TableName: tableName, Key: { pk: auditPk('orders-worker'), sk: auditSk(4) } }),
    );
    expect((await audit.verify('orders-worker')).problems).toEqual([
      {
        pipeline: 'orders-worker',
        seq: 4,
        kind: 'missing',
        detail: expect.stringContaining('record 4 is missing'),
      },
    ]);
  });

  it('a swapped pair: two records’ contents exchanged between their items', async () => {
    const { audit, tableName } = await trail();
    const second = await item(tableName, 2);
    const third = await item(tableName, 3);
    await dynamo().client.send(
      new PutCommand({ TableName: tableName, Item: { ...second, record: third.record } }),
    );
    await dynamo().client.send(
      new PutCommand({ TableName: tableName, Item: { ...third, record: second.record } }),
    );
    expect((await audit.verify('orders-worker')).problems).toEqual([
      { pipeline: 'orders-worker', seq: 2, kind: 'reordered', detail: expect.stringContaining('swapped') },
    ]);
  });
});

describe('advisory mode in the trail', () => {
  it('an advisory decision says so in fields, not only in words: mode, wouldBe, and the findings set aside', async () => {
    const source = JSON.parse(readFileSync(join(DIR, '02-critical-rejected.json'), 'utf8')) as Record<
      string,
      unknown
    > & { policy: string; world: { findings: Record<string, { file: string }> }; expect: unknown[] };
    source.policy = join(ROOT, 'examples', 'policies', 'advisory.yaml');
    for (const f of Object.values(source.world.findings)) f.file = join(DIR, f.file);
    source.expect = [];
    const file = join(mkdtempSync(join(tmpdir(), 'tollgate-audit-')), 'advisory.json');
    writeFileSync(file, JSON.stringify(source));
    const { audit } = await replay(file);
    const chain = await chainOf(audit, 'payments-api');
    const decision = chain.find((r) => r.type === 'decision')!;
    // Only in the summary's words before: `--outcome REJECT` and Athena could not find what it let through.
    // (ESCALATE, not APPROVE: the image has a finding of unknown severity, which advisory mode does not soften.)
    expect(decision).toMatchObject({ outcome: 'ESCALATE', mode: 'advisory', wouldBe: 'REJECT' });
    expect(decision.violations.map((v) => v.rule)).toContain('unknown-severity');
    expect(decision.ignored).toBeGreaterThan(0);
    for (const r of chain) expect([r.type, r.mode, r.wouldBe]).toEqual([r.type, 'advisory', 'REJECT']);
    expect(await audit.verify('payments-api')).toMatchObject({ ok: true });
  });
});

describe('concurrent appends', () => {
  it('two gates of one pipeline deciding and acting at once make one gapless chain', async () => {
    // Two approval actions of one stage, one image: the scan event decides both gates concurrently, each
    // reads the same head, and one of them has to re-read it and append after the other.
    const source = JSON.parse(
      readFileSync(join(DIR, '03-fixable-high-escalated-then-approved.json'), 'utf8'),
    ) as Record<string, unknown> & {
      policy: string;
      world: { approvals: Record<string, unknown>[]; findings: Record<string, { file: string }> };
      steps: Record<string, unknown>[];
      expect: unknown[];
    };
    const approval = source.world.approvals[0]!;
    source.policy = join(DIR, source.policy);
    for (const f of Object.values(source.world.findings)) f.file = join(DIR, f.file);
    source.world.approvals = [
      { ...approval, action: 'TollgateA', token: '00000003-aaaa-4ea7-a67e-0123456789ab' },
      { ...approval, action: 'TollgateB', token: '00000003-bbbb-4ea7-a67e-0123456789ab' },
    ];
    const started = source.steps[0]!.approvalStarted as Record<string, unknown>;
    const review = source.steps[3]!.review as Record<string, unknown>;
    source.steps = [
      { at: '0s', approvalStarted: { ...started, action: 'TollgateA' } },
      { at: '0s', approvalStarted: { ...started, action: 'TollgateB' } },
      source.steps[1]!,
      { at: '20m', review: { ...review, action: 'TollgateA' } },
      { at: '21m', review: { ...review, action: 'TollgateB' } },
    ];
    source.expect = [];
    const dir = mkdtempSync(join(tmpdir(), 'tollgate-audit-'));
    const file = join(dir, 'two-gates.json');
    writeFileSync(file, JSON.stringify(source));

    let world: World | undefined;
    const { result, audit } = await replay(file, {
      onWorld: (w) => {
        world = w;
      },
    });
    expect(result.gates.map((g) => [g.action, g.state, g.outcome])).toEqual([
      ['TollgateA', 'CLOSED', 'ESCALATE'],
      ['TollgateB', 'CLOSED', 'ESCALATE'],
    ]);
    const chain = await chainOf(audit, 'orders-worker');
    expect(chain.map((r) => r.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(
      chain
        .filter((r) => r.type === 'decision')
        .map((r) => r.gate.action)
        .sort(),
    ).toEqual(['TollgateA', 'TollgateB']);
    expect(chain.filter((r) => r.type === 'action')).toHaveLength(2);
    expect(await audit.verify()).toEqual({ ok: true, records: 8, problems: [] });
    // The race did happen: 8 records, and at least one append re-chained after losing its place. The
    // decisions' VULN# index items are TransactWriteItems too (after the record's): they are not appends.
    const transactions = world!.calls.filter((c) => c.operation === 'TransactWriteItems');
    const vulnIndex = (c: (typeof transactions)[number]) => vulnIndexWrite(c.input.TransactItems);
    expect(transactions.filter(vulnIndex).length).toBeGreaterThanOrEqual(2);
    expect(transactions.filter((c) => !vulnIndex(c)).length).toBeGreaterThan(8);
  });
});
