import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { canonical, chainRecord, hashOf, verifyChain } from '../shared/audit/chain.js';
import {
  type AuditEntry,
  type AuditRecord,
  GENESIS,
  MAX_REVIEWER_NAMES,
  reviewerMatches,
  reviewerNames,
} from '../shared/audit/record.js';

function entry(n: number, overrides: Partial<AuditEntry> = {}): AuditEntry {
  return {
    type: 'decision',
    time: new Date(Date.UTC(2026, 10, 25, 12, n)).toISOString(),
    actor: 'tollgate',
    gate: { pipeline: 'payments', executionId: `exec-${n}`, stage: 'Gate', action: 'TollgateApproval' },
    image: { repository: 'payments/api', digest: `sha256:${String(n).padStart(64, '0')}`, tags: ['1.4.2'] },
    outcome: 'APPROVE',
    summary: `APPROVE ${n}`,
    violations: [],
    warnings: [],
    exceptions: { applied: [], expired: [], revoked: [], unused: [], expiringSoon: [] },
    counts: { CRITICAL: 0, HIGH: 0, MEDIUM: n, LOW: 0, INFORMATIONAL: 0, UNTRIAGED: 0 },
    policy: { name: 'baseline', sha256: 'f'.repeat(64) },
    vulnerabilities: [`CVE-2026-${1000 + n}`],
    vulnerabilitiesTruncated: false,
    action: null,
    resolution: null,
    ...overrides,
  };
}

function chain(length: number, pipeline = 'payments'): AuditRecord[] {
  const records: AuditRecord[] = [];
  for (let n = 1; n <= length; n++) records.push(chainRecord(entry(n), pipeline, records.at(-1)));
  return records;
}

const headOf = (records: readonly AuditRecord[]) => {
  const last = records.at(-1)!;
  return { seq: last.seq, hash: last.hash };
};

async function* slowly(records: readonly AuditRecord[]): AsyncIterable<AuditRecord> {
  for (const record of records) {
    await Promise.resolve();
    yield record;
  }
}

describe('canonical', () => {
  it('sorts keys recursively, drops undefined, keeps array order, writes no whitespace', () => {
    expect(canonical({ b: 1, a: { d: [3, { z: 1, y: undefined, x: null }], c: 'é' }, u: undefined })).toBe(
      '{"a":{"c":"é","d":[3,{"x":null,"z":1}]},"b":1}',
    );
  });

  it('does not depend on the order keys were written in', () => {
    const a = { pipeline: 'p', seq: 1, gate: { stage: 's', action: 'a' } };
    const b = { gate: { action: 'a', stage: 's' }, seq: 1, pipeline: 'p' };
    expect(canonical(a)).toBe(canonical(b));
  });

  it('refuses what JSON cannot carry faithfully', () => {
    expect(() => canonical({ n: Number.NaN })).toThrow(/n is NaN/);
    expect(() => canonical({ f: () => 1 })).toThrow(/function/);
  });
});

describe('hashOf and chainRecord', () => {
  it('hashes the canonical form without the hash, with SHA-256 hex', () => {
    const [record] = chain(1);
    const { hash, ...content } = record!;
    expect(hash).toBe(createHash('sha256').update(canonical(content)).digest('hex'));
    expect(hashOf(record!)).toBe(hash);
    expect(hashOf(content)).toBe(hash);
  });

  it('starts at seq 1 after GENESIS and links each record to the previous hash', () => {
    const records = chain(3);
    expect(records.map((r) => r.seq)).toEqual([1, 2, 3]);
    expect(records[0]!.prevHash).toBe(GENESIS);
    expect(records[1]!.prevHash).toBe(records[0]!.hash);
    expect(records[2]!.prevHash).toBe(records[1]!.hash);
    expect(records[2]!.pipeline).toBe('payments');
  });

  it('gives a different hash for any change of content', () => {
    const [record] = chain(1);
    expect(hashOf({ ...record!, summary: 'APPROVE 2' })).not.toBe(record!.hash);
    expect(hashOf({ ...record!, vulnerabilities: [] })).not.toBe(record!.hash);
  });
});

describe('verifyChain', () => {
  it('accepts an intact chain, from an array or a stream, with its head', async () => {
    const records = chain(5);
    expect(await verifyChain(records, headOf(records))).toEqual({ ok: true, records: 5, problems: [] });
    expect(await verifyChain(slowly(records), headOf(records))).toEqual({
      ok: true,
      records: 5,
      problems: [],
    });
    expect(await verifyChain([])).toEqual({ ok: true, records: 0, problems: [] });
  });

  it('names an edited record: its content no longer matches its hash', async () => {
    const records = chain(5);
    records[2] = { ...records[2]!, summary: 'APPROVE (edited)' };
    const result = await verifyChain(records, headOf(records));
    expect(result.ok).toBe(false);
    expect(result.problems).toEqual([
      {
        pipeline: 'payments',
        seq: 3,
        kind: 'changed',
        detail: expect.stringContaining('record 3 was changed'),
      },
    ]);
  });

  it('names an edited and re-hashed record: the next record no longer chains to it', async () => {
    const records = chain(5);
    const { hash: _hash, ...content } = { ...records[1]!, outcome: 'REJECT' as const };
    records[1] = { ...content, hash: hashOf(content) };
    const result = await verifyChain(records, headOf(records));
    expect(result.problems).toEqual([
      {
        pipeline: 'payments',
        seq: 2,
        kind: 'changed',
        detail: expect.stringContaining('record 3 chains to'),
      },
    ]);
  });

  it('names a deleted record: a gap in seq', async () => {
    const records = chain(6);
    const result = await verifyChain(
      records.filter((r) => r.seq !== 4),
      headOf(records),
    );
    expect(result.problems).toEqual([
      {
        pipeline: 'payments',
        seq: 4,
        kind: 'missing',
        detail: expect.stringContaining('record 4 is missing'),
      },
    ]);
    const two = await verifyChain(records.filter((r) => r.seq !== 2 && r.seq !== 3));
    expect(two.problems[0]).toMatchObject({
      seq: 2,
      kind: 'missing',
      detail: expect.stringContaining('2–3'),
    });
  });

  it('names a deleted first record', async () => {
    const records = chain(3);
    const result = await verifyChain(records.slice(1));
    expect(result.problems).toEqual([
      { pipeline: 'payments', seq: 1, kind: 'missing', detail: expect.any(String) },
    ]);
  });

  it('names deleted last records: the head says more records exist', async () => {
    const records = chain(5);
    const result = await verifyChain(records.slice(0, 3), headOf(records));
    expect(result.problems).toEqual([
      {
        pipeline: 'payments',
        seq: 4,
        kind: 'missing',
        detail: 'the chain head says 5 record(s), the chain ends at 3: records 4–5 are missing',
      },
    ]);
    const none = await verifyChain([], { ...headOf(records), pipeline: 'payments' });
    expect(none.problems).toEqual([
      expect.objectContaining({ pipeline: 'payments', seq: 1, kind: 'missing' }),
    ]);
  });

  it('names a swapped pair stored in each other’s place', async () => {
    const records = chain(5);
    const swapped = [records[0]!, records[1]!, records[3]!, records[2]!, records[4]!];
    const result = await verifyChain(swapped, headOf(records));
    expect(result.problems).toEqual([
      { pipeline: 'payments', seq: 3, kind: 'reordered', detail: expect.stringContaining('swapped pair') },
    ]);
    const first = await verifyChain([records[1]!, records[0]!, ...records.slice(2)]);
    expect(first.problems[0]).toMatchObject({ seq: 1, kind: 'reordered' });
  });

  it('names a swapped pair whose seq fields were rewritten to fit their places', async () => {
    const records = chain(5);
    const swapped = [
      records[0]!,
      records[1]!,
      { ...records[3]!, seq: 3 },
      { ...records[2]!, seq: 4 },
      records[4]!,
    ];
    const result = await verifyChain(swapped);
    expect(result.problems).toEqual([
      { pipeline: 'payments', seq: 3, kind: 'reordered', detail: expect.stringContaining('swapped') },
    ]);
  });

  it('names a record out of order and a seq twice', async () => {
    const records = chain(4);
    const back = await verifyChain([records[0]!, records[1]!, records[2]!, records[1]!, records[3]!]);
    expect(back.problems).toEqual([
      { pipeline: 'payments', seq: 2, kind: 'reordered', detail: 'seq 2 appears twice' },
    ]);
  });

  it('names a head that does not match its record (rewritten and re-hashed)', async () => {
    const records = chain(3);
    const result = await verifyChain(records, { seq: 3, hash: 'a'.repeat(64) });
    expect(result.problems).toEqual([
      { pipeline: 'payments', seq: 3, kind: 'head-mismatch', detail: expect.stringContaining('chain head') },
    ]);
  });

  it('verifies records appended after the head was read as links, not against the head', async () => {
    const records = chain(5);
    expect((await verifyChain(records, headOf(records.slice(0, 3)))).ok).toBe(true);
    const edited = [...records];
    edited[4] = { ...edited[4]!, summary: 'x' };
    expect((await verifyChain(edited, headOf(records.slice(0, 3)))).problems[0]).toMatchObject({
      seq: 5,
      kind: 'changed',
    });
  });

  it('verifies interleaved pipelines as separate chains, one problem each', async () => {
    const a = chain(3, 'a');
    const b = chain(3, 'b');
    b[1] = { ...b[1]!, actor: 'mallory' };
    const mixed = [a[0]!, b[0]!, a[1]!, b[1]!, a[2]!, b[2]!];
    const result = await verifyChain(mixed);
    expect(result.records).toBe(6);
    expect(result.problems).toEqual([{ pipeline: 'b', seq: 2, kind: 'changed', detail: expect.any(String) }]);
  });

  it('names a record whose pipeline was edited (in the chain it was moved to)', async () => {
    const records = chain(3);
    records[1] = { ...records[1]!, pipeline: 'other' };
    const result = await verifyChain(records);
    expect(result.problems).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ pipeline: 'payments', seq: 2, kind: 'missing' }),
        expect.objectContaining({ pipeline: 'other', kind: 'missing' }),
      ]),
    );
  });
});

describe('reviewer names', () => {
  it('are the path suffixes of the identity: role session, IAM user, federated user, principal id', () => {
    expect(reviewerNames('arn:aws:sts::123456789012:assumed-role/SecurityEngineer/alice')).toEqual([
      'alice',
      'SecurityEngineer/alice',
      'assumed-role/SecurityEngineer/alice',
    ]);
    expect(reviewerNames('arn:aws:iam::123456789012:user/ops/bob')).toEqual([
      'bob',
      'ops/bob',
      'user/ops/bob',
    ]);
    expect(reviewerNames('arn:aws:sts::123456789012:federated-user/carol')).toEqual([
      'carol',
      'federated-user/carol',
    ]);
    expect(reviewerNames('AROAEXAMPLEID:dave')).toEqual(['dave']);
    expect(reviewerNames('AIDAEXAMPLEID')).toEqual([]);
  });

  it('are at most MAX_REVIEWER_NAMES, the shortest: a deep IAM path stays within one transaction', () => {
    const path = Array.from({ length: 200 }, (_, i) => `p${i}`).join('/');
    const deep = `arn:aws:iam::123456789012:user/${path}/bob`;
    const names = reviewerNames(deep);
    expect(names).toHaveLength(MAX_REVIEWER_NAMES);
    expect(names.slice(0, 3)).toEqual(['bob', 'p199/bob', 'p198/p199/bob']);
    expect(names.at(-1)).toBe('p193/p194/p195/p196/p197/p198/p199/bob');
    expect(reviewerMatches(deep, 'p193/p194/p195/p196/p197/p198/p199/bob')).toBe(true);
    expect(reviewerMatches(deep, 'p192/p193/p194/p195/p196/p197/p198/p199/bob')).toBe(false);
    expect(reviewerMatches(deep, deep)).toBe(true);
    // A path of exactly that many segments keeps every suffix.
    expect(reviewerNames('arn:aws:iam::123456789012:user/a/b/c/d/e/f/bob')).toEqual([
      'bob',
      'f/bob',
      'e/f/bob',
      'd/e/f/bob',
      'c/d/e/f/bob',
      'b/c/d/e/f/bob',
      'a/b/c/d/e/f/bob',
      'user/a/b/c/d/e/f/bob',
    ]);
  });

  it('match the identity, a short name, and nothing else', () => {
    const alice = 'arn:aws:sts::123456789012:assumed-role/SecurityEngineer/alice';
    expect(reviewerMatches(alice, alice)).toBe(true);
    expect(reviewerMatches(alice, 'alice')).toBe(true);
    expect(reviewerMatches(alice, 'SecurityEngineer/alice')).toBe(true);
    for (const other of ['lice', 'SecurityEngineer', 'bob', '123456789012', '']) {
      expect(reviewerMatches(alice, other), other).toBe(false);
    }
    expect(reviewerMatches(null, 'alice')).toBe(false);
  });
});
