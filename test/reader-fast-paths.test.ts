import { describe, expect, it } from 'vitest';
import { makeFindings, makePolicy } from '../bench/generate.js';
import {
  evaluate,
  FindingTable,
  FindingTableBuilder,
  parsePolicy,
  readFindingsDocument,
} from '../shared/index.js';
import { tailHash } from '../shared/strings.js';
import { finding, IMAGE, NOW } from './helpers.js';

// The reader's and the table's fast paths: the document's list kept as the table's sources, keys read back
// from the sources, the cache of full findings made on demand, and the evaluator's scratch rows kept between
// decisions.

/** Two finding ARNs of one length whose last 24 characters hash alike (the table hashes keys' tails). */
const ARNS = [
  'arn:aws:inspector2:eu-west-1:123456789012:finding/6cq3v29gov29gov29gov29go',
  'arn:aws:inspector2:eu-west-1:123456789012:finding/crcax29gov29gov29gov29go',
] as const;

describe('the Inspector reader', () => {
  const record = (arn: string, id: string, severity = 'HIGH') => ({
    findingArn: arn,
    severity,
    packageVulnerabilityDetails: { vulnerabilityId: id, vulnerablePackages: [{ name: 'openssl' }] },
  });

  it('numbers keys of one hash apart and copies together, fast rows and detailed rows alike', () => {
    expect(tailHash(ARNS[0], 24)).toBe(tailHash(ARNS[1], 24));
    // The first record goes the detailed way (a textual timestamp), so some keys are stored and some are
    // read back from their records.
    const slow = { ...record(ARNS[1], 'CVE-3'), firstObservedAt: '2026-01-01T00:00:00Z' };
    const list = [slow, record(ARNS[0], 'CVE-1'), record(ARNS[1], 'CVE-2'), record(ARNS[0], 'CVE-1', 'LOW')];
    const t = readFindingsDocument(list).findings;
    expect(Array.from(t.keyOrdinals)).toEqual([0, 1, 0, 1]);
    expect(t.keyCount).toBe(2);
    expect(t.distinctKeys).toEqual([ARNS[1], ARNS[0]]);
    const plain = FindingTable.fromFindings(t.rows());
    expect(Array.from(t.keyOrdinals)).toEqual(Array.from(plain.keyOrdinals));
    expect(t.distinctKeys).toEqual(plain.distinctKeys);
  });

  it('lists all-different keys from the records, and concatenates such tables', () => {
    const list = [record('arn:k/1', 'CVE-1'), record('arn:k/2', 'CVE-2'), record('arn:k/3', 'CVE-1')];
    const t = readFindingsDocument(list).findings;
    expect(t.keyCount).toBe(3);
    expect(t.distinctKeys).toEqual(['arn:k/1', 'arn:k/2', 'arn:k/3']);
    const both = FindingTable.concat([t, readFindingsDocument([record('arn:k/2', 'CVE-2')]).findings]);
    expect(Array.from(both.keyOrdinals)).toEqual([0, 1, 2, 1]);
    expect(both.distinctKeys).toEqual(['arn:k/1', 'arn:k/2', 'arn:k/3']);
    expect(both.row(3).vulnerabilityId).toBe('CVE-2');
  });

  it('keeps the list as the sources, and builds the full finding of a row only when asked', () => {
    const list = [record('arn:k/1', 'CVE-1'), record('arn:k/2', 'CVE-2')];
    const t = readFindingsDocument(list).findings;
    expect(t.sourceOf(1).source).toBe(list[1]);
    expect(t.sourceOf(1).cached).toBeUndefined();
    const f = t.row(1);
    expect(f.key).toBe('arn:k/2');
    expect(t.sourceOf(1).cached).toBe(f);
    expect(t.row(1)).toBe(f);
    expect(t.sourceOf(0).cached).toBeUndefined();
    // The reader never writes the document's list.
    expect(list).toEqual([record('arn:k/1', 'CVE-1'), record('arn:k/2', 'CVE-2')]);
  });

  it('refuses a row whose source is not the element of the given list it stands for', () => {
    const list = [{ a: 1 }, { a: 2 }];
    const b = new FindingTableBuilder(2, list);
    b.pushFinding(finding({ key: 'k1' }), list[0]);
    expect(() => b.pushFinding(finding({ key: 'k2' }), { a: 2 })).toThrow(/not read from element 1/);
    const c = new FindingTableBuilder(1, list.slice(0, 1));
    c.pushFinding(finding({ key: 'k1' }), list[0]);
    expect(() => c.pushFinding(finding({ key: 'k2' }), list[1])).toThrow(/more rows than the list/);
  });
});

describe('scratch rows of the evaluator', () => {
  it('decide a small table after a large one as they do before it, and never alias a violation', () => {
    const policy = parsePolicy(makePolicy(), 'bench-policy.json');
    const decide = (list: unknown[]) =>
      evaluate(policy, {
        findings: readFindingsDocument(list).findings,
        now: NOW,
        pipeline: 'payments-prod',
        image: IMAGE,
      });
    const parse = (n: number, seed: number) => JSON.parse(JSON.stringify(makeFindings(n, seed))) as unknown[];
    const small = parse(300, 7);
    // Copies of keys in the small one, so that de-duplication keeps fewer rows than there are.
    const smallWithCopies = [...small, ...small.slice(0, 50)];
    const first = decide(smallWithCopies);
    const recordFirst = JSON.stringify(first.record);
    const rowsFirst = first.violations.map((v) => Array.from(v.rows));
    decide(parse(3000, 8));
    const kept = decide(smallWithCopies);
    expect(JSON.stringify(kept.record)).toBe(recordFirst);
    expect(kept.violations.map((v) => Array.from(v.rows))).toEqual(rowsFirst);
    // Another decision no larger than the kept one writes over the same scratch rows (a larger one would
    // grow them and leave the kept one's alone): a violation pointing into them would change here.
    decide(parse(300, 9));
    expect(kept.violations.map((v) => Array.from(v.rows))).toEqual(rowsFirst);
  });
});
