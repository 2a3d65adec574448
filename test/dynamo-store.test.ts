import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import { GetCommand, PutCommand, QueryCommand, TransactWriteCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalDynamo, startLocalDynamo } from '../adapters/dynamodb/local.js';
import {
  createDocumentClient,
  DynamoStore,
  ItemTooLargeError,
  itemBytes,
  MAX_ITEM_BYTES,
} from '../adapters/dynamodb/store.js';
import { ensureTable, INDEX, TABLE_DEFINITION } from '../adapters/dynamodb/table.js';
import { ChainHeadMovedError, chainRecord } from '../shared/audit/chain.js';
import type { AuditEntry } from '../shared/audit/record.js';
import type { DecisionRecord, Outcome } from '../shared/decision/record.js';
import type {
  Gate,
  GateKey,
  GateState,
  ScanStatus,
  StoredDecision,
  ViolationFindings,
} from '../shared/gate/model.js';
import { sampleGate } from './helpers.js';

const TABLE = `tollgate-test-${process.pid}-${Date.now()}`;

let dynamo: LocalDynamo;
let store: DynamoStore;

beforeAll(async () => {
  dynamo = await startLocalDynamo();
  await ensureTable(dynamo.client, TABLE);
  store = new DynamoStore(dynamo.client, TABLE);
});

afterAll(async () => {
  await dynamo?.close();
});

let serial = 0;
/** The registry the scan statuses are of (the tests' one account). */
const REGISTRY = '123456789012';

function key(overrides: Partial<GateKey> = {}): GateKey {
  serial++;
  return {
    pipeline: 'payments-prod',
    executionId: `0f4c1e2a-${String(serial).padStart(4, '0')}-4d6b-9a51-7c3e2f1b8a90`,
    stage: 'Security',
    action: 'Tollgate',
    ...overrides,
  };
}

function gate(overrides: Partial<Gate> = {}): Gate {
  return sampleGate(key(), overrides);
}

/** An audit entry of the gate's, for a write that appends one. */
function auditEntryOf(g: Gate): AuditEntry {
  return {
    type: 'decision',
    time: g.updatedAt,
    actor: 'tollgate',
    gate: g.key,
    image: { repository: 'payments/api', digest: 'sha256:abc', tags: ['1.4.2'] },
    outcome: 'REJECT',
    summary: 'REJECT by policy baseline',
    violations: [],
    warnings: [],
    exceptions: { applied: [], expired: [], revoked: [], unused: [], expiringSoon: [] },
    counts: { CRITICAL: 1, HIGH: 0, MEDIUM: 3, LOW: 0, INFORMATIONAL: 0, UNTRIAGED: 0 },
    policy: { name: 'baseline', sha256: 'e'.repeat(64) },
    vulnerabilities: [],
    vulnerabilitiesTruncated: false,
    action: null,
    resolution: null,
  };
}

function next(g: Gate, overrides: Partial<Gate> = {}): Gate {
  return { ...g, version: g.version + 1, ...overrides };
}

function record(outcome: Outcome = 'REJECT', violations: DecisionRecord['violations'] = []): DecisionRecord {
  return {
    outcome,
    mode: 'enforce',
    summary: `${outcome} by policy baseline`,
    policy: { name: 'baseline', sha256: 'f8c485cbc07a' },
    subject: { repository: 'payments/api', digest: 'sha256:abc', tags: ['1.4.2'], pipeline: 'payments-prod' },
    counts: { CRITICAL: 1, HIGH: 0, MEDIUM: 3, LOW: 0, INFORMATIONAL: 0, UNTRIAGED: 0 },
    violations,
    warnings: [],
    exceptions: { applied: [], expired: [], revoked: [], unused: [], expiringSoon: [] },
    ignored: 0,
    evaluatedAt: '2026-11-25T12:05:00.000Z',
  };
}

function decision(g: Gate, overrides: Partial<StoredDecision> = {}): StoredDecision {
  return {
    key: g.key,
    record: record(),
    details: [
      {
        rule: 'no-critical',
        shown: [
          {
            vulnerabilityId: 'CVE-2024-45490',
            package: 'expat',
            installedVersion: '2.5.0',
            fixedInVersion: '2.6.3',
            severity: 'CRITICAL',
            score: 9.8,
            epss: 0.00043,
            exploitAvailable: undefined,
          },
        ],
        more: 0,
      },
    ],
    image: g.image,
    trigger: 'scan-finished',
    decidedAt: '2026-11-25T12:05:00.000Z',
    latencyMs: 300_000,
    ...overrides,
  };
}

function scan(overrides: Partial<ScanStatus> = {}): ScanStatus {
  return {
    digest: 'sha256:scan',
    repository: 'payments/api',
    registryId: REGISTRY,
    source: 'inspector',
    status: 'INITIAL_SCAN_COMPLETE',
    verdict: 'complete',
    counts: { CRITICAL: 1, MEDIUM: 3 },
    at: '2026-11-25T12:00:00.000Z',
    ...overrides,
  };
}

/** A digest no other test uses, so index queries see only this test's gates. */
function digest(): string {
  serial++;
  return `sha256:${String(serial).padStart(64, '0')}`;
}

function withDigest(d: string, overrides: Partial<Gate> = {}): Gate {
  const base = gate();
  return gate({ ...overrides, image: { ...base.image!, digest: d } });
}

const ids = (gates: readonly Gate[]): string[] => gates.map((g) => g.key.executionId).sort();

describe('DynamoStore on dynalite', () => {
  it('gives back the gate, decision and scan status it was given', async () => {
    const g = gate({
      tokenHash: 'e3b0c442',
      lastRead: { at: '2026-11-25T12:01:00.000Z', counts: { HIGH: 2 }, total: 2 },
      approvalResult: { status: 'Rejected', summary: '' },
      reviewer: {
        identity: 'arn:aws:sts::123456789012:assumed-role/sec/alice',
        type: 'AssumedRole',
        status: undefined,
        summary: 'ok',
        at: '2026-11-25T12:10:00.000Z',
        tollgate: false,
      },
      image: {
        repository: 'payments/api',
        digest: digest(),
        tags: [],
        registryId: '123456789012',
        source: '',
      },
    });
    expect(await store.createGate(g)).toBe(true);
    expect(await store.getGate(g.key)).toEqual(g);

    const d = decision(g);
    expect(await store.decide(d, next(g, { state: 'DECIDED', outcome: 'REJECT' }), 1)).toBe(true);
    expect(await store.getDecision(g.key)).toEqual(d);

    const s = scan({ digest: digest() });
    await store.putScan(s);
    expect(await store.getScan(s.digest, REGISTRY, 'payments/api')).toEqual(s);
    const learnt = scan({ digest: digest(), counts: undefined, verdict: 'pending' });
    await store.putScan(learnt);
    expect(await store.getScan(learnt.digest, REGISTRY, 'payments/api')).toEqual(learnt);
  });

  it('answers undefined for what was never stored', async () => {
    expect(await store.getGate(key())).toBeUndefined();
    expect(await store.getDecision(key())).toBeUndefined();
    expect(await store.getScan(digest(), REGISTRY, 'payments/api')).toBeUndefined();
  });

  it('creates a gate once', async () => {
    const g = gate();
    expect(await store.createGate(g)).toBe(true);
    expect(await store.createGate({ ...g, account: 'other' })).toBe(false);
    expect((await store.getGate(g.key))?.account).toBe('123456789012');
  });

  it('a gate that names its run claims it: a gate of the same run under another key is refused', async () => {
    const run = `run-${serial}-7c1d`;
    const first = gate({ key: key({ attempt: 3 }), actionExecutionId: run });
    expect(await store.createGate(first)).toBe(true);
    expect(await store.gateOfRun(run)).toEqual(first.key);
    // The sweep found the same run and numbered it by the action's runs: refused, and nothing of it stored.
    const second = gate({ key: { ...first.key, attempt: 2 }, actionExecutionId: run });
    expect(await store.createGate(second)).toBe(false);
    expect(await store.getGate(second.key)).toBeUndefined();
    // The same key again (a duplicate delivery) is refused as before; a gate naming no run claims nothing.
    expect(await store.createGate(first)).toBe(false);
    const unnamed = gate();
    expect(await store.createGate(unnamed)).toBe(true);
    expect(await store.gateOfRun('never-claimed')).toBeUndefined();
    // The claim as stored: the holder's key, and an expiry past the longest approval (60 days) and the
    // dead-letter queues' 14 days after the gate was opened.
    const claim = await dynamo.client.send(
      new GetCommand({ TableName: TABLE, Key: { pk: `RUN#${run}`, sk: 'RUN' }, ConsistentRead: true }),
    );
    expect(claim.Item).toMatchObject({ type: 'RUN', gate: first.key });
    expect(claim.Item?.expiresAt).toBe(Date.parse(first.updatedAt) / 1000 + 75 * 86_400);
  });

  it("tries a gate's opening again when a concurrent transaction cancels it as a conflict", async () => {
    const doc = createDocumentClient({ endpoint: dynamo.endpoint });
    let conflicts = 2;
    doc.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName === 'TransactWriteItemsCommand' && conflicts-- > 0) {
          throw new TransactionCanceledException({
            message: 'Transaction cancelled, please refer cancellation reasons for specific reasons',
            $metadata: { httpStatusCode: 400 },
            CancellationReasons: [{ Code: 'TransactionConflict' }, { Code: 'None' }],
          });
        }
        return next(args);
      },
      { step: 'initialize', name: 'conflictTwice' },
    );
    const conflicted = new DynamoStore(doc, TABLE);
    const g = gate({ actionExecutionId: `run-${serial}-c0f1` });
    expect(await conflicted.createGate(g)).toBe(true);
    expect(conflicts).toBe(-1);
    expect((await store.getGate(g.key))?.actionExecutionId).toBe(g.actionExecutionId);
    // A conflict that does not pass is thrown (Lambda retries the event), not read as a lost race.
    conflicts = 10;
    await expect(
      conflicted.createGate(gate({ actionExecutionId: `run-${serial}-c0f2` })),
    ).rejects.toMatchObject({
      name: 'TransactionCanceledException',
    });
  });

  it("a cancelled transaction of a gate's write and its audit append: the reasons say whose part failed", async () => {
    // dynalite serialises requests and never answers TransactionConflict: the service's answers, given here.
    const doc = createDocumentClient({ endpoint: dynamo.endpoint });
    let codes: ((item: { pk?: unknown }) => string) | undefined;
    doc.middlewareStack.add(
      (next, context) => async (args) => {
        const input = args.input as { TransactItems?: { Put?: { Item?: { pk?: unknown } } }[] };
        if (context.commandName === 'TransactWriteItemsCommand' && codes !== undefined) {
          const code = codes;
          throw new TransactionCanceledException({
            message: 'Transaction cancelled, please refer cancellation reasons for specific reasons',
            $metadata: { httpStatusCode: 400 },
            CancellationReasons: (input.TransactItems ?? []).map((t) => ({ Code: code(t.Put?.Item ?? {}) })),
          });
        }
        return next(args);
      },
      { step: 'initialize', name: 'cancelledAs' },
    );
    const cancelling = new DynamoStore(doc, TABLE);
    const audit = (p: { pk?: unknown }) => String(p.pk).startsWith('AUDIT#');
    try {
      const g = gate();
      await store.createGate(g);
      const updated = next(g, { notifications: 1 });
      const decision = { key: g.key, record: record(), trigger: 'sweep' } as unknown as StoredDecision;
      const appended = chainRecord(auditEntryOf(g), g.key.pipeline, undefined);
      const writes = {
        update: () => cancelling.updateGate(updated, 1, appended),
        decide: () => cancelling.decide(decision, next(g, { state: 'DECIDED' }), 1, appended),
      };
      for (const [name, write] of Object.entries(writes)) {
        // Only the audit part: the head moved on (a failed condition or a conflict): re-chain.
        for (const moved of ['ConditionalCheckFailed', 'TransactionConflict']) {
          codes = (item) => (audit(item) ? moved : 'None');
          await expect(write(), `${name}: ${moved}`).rejects.toThrow(ChainHeadMovedError);
        }
        // The gate's condition: a lost race, whatever the audit part says.
        codes = (item) => (audit(item) ? 'TransactionConflict' : 'ConditionalCheckFailed');
        expect(await write(), name).toBe(false);
        // A conflict on the gate's items, or a reason of another kind: an error for the caller to retry.
        for (const failed of [
          (item: { pk?: unknown }) => (audit(item) ? 'None' : 'TransactionConflict'),
          (item: { pk?: unknown }) => (audit(item) ? 'ThrottlingError' : 'None'),
        ]) {
          codes = failed;
          await expect(write(), name).rejects.toMatchObject({ name: 'TransactionCanceledException' });
        }
      }
      codes = undefined;
      expect(await store.getGate(g.key)).toEqual(g);
    } finally {
      doc.destroy();
    }
  });

  it('updates a gate only from the version it was read at', async () => {
    const g = gate();
    await store.createGate(g);
    const v2 = next(g, { notifications: 1 });
    expect(await store.updateGate(v2, 1)).toBe(true);
    expect(await store.updateGate(next(g, { notifications: 7 }), 1)).toBe(false);
    expect(await store.getGate(g.key)).toEqual(v2);
    expect(await store.updateGate(next(gate()), 1)).toBe(false);
  });

  it('refuses an update that does not advance the version', async () => {
    const g = gate();
    await store.createGate(g);
    await expect(store.updateGate(g, 1)).rejects.toThrow(/must write 2/);
  });

  it('lets exactly one of 10 concurrent updates from the same version win', async () => {
    const g = gate();
    await store.createGate(g);
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => store.updateGate(next(g, { notifications: i }), 1)),
    );
    expect(results.filter(Boolean)).toHaveLength(1);
    const winner = results.indexOf(true);
    expect(await store.getGate(g.key)).toEqual(next(g, { notifications: winner }));
  });

  it('decides once: a second decision changes neither the decision nor the gate', async () => {
    const g = gate();
    await store.createGate(g);
    const first = decision(g);
    const decided = next(g, { state: 'DECIDED', outcome: 'REJECT' });
    expect(await store.decide(first, decided, 1)).toBe(true);

    const again = decision(g, { trigger: 'sweep', record: record('APPROVE') });
    expect(await store.decide(again, next(decided, { outcome: 'APPROVE' }), 2)).toBe(false);
    expect(await store.getDecision(g.key)).toEqual(first);
    expect(await store.getGate(g.key)).toEqual(decided);
  });

  it('decides nothing when the gate moved on: no decision is written', async () => {
    const g = gate();
    await store.createGate(g);
    const moved = next(g, { notifications: 1 });
    await store.updateGate(moved, 1);
    expect(await store.decide(decision(g), next(g, { state: 'DECIDED' }), 1)).toBe(false);
    expect(await store.getDecision(g.key)).toBeUndefined();
    expect(await store.getGate(g.key)).toEqual(moved);
  });

  it('decides nothing for a gate that was never created', async () => {
    const g = gate();
    expect(await store.decide(decision(g), next(g, { state: 'DECIDED' }), 1)).toBe(false);
    expect(await store.getDecision(g.key)).toBeUndefined();
    expect(await store.getGate(g.key)).toBeUndefined();
  });

  it('keeps a status per repository of a digest: a copy pushed elsewhere is scanned apart', async () => {
    const d = digest();
    const staging = scan({
      digest: d,
      repository: 'staging/api',
      status: 'COMPLETE',
      at: '2026-11-25T12:10:00Z',
    });
    const prod = scan({ digest: d, status: 'PENDING', verdict: 'pending', at: '2026-11-25T12:00:00Z' });
    expect(await store.putScan(staging)).toBe(true);
    // Older than staging's, yet stored: it is another repository's status, not an out-of-order one.
    expect(await store.putScan(prod)).toBe(true);
    expect(await store.getScan(d, REGISTRY, 'staging/api')).toEqual(staging);
    expect(await store.getScan(d, REGISTRY, 'payments/api')).toEqual(prod);
    expect(await store.getScan(d, REGISTRY, 'other/api')).toBeUndefined();
  });

  it("keeps a status per registry: a same-named repository of another account neither replaces this one's nor merges its counts", async () => {
    // A delegated administrator's Scan events name its members' repositories. Keyed by name alone, a member's
    // newer status (TOTAL 0) replaced this account's, and one of the same second merged the two's counts.
    const d = digest();
    const ours = scan({
      digest: d,
      counts: { CRITICAL: 1, MEDIUM: 1, TOTAL: 3 },
      at: '2026-11-25T12:00:00Z',
    });
    const member = scan({
      digest: d,
      registryId: '210987654321',
      counts: { TOTAL: 0 },
      at: '2026-11-25T12:00:10Z',
    });
    expect(await store.putScan(ours)).toBe(true);
    expect(await store.putScan(member)).toBe(true);
    expect(await store.getScan(d, REGISTRY, 'payments/api')).toEqual(ours);
    expect(await store.getScan(d, '210987654321', 'payments/api')).toEqual(member);
    // Of the same second as ours: still two statuses, each with its own counts.
    const tie = scan({ digest: d, registryId: '555555555555', counts: { LOW: 9, TOTAL: 9 }, at: ours.at });
    expect(await store.putScan(tie)).toBe(true);
    expect(await store.getScan(d, REGISTRY, 'payments/api')).toEqual(ours);
    expect(await store.getScan(d, '555555555555', 'payments/api')).toEqual(tie);
    // A status of no registry could be any account's: refused, not stored under some key.
    await expect(store.putScan(scan({ digest: d, registryId: undefined }))).rejects.toThrow(
      /expected the registry \(account id\) it is of; got none/,
    );
  });

  it('keeps the newest scan status whatever the order of arrival', async () => {
    const d = digest();
    const newer = scan({ digest: d, status: 'COMPLETE', at: '2026-11-25T12:10:00.000Z' });
    const older = scan({ digest: d, status: 'PENDING', verdict: 'pending', at: '2026-11-25T12:00:00.000Z' });
    expect(await store.putScan(newer)).toBe(true);
    expect(await store.putScan(older)).toBe(false);
    expect(await store.getScan(d, REGISTRY, 'payments/api')).toEqual(newer);

    // Same instant, other spelling: compared as times, not texts (text order would call it older). The same
    // event again is taken as stored; a tie of the same instant keeps the stored status (see the next test).
    expect(await store.putScan({ ...newer, at: '2026-11-25T12:10:00Z' })).toBe(true);
    expect(await store.getScan(d, REGISTRY, 'payments/api')).toEqual(newer);
    const halfSecondEarlier = scan({ digest: d, status: 'LATE', at: '2026-11-25T12:09:59.500Z' });
    expect(await store.putScan(halfSecondEarlier)).toBe(false);
    expect(await store.getScan(d, REGISTRY, 'payments/api')).toEqual(newer);

    const newest = scan({ digest: d, status: 'COMPLETE', at: '2026-11-25T13:00:00.000Z' });
    await store.putScan(newest);
    expect(await store.getScan(d, REGISTRY, 'payments/api')).toEqual(newest);
  });

  it('two statuses of the same second: neither is known to be newer, so the stored one keeps the higher count of each severity', async () => {
    // Scan events carry whole seconds. The later delivered overwrote the other: counts going from CRITICAL 2
    // to 0 let a findings read that had not caught up with the two criticals pass for settled.
    const d = digest();
    const at = '2026-11-25T12:10:00Z';
    const first = scan({ digest: d, status: 'SCAN_COMPLETE', counts: { CRITICAL: 2, LOW: 1, TOTAL: 3 }, at });
    const second = scan({
      digest: d,
      status: 'SCAN_COMPLETE',
      counts: { CRITICAL: 0, LOW: 3, TOTAL: 3 },
      at,
    });
    expect(await store.putScan(first)).toBe(true);
    // `false`: what is stored is not this status as given; the caller reads the store.
    expect(await store.putScan(second)).toBe(false);
    expect(await store.getScan(d, REGISTRY, 'payments/api')).toEqual({
      ...first,
      counts: { CRITICAL: 2, LOW: 3, TOTAL: 3 },
    });
    // A duplicate of either changes nothing; one that holds every count is the status stored.
    expect(await store.putScan(first)).toBe(false);
    const most = scan({ digest: d, status: 'SCAN_COMPLETE', counts: { CRITICAL: 2, LOW: 3, TOTAL: 3 }, at });
    expect(await store.putScan(most)).toBe(true);
    // A second later is newer: it replaces the status whole, lower counts and all.
    const later = scan({
      digest: d,
      status: 'SCAN_COMPLETE',
      counts: { LOW: 1, TOTAL: 1 },
      at: '2026-11-25T12:10:01Z',
    });
    expect(await store.putScan(later)).toBe(true);
    expect(await store.getScan(d, REGISTRY, 'payments/api')).toEqual(later);
  });

  it('ties written at once are both kept: each severity at its highest', async () => {
    const d = digest();
    const at = '2026-11-25T12:10:00Z';
    const statuses = ['CRITICAL', 'HIGH', 'MEDIUM', 'LOW'].map((severity, i) =>
      scan({ digest: d, counts: { [severity]: i + 1 }, at }),
    );
    await Promise.all(statuses.map((s) => store.putScan(s)));
    expect((await store.getScan(d, REGISTRY, 'payments/api'))?.counts).toEqual({
      CRITICAL: 1,
      HIGH: 2,
      MEDIUM: 3,
      LOW: 4,
    });
  });

  it('finds the gates of a digest in the wanted states only', async () => {
    const d = digest();
    const waiting = withDigest(d);
    const decided = withDigest(d, { state: 'DECIDED' });
    const acted = withDigest(d, { state: 'ACTED' });
    const elsewhere = withDigest(digest());
    for (const g of [waiting, decided, acted, elsewhere]) await store.createGate(g);

    expect(ids(await store.gatesForDigest(d, ['WAITING']))).toEqual(ids([waiting]));
    expect(ids(await store.gatesForDigest(d, ['WAITING', 'DECIDED']))).toEqual(ids([waiting, decided]));
    expect(ids(await store.gatesForDigest(d, ['ACTED', 'CLOSED']))).toEqual(ids([acted]));
    expect(await store.gatesForDigest(d, [])).toEqual([]);
    expect(await store.gatesForDigest(digest(), ['WAITING'])).toEqual([]);
    expect(await store.gatesForDigest(d, ['WAITING'])).toEqual([waiting]);

    // A state change moves the gate between the state's slices of the digest.
    expect(await store.updateGate(next(waiting, { state: 'STALE' }), 1)).toBe(true);
    expect(await store.gatesForDigest(d, ['WAITING'])).toEqual([]);
    expect(ids(await store.gatesForDigest(d, ['STALE']))).toEqual(ids([waiting]));
  });

  it('leaves gates without an image out of the digest index', async () => {
    const g = gate({ image: undefined, imageProblem: 'no image URI in CustomData' });
    await store.createGate(g);
    expect(await store.getGate(g.key)).toEqual(g);
    const open = await store.openGates();
    expect(open.find((o) => o.key.executionId === g.key.executionId)).toEqual(g);
  });

  it('lists exactly the WAITING and DECIDED gates as open, and drops a gate when it leaves them', async () => {
    const before = new Set(ids(await store.openGates()));
    const states: GateState[] = ['WAITING', 'DECIDED', 'ACTED', 'CLOSED', 'STALE'];
    // Enough gates to land in every shard.
    const gates = Array.from({ length: 20 }, (_, i) =>
      gate({
        state: states[i % states.length]!,
        deadline: `2026-11-25T12:${String(59 - i).padStart(2, '0')}:00.000Z`,
      }),
    );
    for (const g of gates) await store.createGate(g);

    const fresh = (all: readonly Gate[]): Gate[] => all.filter((g) => !before.has(g.key.executionId));
    const open = fresh(await store.openGates());
    expect(ids(open)).toEqual(ids(gates.filter((g) => g.state === 'WAITING' || g.state === 'DECIDED')));
    expect(open.every((g) => g.state === 'WAITING' || g.state === 'DECIDED')).toBe(true);
    // Soonest deadline first, across shards.
    const deadlines = open.map((g) => g.deadline);
    expect(deadlines).toEqual([...deadlines].sort());

    const [w, d] = [gates[0]!, gates[1]!];
    expect(await store.updateGate(next(d, { state: 'ACTED' }), 1)).toBe(true);
    expect(await store.updateGate(next(w, { state: 'DECIDED' }), 1)).toBe(true);
    const after = fresh(await store.openGates());
    expect(after.map((g) => g.key.executionId)).not.toContain(d.key.executionId);
    expect(after.find((g) => g.key.executionId === w.key.executionId)?.state).toBe('DECIDED');

    for (const state of ['CLOSED', 'STALE'] as const) {
      const g = gate();
      await store.createGate(g);
      expect(ids(fresh(await store.openGates()))).toContain(g.key.executionId);
      await store.updateGate(next(g, { state }), 1);
      expect(ids(fresh(await store.openGates()))).not.toContain(g.key.executionId);
    }

    // The index holds open gates only: nothing else is stored under its keys.
    const indexed = await dynamo.client.send(
      new QueryCommand({
        TableName: TABLE,
        IndexName: INDEX.open,
        KeyConditionExpression: 'openPk = :pk',
        ExpressionAttributeValues: { ':pk': 'OPEN#0' },
      }),
    );
    expect((indexed.Items ?? []).every((i) => i.state === 'WAITING' || i.state === 'DECIDED')).toBe(true);
  });

  it('finds a gate by the hash of its last token', async () => {
    const g = gate();
    await store.createGate(g);
    expect(await store.gateByTokenHash('9f86d081')).toBeUndefined();
    const seen = next(g, { tokenHash: '9f86d081' });
    await store.updateGate(seen, 1);
    expect(await store.gateByTokenHash('9f86d081')).toEqual(seen);
    const renewed = next(seen, { tokenHash: '2c26b46b' });
    await store.updateGate(renewed, 2);
    expect(await store.gateByTokenHash('9f86d081')).toBeUndefined();
    expect(await store.gateByTokenHash('2c26b46b')).toEqual(renewed);
    expect(await store.gateByTokenHash('')).toBeUndefined();
  });

  it('answers audit queries: decisions by pipeline and time, by digest, by outcome and time', async () => {
    const pipeline = `audit-${serial++}`;
    const d = digest();
    const made: StoredDecision[] = [];
    for (const [i, outcome] of (['APPROVE', 'REJECT', 'ESCALATE'] as const).entries()) {
      const g = withDigest(d, { key: key({ pipeline }) });
      await store.createGate(g);
      const dec = decision(g, { record: record(outcome), decidedAt: `2031-01-0${i + 1}T00:00:00.000Z` });
      await store.decide(dec, next(g, { state: 'DECIDED' }), 1);
      made.push(dec);
    }
    expect(await store.decisionsForPipeline(pipeline)).toEqual(made);
    expect(
      await store.decisionsForPipeline(pipeline, {
        from: '2031-01-02T00:00:00Z',
        to: '2031-01-02T00:00:00Z',
      }),
    ).toEqual([made[1]]);
    expect(await store.decisionsForPipeline(pipeline, { from: '2031-01-02T00:00:00.000Z' })).toEqual(
      made.slice(1),
    );
    expect(await store.decisionsForPipeline(pipeline, { to: '2031-01-01T12:00:00.000Z' })).toEqual(
      made.slice(0, 1),
    );
    expect(await store.decisionsForPipeline(pipeline, { from: '2031-02-01', to: '2031-01-01' })).toEqual([]);
    expect(await store.decisionsForDigest(d)).toEqual(made);
    expect(await store.decisionsByOutcome('ESCALATE', { from: '2031-01-01T00:00:00.000Z' })).toEqual([
      made[2],
    ]);
    // Decisions share the digest partition with gates but never answer as gates.
    expect(ids(await store.gatesForDigest(d, ['DECIDED']))).toHaveLength(3);
  });

  it('refuses an item over 400 KB with a clear error and writes nothing', async () => {
    const g = gate();
    await store.createGate(g);
    const violations = Array.from({ length: 60 }, (_, v) => ({
      rule: `rule-${v}`,
      action: 'reject' as const,
      allow: 0,
      count: 500,
      findings: Array.from({ length: 500 }, (_, f) => `CVE-2026-${String(v * 1000 + f).padStart(5, '0')}`),
    }));
    const huge = decision(g, { record: record('REJECT', violations) });
    const attempt = store.decide(huge, next(g, { state: 'DECIDED' }), 1);
    await expect(attempt).rejects.toThrow(ItemTooLargeError);
    await expect(attempt).rejects.toThrow(/over DynamoDB's item limit of 409600 bytes/);
    expect(await store.getDecision(g.key)).toBeUndefined();
    expect(await store.getGate(g.key)).toEqual(g);

    const longTimeline = next(g, {
      timeline: Array.from({ length: 5000 }, (_, i) => ({
        at: '2026-11-25T12:00:00.000Z',
        what: `read ${i} `.repeat(10),
      })),
    });
    await expect(store.updateGate(longTimeline, 1)).rejects.toThrow(ItemTooLargeError);
  });

  it('stores a decision with many violations and full details when it fits', async () => {
    const g = gate();
    await store.createGate(g);
    const violations = Array.from({ length: 20 }, (_, v) => ({
      rule: `rule-${v}`,
      action: 'escalate' as const,
      allow: 0,
      count: 200,
      findings: Array.from({ length: 200 }, (_, f) => `CVE-2026-${String(v * 1000 + f).padStart(5, '0')}`),
    }));
    const details: ViolationFindings[] = violations.map((v) => ({
      rule: v.rule,
      shown: v.findings.slice(0, 20).map((id) => ({
        vulnerabilityId: id,
        package: 'openssl',
        installedVersion: '3.0.13',
        fixedInVersion: '3.0.14',
        severity: 'HIGH',
        score: 7.5,
        epss: 0.97,
        exploitAvailable: true,
      })),
      more: 180,
    }));
    const big = decision(g, { record: record('ESCALATE', violations), details });
    expect(await store.decide(big, next(g, { state: 'DECIDED' }), 1)).toBe(true);
    expect(await store.getDecision(g.key)).toEqual(big);
  });

  it('sizes items no smaller than DynamoDB does: dynalite accepts what the guard lets through', async () => {
    // Just under the guard's limit by its own count; dynalite enforces the real 400 KB.
    const base = { pk: `SIZE#${serial++}`, sk: 'SIZE', blob: '' };
    const blob = 'x'.repeat(MAX_ITEM_BYTES - itemBytes(base));
    expect(itemBytes({ ...base, blob })).toBe(MAX_ITEM_BYTES);
    await dynamo.client.send(new PutCommand({ TableName: TABLE, Item: { ...base, blob } }));
    await expect(
      dynamo.client.send(new PutCommand({ TableName: TABLE, Item: { ...base, blob: `${blob}x` } })),
    ).rejects.toThrow(/size/i);
  });

  it('refuses values the table would not give back as given', async () => {
    await expect(store.createGate(gate({ notifications: Number.NaN }))).rejects.toThrow(
      /NaN at gate.notifications/,
    );
    const dated = { ...gate(), updatedAt: new Date() } as unknown as Gate;
    await expect(store.createGate(dated)).rejects.toThrow(/Date at gate.updatedAt/);
  });

  it('creates the table idempotently and its definition names every index it serves', async () => {
    await ensureTable(dynamo.client, TABLE);
    const names = TABLE_DEFINITION.GlobalSecondaryIndexes.map((i) => i.IndexName);
    expect(names.sort()).toEqual(Object.values(INDEX).sort());
    expect(TABLE_DEFINITION.BillingMode).toBe('PAY_PER_REQUEST');
  });
});

describe("startLocalDynamo's transactions of plain Puts (written 25 at a time)", () => {
  it('undo every write when one Put is refused, and cancel with that Put named', async () => {
    const pk = 'TX#plain-puts';
    await dynamo.client.send(new PutCommand({ TableName: TABLE, Item: { pk, sk: 'old', v: 1 } }));
    // 30 Puts: the first replaces the item above, the 28th has a key of the wrong type. It is in the
    // second group of 25, so the whole first group has been written when it is refused.
    const items: Record<string, unknown>[] = Array.from({ length: 30 }, (_, i) => ({
      pk,
      sk: `new-${i}`,
      v: 2,
    }));
    items[0] = { pk, sk: 'old', v: 2 };
    items[27] = { pk: 27, sk: 'bad', v: 2 };
    const error = await dynamo.client
      .send(
        new TransactWriteCommand({
          TransactItems: items.map((Item) => ({ Put: { TableName: TABLE, Item } })),
        }),
      )
      .catch((e: unknown) => e as { name?: string; CancellationReasons?: { Code?: string }[] });
    expect(error).toMatchObject({ name: 'TransactionCanceledException' });
    const reasons = (error as { CancellationReasons?: { Code?: string }[] }).CancellationReasons ?? [];
    expect(reasons).toHaveLength(30);
    expect(reasons.flatMap((r, i) => (r.Code === 'None' ? [] : [[i, r.Code]]))).toEqual([
      [27, 'ValidationError'],
    ]);
    // Nothing of it stays: the replaced item is back as it was, and none of the new ones exists.
    const old = await dynamo.client.send(
      new GetCommand({ TableName: TABLE, Key: { pk, sk: 'old' }, ConsistentRead: true }),
    );
    expect(old.Item).toEqual({ pk, sk: 'old', v: 1 });
    const all = await dynamo.client.send(
      new QueryCommand({
        TableName: TABLE,
        KeyConditionExpression: 'pk = :pk',
        ExpressionAttributeValues: { ':pk': pk },
        ConsistentRead: true,
      }),
    );
    expect(all.Items?.map((i) => i.sk)).toEqual(['old']);
  });
});

describe('startLocalDynamo with a path', () => {
  it('keeps the table across a restart', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tollgate-dynamo-'));
    const path = join(dir, 'nested', 'db');
    try {
      const g = gate();
      const s = scan({ digest: digest() });
      const first = await startLocalDynamo({ path });
      try {
        await ensureTable(first.client, 'tollgate');
        const db = new DynamoStore(first.client, 'tollgate');
        await db.createGate(g);
        await db.decide(decision(g), next(g, { state: 'DECIDED' }), 1);
        await db.putScan(s);
      } finally {
        await first.close();
      }

      const second = await startLocalDynamo({ path });
      try {
        await ensureTable(second.client, 'tollgate');
        const db = new DynamoStore(second.client, 'tollgate');
        expect(await db.getGate(g.key)).toEqual(next(g, { state: 'DECIDED' }));
        expect(await db.getDecision(g.key)).toEqual(decision(g));
        expect(await db.getScan(s.digest, REGISTRY, 'payments/api')).toEqual(s);
        expect(ids(await db.openGates())).toEqual(ids([g]));
      } finally {
        await second.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
