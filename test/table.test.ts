import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { makeFindings } from '../bench/generate.js';
import {
  FindingTable,
  FindingTableBuilder,
  levelBit,
  readFindingsDocument,
  StringTable,
} from '../shared/index.js';
import { finding, fixtureJson } from './helpers.js';

/** Every column of a table, as plain values, to compare two tables. */
function columns(t: FindingTable) {
  return Array.from({ length: t.length }, (_, i) => ({
    id: t.vulnerabilityId(i),
    key: t.keyOrdinals[i],
    level: t.levels[i],
    status: t.statuses[i],
    score: t.scores[i],
    epss: t.epss[i],
    exploit: t.exploits[i],
    fix: t.fixes[i],
    first: t.firstObserved[i],
    packages: Array.from(
      t.packageOrdinals.subarray(t.packageStart[i], t.packageStart[i + 1]),
      (o) => t.distinctPackages[o],
    ),
  }));
}

describe('StringTable', () => {
  it('numbers distinct strings in order of first sight, through rehashes', () => {
    const t = new StringTable(2);
    const words = Array.from({ length: 5000 }, (_, i) => `w${i % 1234}`);
    const ordinals = words.map((w) => t.intern(w));
    expect(t.size).toBe(1234);
    expect(ordinals.slice(0, 3)).toEqual([0, 1, 2]);
    expect(t.intern('w5')).toBe(5);
    expect(t.keys[42]).toBe('w42');
  });

  it('tells apart strings whose hashed tails are equal', () => {
    const t = new StringTable(16, 4);
    expect(t.intern('aaaa-SAME')).toBe(0);
    expect(t.intern('bbbb-SAME')).toBe(1);
    expect(t.intern('aaaa-SAME')).toBe(0);
  });

  it('agrees with a Map on random strings', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ maxLength: 6 }), { maxLength: 300 }), (words) => {
        const t = new StringTable(1, 3);
        const m = new Map<string, number>();
        for (const w of words) {
          if (!m.has(w)) m.set(w, m.size);
          expect(t.intern(w)).toBe(m.get(w));
        }
      }),
    );
  });
});

describe('FindingTable', () => {
  it('the fast path of the reader writes exactly what the detailed reader reads', () => {
    // Realistic findings (the benchmark's generator) plus the AWS samples, read both ways.
    const raw = makeFindings(500, 42);
    const fast = readFindingsDocument(raw).findings;
    const slow = FindingTable.fromFindings(fast.rows());
    expect(columns(fast)).toEqual(columns(slow));
    for (const sample of [
      'aws/list-findings-response.ecr.derived-from-aws-docs-event.json',
      'aws/list-findings-response.ec2.elastic-integrations-mock.json',
      'aws/describe-image-scan-findings.enhanced.moto-fixture.json',
    ]) {
      const t = readFindingsDocument(fixtureJson(sample)).findings;
      expect(columns(t), sample).toEqual(columns(FindingTable.fromFindings(t.rows())));
    }
  });

  it('findings the fast path does not take (no ARN, textual dates, odd severities) go the detailed way', () => {
    const raw = makeFindings(3, 7);
    delete raw[0]!.findingArn;
    raw[1]!.firstObservedAt = '2026-01-02T03:04:05Z';
    raw[2]!.severity = 'Medium';
    const t = readFindingsDocument(raw).findings;
    expect(t.length).toBe(3);
    expect(t.row(0).key).toMatch(/^CVE-|^GHSA-/);
    expect(t.firstObserved[1]).toBe(Date.parse('2026-01-02T03:04:05Z'));
    expect(t.levels[2]).toBe(levelBit('MEDIUM'));
    expect(t.row(2).severity).toBe('MEDIUM');
  });

  it('rebuilds full rows on demand and keeps them', () => {
    const t = readFindingsDocument(makeFindings(2, 1)).findings;
    const row = t.row(1);
    expect(row.packages.length).toBeGreaterThan(0);
    expect(t.row(1)).toBe(row);
    expect(row.vulnerabilityId).toBe(t.vulnerabilityId(1));
  });

  it('concatenates tables, renumbering keys, ids and packages across them', () => {
    const a = FindingTable.fromFindings([
      finding({ key: 'K1', vulnerabilityId: 'CVE-1' }),
      finding({ key: 'K2', vulnerabilityId: 'CVE-2' }),
    ]);
    const b = FindingTable.fromFindings([
      finding({ key: 'K2', vulnerabilityId: 'CVE-2' }),
      finding({ key: 'K3', vulnerabilityId: 'CVE-1' }),
    ]);
    const t = FindingTable.concat([a, b]);
    expect(t.length).toBe(4);
    expect(t.distinctKeys).toEqual(['K1', 'K2', 'K3']);
    expect(Array.from(t.keyOrdinals)).toEqual([0, 1, 1, 2]);
    expect(t.distinctIds).toEqual(['CVE-1', 'CVE-2']);
    expect(t.row(3).key).toBe('K3');
  });

  it('concatenates tables read on the fast path without rebuilding their rows', () => {
    const a = readFindingsDocument(makeFindings(3, 1)).findings;
    const b = readFindingsDocument(makeFindings(2, 2, 3)).findings;
    const t = FindingTable.concat([a, b]);
    expect(t.length).toBe(5);
    expect(a.sourceOf(0).cached).toBeUndefined();
    expect(t.row(4).key).toBe(b.row(1).key);
    expect(columns(t).slice(3)).toEqual(columns(b).map((c) => ({ ...c, key: (c.key ?? 0) + 3 })));
  });

  it('grows past its first capacity', () => {
    const fs = Array.from({ length: 40 }, () => finding());
    const b = new FindingTableBuilder(1);
    for (const f of fs) b.pushFinding(f);
    const t = b.build();
    expect(t.length).toBe(40);
    expect(t.rows().map((f) => f.key)).toEqual(fs.map((f) => f.key));
  });
});
