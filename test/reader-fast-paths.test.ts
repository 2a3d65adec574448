import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeFindings, makePolicy } from '../bench/generate.js';
import { MAX_EPOCH_SECONDS } from '../shared/findings/timestamps.js';
import {
  evaluate,
  FindingTable,
  FindingTableBuilder,
  InputError,
  parseFindingsText,
  parsePolicy,
  readFindingsDocument,
  ShapeError,
} from '../shared/index.js';
import { tailHash } from '../shared/strings.js';
import { asSdk } from '../simulator/sdk-shape.js';
import { finding, fixtureJson, IMAGE, NOW, ROOT } from './helpers.js';

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

describe('timestamps as the SDK gives them', () => {
  const record = (arn: string, firstObservedAt: unknown) => ({
    findingArn: arn,
    severity: 'HIGH',
    firstObservedAt,
    packageVulnerabilityDetails: { vulnerabilityId: 'CVE-1', vulnerablePackages: [{ name: 'openssl' }] },
  });
  /** Whether row `i` was read on the fast path: only the detailed reader builds (and keeps) a full finding. */
  const fast = (t: FindingTable, i: number) => t.sourceOf(i).cached === undefined;

  it('reads a Date (what the SDK makes of epoch seconds) on the fast path, as the detailed reader reads it', () => {
    const max = MAX_EPOCH_SECONDS * 1000;
    const dates = [new Date(Date.UTC(2024, 8, 4, 16, 55, 38, 411)), new Date(0), new Date(max)];
    const t = readFindingsDocument(dates.map((d, i) => record(`arn:k/${i}`, d))).findings;
    expect(dates.map((_, i) => fast(t, i))).toEqual([true, true, true]);
    expect(Array.from(t.firstObserved)).toEqual(dates.map((d) => d.getTime()));
    // The detailed reader's reading of each row, and of the same time as epoch seconds.
    const detailed = FindingTable.fromFindings(t.rows());
    expect(Array.from(t.firstObserved)).toEqual(Array.from(detailed.firstObserved));
    const seconds = readFindingsDocument(
      dates.map((d, i) => record(`arn:k/${i}`, d.getTime() / 1000)),
    ).findings;
    expect(Array.from(seconds.firstObserved)).toEqual(Array.from(t.firstObserved));
  });

  it('refuses a Date outside what epoch seconds can say, as it refuses the number: no silently wrong age', () => {
    // Epoch milliseconds sent as seconds: the SDK makes a Date in the year 56,000 of them, and olderThanDays
    // would never match (a reject rule silently not applied).
    const max = MAX_EPOCH_SECONDS * 1000;
    for (const date of [
      new Date(-1000),
      new Date(max + 1000),
      new Date(1717200000000 * 1000),
      new Date(Number.NaN),
    ]) {
      let refused: unknown;
      try {
        readFindingsDocument({ findings: [record('arn:k/0', date)] });
      } catch (e) {
        refused = e;
      }
      expect(refused, String(date.getTime())).toBeInstanceOf(ShapeError);
      expect((refused as ShapeError).path).toEqual(['findings', 0, 'firstObservedAt']);
    }
  });

  it('reads every row of a ListFindings page as the SDK gives it on the fast path, with the same findings', () => {
    const json = fixtureJson('aws/list-findings-response.ecr.derived-from-aws-docs-event.json');
    const examples = ['billing-api', 'payments-api'].map((name) =>
      JSON.parse(readFileSync(join(ROOT, `examples/findings/${name}.list-findings.json`), 'utf8')),
    );
    for (const page of [json, ...examples]) {
      const sdk = asSdk(page) as { findings: Record<string, unknown>[] };
      // The SDK's output has Dates wherever the API has a timestamp: that is the case under test.
      expect(sdk.findings[0]!.firstObservedAt).toBeInstanceOf(Date);
      expect(sdk.findings[0]!.updatedAt).toBeInstanceOf(Date);
      const t = readFindingsDocument(sdk).findings;
      for (let i = 0; i < t.length; i++) expect(fast(t, i), `row ${i}`).toBe(true);
      // Read from the API's JSON or from the SDK's output, the findings are the same, every field.
      const fromJson = readFindingsDocument(page).findings;
      expect(Array.from(t.firstObserved)).toEqual(Array.from(fromJson.firstObserved));
      expect(t.rows()).toEqual(fromJson.rows());
    }
  });
});

describe('scores outside their scale', () => {
  // A score off its scale is a malformed answer, not a low score: `inspectorScore: -1` matched no `minScore`
  // rule, not even `minScore: 0`, and the image could be approved.
  const record = (fields: Record<string, unknown>, cvss?: unknown[]) => ({
    findingArn: 'arn:k/0',
    severity: 'HIGH',
    packageVulnerabilityDetails: {
      vulnerabilityId: 'CVE-1',
      vulnerablePackages: [{ name: 'openssl' }],
      ...(cvss === undefined ? {} : { cvss }),
    },
    ...fields,
  });
  /** The same finding, sent the detailed way by a textual timestamp (which only that reader takes). */
  const detailed = (r: Record<string, unknown>) => ({ ...r, firstObservedAt: '2026-01-01T00:00:00Z' });
  const fast = (t: FindingTable, i: number) => t.sourceOf(i).cached === undefined;
  const refusal = (doc: unknown): ShapeError => {
    try {
      readFindingsDocument(doc);
    } catch (e) {
      if (e instanceof ShapeError) return e;
      throw e;
    }
    throw new Error('accepted');
  };

  const cases: {
    field: string;
    make: (v: number) => Record<string, unknown>;
    path: (string | number)[];
    expected: string;
    bad: number[];
    good: number[];
  }[] = [
    {
      field: 'inspectorScore',
      make: (v) => record({ inspectorScore: v }),
      path: ['inspectorScore'],
      expected: 'a score from 0 to 10',
      bad: [-1, -0.1, 10.1, 11, 100],
      good: [0, 5.5, 10],
    },
    {
      // ECR's enhanced findings say `score`.
      field: 'score',
      make: (v) => record({ score: v }),
      path: ['score'],
      expected: 'a score from 0 to 10',
      bad: [-1, 10.5],
      good: [0, 10],
    },
    {
      field: 'cvss baseScore',
      make: (v) => record({}, [{ baseScore: 0 }, { baseScore: v }]),
      path: ['packageVulnerabilityDetails', 'cvss', 1, 'baseScore'],
      expected: 'a score from 0 to 10',
      bad: [-1, 10.1, 98],
      good: [0, 10],
    },
    {
      field: 'epss.score',
      make: (v) => record({ epss: { score: v } }),
      path: ['epss', 'score'],
      expected: 'a probability from 0 to 1',
      bad: [-0.01, -1, 1.01, 50],
      good: [0, 0.5, 1],
    },
  ];

  for (const c of cases) {
    it(`refuses ${c.field} off its scale on the fast path and the detailed one alike`, () => {
      for (const v of c.bad) {
        for (const [how, raw] of [
          ['fast', c.make(v)],
          ['detailed', detailed(c.make(v))],
        ] as const) {
          for (const [format, doc, at] of [
            ['list', [raw], [0]],
            ['ListFindings', { findings: [raw] }, ['findings', 0]],
            [
              'ECR enhanced',
              { imageScanFindings: { enhancedFindings: [raw] } },
              ['imageScanFindings', 'enhancedFindings', 0],
            ],
            [
              'event',
              { 'detail-type': 'Inspector2 Finding', source: 'aws.inspector2', detail: raw },
              ['detail'],
            ],
          ] as const) {
            const e = refusal(doc);
            const label = `${c.field} ${v} ${how} ${format}`;
            expect(e.path.slice(at.length), label).toEqual(c.path);
            expect(e.expected, label).toBe(c.expected);
            expect(e.value, label).toBe(v);
          }
        }
      }
    });

    it(`takes ${c.field} at the ends of its scale, the same on both paths`, () => {
      const list = c.good.flatMap((v, i) => [
        { ...c.make(v), findingArn: `arn:k/f${i}` },
        { ...detailed(c.make(v)), findingArn: `arn:k/d${i}` },
      ]);
      const t = readFindingsDocument(list).findings;
      expect(list.map((_, i) => fast(t, i))).toEqual(list.map((_, i) => i % 2 === 0));
      const rows = t.rows();
      const read = c.field === 'epss.score' ? rows.map((f) => f.epss) : rows.map((f) => f.score);
      expect(read).toEqual(c.good.flatMap((v) => [v, v]));
      if (c.field === 'epss.score') expect(Array.from(t.epss)).toEqual(c.good.flatMap((v) => [v, v]));
      else expect(Array.from(t.scores)).toEqual(c.good.flatMap((v) => [v, v]));
    });
  }

  it('names the file, line, field, scale and value of a score off its scale in a findings file', () => {
    for (const [fields, shown, expected] of [
      [{ inspectorScore: -1 }, '-1', 'findings[0].inspectorScore: expected a score from 0 to 10; got -1'],
      [{ inspectorScore: 11 }, '11', 'findings[0].inspectorScore: expected a score from 0 to 10; got 11'],
      [
        { epss: { score: 1.5 } },
        '1.5',
        'findings[0].epss.score: expected a probability from 0 to 1; got 1.5',
      ],
    ] as const) {
      const text = JSON.stringify({ findings: [record(fields)] }, null, 2);
      let e: unknown;
      try {
        parseFindingsText(text, 'f.json');
      } catch (err) {
        e = err;
      }
      expect(e).toBeInstanceOf(InputError);
      const problem = (e as InputError).problems[0]!;
      // The line of the value itself, and its column.
      const line = text.split('\n').findIndex((l) => l.trimEnd().endsWith(`: ${shown}`)) + 1;
      expect(problem.line).toBe(line);
      expect((e as InputError).message).toBe(`f.json:${line}:${problem.column}: ${expected}`);
    }
  });

  it("refuses an ECR basic finding's CVSS score off its scale, and takes 0 and 10", () => {
    const response = (value: string) => ({
      repositoryName: 'repo',
      imageId: { imageDigest: `sha256:${'a'.repeat(64)}` },
      imageScanStatus: { status: 'COMPLETE' },
      imageScanFindings: {
        findings: [
          {
            name: 'CVE-1',
            severity: 'HIGH',
            attributes: [
              { key: 'package_name', value: 'openssl' },
              { key: 'CVSS3_SCORE', value },
            ],
          },
        ],
      },
    });
    for (const v of ['-1', '10.1', '42']) {
      const e = refusal(response(v));
      expect(e.path, v).toEqual(['imageScanFindings', 'findings', 0, 'attributes', 1, 'value']);
      expect(e.expected, v).toBe('a score from 0 to 10 (as text)');
      expect(e.value, v).toBe(v);
    }
    for (const v of ['0', '10']) {
      expect(readFindingsDocument(response(v)).findings.row(0).score, v).toBe(Number(v));
    }
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
