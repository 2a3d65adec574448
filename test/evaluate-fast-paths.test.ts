import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  compileGlob,
  compileGlobSet,
  compilePolicy,
  evaluate,
  FindingTable,
  readFindingsDocument,
  StringTable,
} from '../shared/index.js';
import { numberStrings, tailHash } from '../shared/strings.js';
import { finding, IMAGE, NOW, policy, run } from './helpers.js';

// The evaluator's and the reader's fast paths (hashed glob affixes, the one-pass rule masks and their
// per-value glob bits, the radix numbering of keys, the compact copies and multikey sort of ids) against the
// plain definitions they stand for.

/** Ids and globs that share prefixes and suffixes, differ in length, and leave ASCII. */
const ID_PARTS = ['CVE', 'GHSA', '2024', '2025', '1000', '10007', '7', 'x', 'é', '😀', ''];
const id = fc
  .array(fc.constantFrom(...ID_PARTS), { minLength: 1, maxLength: 4 })
  .map((parts) => parts.join('-'))
  .filter((s) => s.length > 0);
const glob = fc.oneof(
  id,
  id.map((s) => `${s}*`),
  id.map((s) => `*${s}`),
  fc.tuple(id, id).map(([a, b]) => `${a}*${b}`),
  fc.tuple(id, id, id).map(([a, b, c]) => `${a}*${b}*${c}`),
  fc.constant('*'),
);

/** The plain definition of a glob: `*` is any run of characters, the rest literal. */
function globMatches(pattern: string, value: string): boolean {
  const parts = pattern.split('*');
  if (parts.length === 1) return pattern === value;
  const first = parts[0]!;
  const last = parts[parts.length - 1]!;
  if (!value.startsWith(first) || value.length < first.length + last.length) return false;
  let at = first.length;
  for (const part of parts.slice(1, -1)) {
    const found = value.indexOf(part, at);
    if (found < 0 || found + part.length > value.length - last.length) return false;
    at = found + part.length;
  }
  return value.endsWith(last);
}

describe('globs', () => {
  it('match as their definition says, literal, prefix or pattern, alone or in sets', () => {
    fc.assert(
      fc.property(fc.array(glob, { minLength: 1, maxLength: 4 }), id, (patterns, value) => {
        for (const p of patterns) expect(compileGlob(p).test(value), p).toBe(globMatches(p, value));
        expect(compileGlobSet(patterns).test(value)).toBe(patterns.some((p) => globMatches(p, value)));
      }),
    );
  });
});

describe('exceptions by vulnerability id', () => {
  it('apply exactly where their glob matches the id, whatever the prefix and suffix lengths', () => {
    fc.assert(
      fc.property(
        fc.array(glob, { minLength: 1, maxLength: 8 }),
        fc.uniqueArray(id, { maxLength: 12 }),
        (globs, ids) => {
          const p = policy(
            `rules:\n  - id: all\n    action: reject\nexceptions:\n${globs
              .map(
                (g, i) =>
                  `  - id: EXC-${i}\n    vulnerabilityId: ${JSON.stringify(g)}\n    expires: 2027-01-01\n    reason: r\n    approvedBy: a\n`,
              )
              .join('')}`,
          );
          const e = run(
            p,
            ids.map((v) => finding({ vulnerabilityId: v })),
          );
          const applied = globs.flatMap((g, i) => (ids.some((v) => globMatches(g, v)) ? [`EXC-${i}`] : []));
          expect(e.record.exceptions.applied).toEqual(applied);
          const uncovered = ids.filter((v) => !globs.some((g) => globMatches(g, v))).sort();
          expect(e.record.violations[0]?.findings ?? []).toEqual(uncovered);
        },
      ),
    );
  });
});

describe('rules', () => {
  it('more than fit in one pass of rule masks (31) are each matched', () => {
    const rules = Array.from(
      { length: 70 },
      (_, r) =>
        `  - id: r${r}\n    action: ${r % 3 === 0 ? 'warn' : 'escalate'}\n    allow: ${r % 4}\n    when:\n      vulnerabilityIds: ["CVE-${r}-*"]\n      ${r % 2 ? 'minScore: 5' : 'severity: [HIGH, MEDIUM]'}\n`,
    );
    const p = policy(`rules:\n${rules.join('')}`);
    const fs = Array.from({ length: 700 }, (_, k) =>
      finding({
        vulnerabilityId: `CVE-${k % 70}-${k}`,
        severity: k % 3 === 0 ? 'HIGH' : 'LOW',
        score: (k % 10) + 0.5,
      }),
    );
    const e = run(p, fs);
    for (let r = 0; r < 70; r++) {
      const mine = fs.filter((f) => f.vulnerabilityId.startsWith(`CVE-${r}-`));
      const hit = mine.filter((f) =>
        r % 2 ? (f.score ?? 0) >= 5 : f.severity === 'HIGH' || f.severity === 'MEDIUM',
      );
      const found = [...e.record.violations, ...e.record.warnings].find((v) => v.rule === `r${r}`);
      if (hit.length <= r % 4) expect(found, `r${r}`).toBeUndefined();
      else {
        expect(found?.count, `r${r}`).toBe(hit.length);
        expect(found?.findings).toEqual(hit.map((f) => f.vulnerabilityId).sort());
      }
    }
  });

  it('each hold for every row that meets their globs, when one id or package meets several rules', () => {
    // Ids and package names are matched once per distinct value for all rules at once: a value that meets
    // several rules must carry all of their bits.
    const globs = fc.option(fc.array(glob, { minLength: 1, maxLength: 2 }), { nil: undefined });
    const rule = fc.record({ ids: globs, packages: globs });
    const row = fc.tuple(id, fc.array(id, { maxLength: 3 }));
    fc.assert(
      fc.property(
        fc.array(rule, { minLength: 1, maxLength: 6 }),
        fc.uniqueArray(row, { minLength: 1, maxLength: 12, selector: ([v]) => v }),
        (rules, rows) => {
          const when = (r: (typeof rules)[number]) =>
            [
              r.ids ? `      vulnerabilityIds: ${JSON.stringify(r.ids)}\n` : '',
              r.packages ? `      packages: ${JSON.stringify(r.packages)}\n` : '',
            ].join('');
          const p = policy(
            `rules:\n${rules
              .map((r, k) => `  - id: r${k}\n    action: reject\n${when(r) ? `    when:\n${when(r)}` : ''}`)
              .join('')}`,
          );
          const e = run(
            p,
            rows.map(([v, names]) =>
              finding({
                vulnerabilityId: v,
                packages: names.map((name) => ({ name, version: '1', fixedInVersion: undefined })),
              }),
            ),
          );
          rules.forEach((r, k) => {
            const hit = rows.filter(
              ([v, names]) =>
                (r.ids === undefined || r.ids.some((g) => globMatches(g, v))) &&
                (r.packages === undefined || names.some((n) => r.packages!.some((g) => globMatches(g, n)))),
            );
            const found = e.record.violations.find((x) => x.rule === `r${k}`);
            expect(found?.findings ?? [], `r${k}`).toEqual(hit.map(([v]) => v).sort());
          });
        },
      ),
    );
  });

  it('read their thresholds inclusively, and never match unknown values', () => {
    const p = policy(`rules:
  - id: score
    action: reject
    when: { minScore: 7 }
  - id: epss
    action: reject
    when: { minEpss: 0.5 }
  - id: old
    action: reject
    when: { olderThanDays: 10 }
`);
    const DAY = 86_400_000;
    const e = run(p, [
      finding({ vulnerabilityId: 'S7', score: 7 }),
      finding({ vulnerabilityId: 'S6', score: 6.99 }),
      finding({ vulnerabilityId: 'E5', epss: 0.5 }),
      finding({ vulnerabilityId: 'E4', epss: 0.49 }),
      finding({ vulnerabilityId: 'OLD', firstObservedAt: NOW.getTime() - 10 * DAY - 1 }),
      finding({ vulnerabilityId: 'EDGE', firstObservedAt: NOW.getTime() - 10 * DAY }),
      finding({ vulnerabilityId: 'NONE' }),
    ]);
    expect(e.record.violations.map((v) => [v.rule, v.findings])).toEqual([
      ['score', ['S7']],
      ['epss', ['E5']],
      ['old', ['OLD']],
    ]);
  });
});

describe('violation ids', () => {
  it('are sorted by UTF-16 code units however many there are', () => {
    // Enough ids that the sort partitions (short runs are sorted by comparison), in all of UTF-16.
    const ids = fc.uniqueArray(fc.oneof(id, fc.string({ unit: 'binary', maxLength: 4 })), {
      minLength: 40,
      maxLength: 300,
    });
    const p = policy('rules:\n  - id: all\n    action: reject\n');
    fc.assert(
      fc.property(ids, (ids) => {
        const e = run(
          p,
          ids.map((v) => finding({ vulnerabilityId: v })),
        );
        expect(e.record.violations[0]!.findings).toEqual([...ids].sort());
      }),
      { numRuns: 60 },
    );
  });
});

describe('numberStrings', () => {
  const strings = fc.array(fc.string({ maxLength: 4 }), { maxLength: 200 });
  const byStringTable = (xs: readonly string[]) => {
    const t = new StringTable(xs.length, 24);
    return { ordinals: xs.map((s) => t.intern(s)), distinct: t.keys };
  };

  it('numbers strings as a StringTable does, with real hashes and with colliding ones', () => {
    fc.assert(
      // 'high': hashes that differ only in their top bits, which the last pass of the radix sort orders.
      fc.property(strings, fc.constantFrom('real', 'zero', 'length', 'firstChar', 'high'), (xs, kind) => {
        const hashes = Int32Array.from(xs, (s) =>
          kind === 'real'
            ? tailHash(s, 24)
            : kind === 'zero'
              ? 0
              : kind === 'length'
                ? s.length
                : kind === 'high'
                  ? tailHash(s, 24) & 0xffc00000
                  : (s.charCodeAt(0) | 0) * 0x10001,
        );
        const got = numberStrings((i) => xs[i]!, hashes, xs.length, 24);
        const want = byStringTable(xs);
        expect(Array.from(got.ordinals)).toEqual(want.ordinals);
        // Undefined: all differ, string i is number i.
        expect([...(got.distinct ?? xs)]).toEqual(want.distinct);
      }),
    );
  });

  it('numbers many copies of one string, and many strings sharing a hash, as a StringTable does', () => {
    // Beyond a few strings per hash the sort's runs are too long to compare each with each.
    const xs = Array.from({ length: 60 }, (_, i) => (i % 3 === 0 ? 'same' : `s${i % 11}`));
    for (const hashes of [Int32Array.from(xs, (s) => tailHash(s, 24)), new Int32Array(xs.length)]) {
      const got = numberStrings((i) => xs[i]!, hashes, xs.length, 24);
      const want = byStringTable(xs);
      expect(Array.from(got.ordinals)).toEqual(want.ordinals);
      expect([...(got.distinct ?? xs)]).toEqual(want.distinct);
    }
  });

  it('numbers only the first n strings', () => {
    const xs = ['a', 'b', 'a', 'c'];
    const got = numberStrings(
      (i) => xs[i]!,
      Int32Array.from(xs, (s) => tailHash(s, 24)),
      2,
      24,
    );
    expect(Array.from(got.ordinals)).toEqual([0, 1]);
    expect([...(got.distinct ?? xs.slice(0, 2))]).toEqual(['a', 'b']);
  });

  it('gives the reader the same key numbers as the detailed path, duplicates or not', () => {
    const raw = [
      { findingArn: 'arn:x/1', severity: 'HIGH', packageVulnerabilityDetails: { vulnerabilityId: 'CVE-1' } },
      { findingArn: 'arn:x/2', severity: 'LOW', packageVulnerabilityDetails: { vulnerabilityId: 'CVE-2' } },
      { findingArn: 'arn:x/1', severity: 'LOW', packageVulnerabilityDetails: { vulnerabilityId: 'CVE-1' } },
    ];
    for (const list of [raw, raw.slice(0, 2)]) {
      const t = readFindingsDocument(list).findings;
      const slow = FindingTable.fromFindings(t.rows());
      expect(Array.from(t.keyOrdinals)).toEqual(Array.from(slow.keyOrdinals));
      expect(t.distinctKeys).toEqual(slow.distinctKeys);
    }
  });
});

describe('compiled policies', () => {
  it('are compiled once per loaded policy, and decide alike either way', () => {
    const p = policy('rules:\n  - id: crit\n    action: reject\n    when: { severity: [CRITICAL] }\n');
    expect(compilePolicy(p)).toBe(compilePolicy(p));
    const copy = { ...p };
    expect(compilePolicy(copy)).not.toBe(compilePolicy(p));
    const fs = [finding({ severity: 'CRITICAL', vulnerabilityId: 'CVE-9' })];
    const a = evaluate(p, { findings: fs, now: NOW, image: IMAGE }).record;
    const b = evaluate(compilePolicy(p), { findings: fs, now: NOW, image: IMAGE }).record;
    expect(a).toEqual(b);
    expect(a.outcome).toBe('REJECT');
  });
});
