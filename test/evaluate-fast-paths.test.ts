import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import {
  compileGlob,
  compileGlobSet,
  compilePolicy,
  evaluate,
  FindingTable,
  readFindingsDocument,
  StringTable,
} from '../shared/index.js';
import { MAX_SAME_HASH, numberStrings, tailHash } from '../shared/strings.js';
import { finding, IMAGE, NOW, policy, run } from './helpers.js';

// The evaluator's and the reader's fast paths (hashed glob affixes, the one-pass rule masks and their
// per-value glob bits, keys hashed as rows are read and numbered by a radix sort of the hashes when the table
// is built, the compact copies and multikey sort of ids) against the plain definitions they stand for.

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

  it('match packages alike when an exception gives the same globs, or others', () => {
    // Package globs are matched once per list of patterns for rules and exceptions together: a rule must
    // get the matches of its own list, whether an exception gave it first or gave another.
    // Lists drawn from a few globs, so that lists share some of their globs, or begin alike.
    const pool = fc.array(glob, { minLength: 2, maxLength: 3 });
    const picks = fc.array(fc.array(fc.nat(2), { minLength: 1, maxLength: 2 }), {
      minLength: 1,
      maxLength: 3,
    });
    const row = fc.tuple(id, fc.array(id, { maxLength: 3 }));
    fc.assert(
      fc.property(
        pool,
        picks,
        // Exceptions for any id often: the rule then finds the exception's matches made.
        fc.array(fc.tuple(fc.oneof(fc.constant('*'), glob), fc.nat()), { minLength: 1, maxLength: 3 }),
        fc.uniqueArray(row, { minLength: 1, maxLength: 12, selector: ([v]) => v }),
        (globs, picked, exceptions, rows) => {
          const lists = picked.map((ks) => ks.map((k) => globs[k % globs.length]!));
          // Each exception takes the globs of one rule (the first exactly so), or the reverse of them.
          const excepted = exceptions.map(([v, k], e) => {
            const list = lists[k % lists.length]!;
            return { v, packages: e > 0 && k % 2 === 1 ? [...list].reverse() : list };
          });
          const ruleYaml = lists.map(
            (l, k) => `  - id: r${k}\n    action: reject\n    when:\n      packages: ${JSON.stringify(l)}\n`,
          );
          const exceptionYaml = excepted.map(
            (x, e) =>
              `  - id: EXC-${e}\n    vulnerabilityId: ${JSON.stringify(x.v)}\n    packages: ${JSON.stringify(x.packages)}\n    expires: 2027-01-01\n    reason: r\n    approvedBy: a\n`,
          );
          const p = policy(
            `rules:\n${ruleYaml.join('')}${excepted.length === 0 ? '' : `exceptions:\n${exceptionYaml.join('')}`}`,
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
          const kept = rows.filter(
            ([v, names]) =>
              !excepted.some(
                (x) =>
                  globMatches(x.v, v) &&
                  names.length > 0 &&
                  names.every((n) => x.packages.some((g) => globMatches(g, n))),
              ),
          );
          lists.forEach((l, k) => {
            const hit = kept.filter(([, names]) => names.some((n) => l.some((g) => globMatches(g, n))));
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
  /** The hashed tail of the table's keys. */
  const TAIL = 24;
  /** A prefix longer than TAIL, as finding ARNs share. */
  const ARN = 'arn:aws:inspector2:eu-west-1:123456789012:finding/';
  const string = fc.oneof(
    fc.string({ maxLength: 4 }),
    fc.string({ unit: 'grapheme', maxLength: 3 }),
    fc.string({ unit: 'binary', maxLength: 3 }),
    // Longer than TAIL: heads of one length make equal tails of different strings (equal real hashes),
    // and the ends differ within the tail behind a long shared prefix.
    fc
      .tuple(
        fc.constantFrom('', 'x', 'é', '😀'),
        fc.oneof(fc.constantFrom('', '1', '😀'), fc.string({ unit: 'grapheme', maxLength: 2 })),
      )
      .map(([head, end]) => `${head}${ARN}${'0'.repeat(TAIL)}${end}`),
  );
  const strings = fc.array(string, { maxLength: 200 });
  const byStringTable = (xs: readonly string[]) => {
    const t = new StringTable(xs.length, TAIL);
    return { ordinals: xs.map((s) => t.intern(s)), distinct: t.keys };
  };

  it('numbers strings as a StringTable does, with real hashes and with colliding ones', () => {
    fc.assert(
      // 'high': hashes that differ only in their top bits, which the last pass of the radix sort orders.
      fc.property(strings, fc.constantFrom('real', 'zero', 'length', 'firstChar', 'high'), (xs, kind) => {
        const hashes = Int32Array.from(xs, (s) =>
          kind === 'real'
            ? tailHash(s, TAIL)
            : kind === 'zero'
              ? 0
              : kind === 'length'
                ? s.length
                : kind === 'high'
                  ? tailHash(s, TAIL) & 0xffc00000
                  : (s.charCodeAt(0) | 0) * 0x10001,
        );
        const got = numberStrings((i) => xs[i]!, hashes, xs.length);
        const want = byStringTable(xs);
        expect(Array.from(got.ordinals)).toEqual(want.ordinals);
        // Undefined: all differ, string i is number i.
        expect([...(got.distinct ?? xs)]).toEqual(want.distinct);
      }),
    );
  });

  it('compares up to MAX_SAME_HASH strings of one hash each with each, and tells more apart by a Map', () => {
    // Runs of one hash on either side of the limit, among strings of other hashes (a short run of its own).
    const HASH = 12345;
    for (const k of [MAX_SAME_HASH, MAX_SAME_HASH + 1]) {
      for (const kind of ['equal', 'distinct', 'mixed'] as const) {
        const run = Array.from({ length: k }, (_, j) =>
          kind === 'equal' ? 'same' : kind === 'distinct' ? `s${j}` : `s${j % 3}`,
        );
        const xs = run.flatMap((s, j) => (j < 3 ? [s, `other${j % 2}`] : [s]));
        const hashes = Int32Array.from(xs, (s) => (s.startsWith('other') ? 7 : HASH));
        const want = byStringTable(xs);
        const set = vi.spyOn(Map.prototype, 'set');
        let got: ReturnType<typeof numberStrings>;
        let byMap: boolean;
        try {
          got = numberStrings((i) => xs[i]!, hashes, xs.length);
          byMap = set.mock.calls.length > 0;
        } finally {
          set.mockRestore();
        }
        expect(byMap, `${kind} x${k}`).toBe(k > MAX_SAME_HASH);
        expect(Array.from(got.ordinals), `${kind} x${k}`).toEqual(want.ordinals);
        expect([...(got.distinct ?? xs)], `${kind} x${k}`).toEqual(want.distinct);
      }
    }
  });

  it('reads each string of a long run of one hash a bounded number of times, copies or not', () => {
    // Comparing each with each would read them 10^7 times.
    const n = 4000;
    const xs = Array.from({ length: n }, (_, i) => (i % 2 === 0 ? `s${i}` : 'same'));
    let reads = 0;
    const got = numberStrings(
      (i) => {
        reads++;
        return xs[i]!;
      },
      new Int32Array(n),
      n,
    );
    expect(reads).toBeLessThanOrEqual(2 * n);
    const want = byStringTable(xs);
    expect(Array.from(got.ordinals)).toEqual(want.ordinals);
    expect(got.distinct).toEqual(want.distinct);
  });

  it('numbers only the first n strings', () => {
    const xs = ['a', 'b', 'a', 'c'];
    const got = numberStrings(
      (i) => xs[i]!,
      Int32Array.from(xs, (s) => tailHash(s, TAIL)),
      2,
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
    for (const [list, ordinals] of [
      [raw, [0, 1, 0]],
      [raw.slice(0, 2), [0, 1]],
    ] as const) {
      const t = readFindingsDocument(list).findings;
      expect(Array.from(t.keyOrdinals)).toEqual(ordinals);
      expect(t.keyCount).toBe(2);
      expect(t.distinctKeys).toEqual(['arn:x/1', 'arn:x/2']);
      const slow = FindingTable.fromFindings(t.rows());
      expect(Array.from(slow.keyOrdinals)).toEqual(ordinals);
      expect(slow.distinctKeys).toEqual(['arn:x/1', 'arn:x/2']);
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

  it('share one glob set per list of patterns, so a package list given twice is matched once', () => {
    const p = policy(
      [
        'rules:',
        '  - id: a',
        '    action: reject',
        '    when: { packages: [openssl*, libssl*], vulnerabilityIds: [openssl*, libssl*] }',
        '  - id: b',
        '    action: reject',
        '    when: { packages: [libssl*, openssl*] }',
        'exceptions:',
        '  - { id: EXC-1, vulnerabilityId: CVE-1, packages: [openssl*, libssl*], expires: 2027-01-01, reason: r, approvedBy: x }',
        '',
      ].join('\n'),
    );
    const { rules, exceptions } = compilePolicy(p);
    expect(rules[0]!.packages).toBe(exceptions[0]!.packages);
    // Order is part of the list as written (and of what a message quotes): another order, another set.
    expect(rules[1]!.packages).not.toBe(rules[0]!.packages);
    expect(rules[1]!.packages!.patterns).toEqual(['libssl*', 'openssl*']);
  });
});
