import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { ActionExecutionView, StageStateView } from '../shared/gate/ports.js';
import { checkToken } from '../shared/gate/token.js';
import {
  evaluate,
  type Finding,
  type LoadedPolicy,
  levelOf,
  type Outcome,
  parsePolicy,
  SUMMARY_MAX,
} from '../shared/index.js';
import { DAY, IMAGE, NOW } from './helpers.js';

const RANK: Record<Outcome, number> = { APPROVE: 0, ESCALATE: 1, REJECT: 2 };
const IDS = ['CVE-2024-1000', 'CVE-2024-1001', 'CVE-2023-2000', 'GHSA-aaaa-bbbb-cccc', 'ALAS-2024-7'];
const PACKAGES = ['openssl', 'libssl3', 'curl', 'zlib1g', 'lodash'];
const SEVERITY = ['CRITICAL', 'HIGH', 'MEDIUM', 'LOW', 'INFORMATIONAL', 'UNTRIAGED', 'UNDEFINED'];

const findingBody = fc.record({
  vulnerabilityId: fc.constantFrom(...IDS),
  severity: fc.constantFrom(...SEVERITY),
  status: fc.constantFrom('ACTIVE', 'ACTIVE', 'SUPPRESSED', 'CLOSED'),
  score: fc.option(
    fc.integer({ min: 0, max: 100 }).map((n) => n / 10),
    { nil: undefined },
  ),
  epss: fc.option(
    fc.integer({ min: 0, max: 1000 }).map((n) => n / 1000),
    { nil: undefined },
  ),
  exploitAvailable: fc.option(fc.boolean(), { nil: undefined }),
  fixAvailable: fc.option(fc.constantFrom('YES' as const, 'NO' as const, 'PARTIAL' as const), {
    nil: undefined,
  }),
  firstObservedAt: fc.option(
    fc.integer({ min: 0, max: 120 }).map((d) => NOW.getTime() - d * DAY),
    { nil: undefined },
  ),
  packages: fc.uniqueArray(fc.constantFrom(...PACKAGES), { maxLength: 3 }),
});

type FindingBody = typeof findingBody extends fc.Arbitrary<infer T> ? T : never;

function toFinding(body: FindingBody, key: string): Finding {
  return {
    ...body,
    level: levelOf(body.severity),
    key,
    updatedAt: undefined,
    packages: body.packages.map((name) => ({ name, version: '1.0', fixedInVersion: undefined })),
    image: undefined,
    title: undefined,
  };
}

const findings = fc
  .array(findingBody, { maxLength: 25 })
  .map((bodies) => bodies.map((b, i) => toFinding(b, `arn:finding/${i}`)));

const glob = fc.constantFrom(...IDS, 'CVE-2024-*', 'CVE-*', '*-7', 'GHSA-*', '*');
const conditions = fc.record(
  {
    severity: fc.uniqueArray(fc.constantFrom('CRITICAL', 'HIGH', 'MEDIUM', 'LOW', 'UNTRIAGED'), {
      minLength: 1,
    }),
    minScore: fc.integer({ min: 0, max: 10 }),
    fixAvailable: fc.uniqueArray(fc.constantFrom('YES', 'NO', 'PARTIAL'), { minLength: 1 }),
    exploitAvailable: fc.boolean(),
    minEpss: fc.integer({ min: 0, max: 10 }).map((n) => n / 10),
    olderThanDays: fc.integer({ min: 0, max: 90 }),
    vulnerabilityIds: fc.uniqueArray(glob, { minLength: 1, maxLength: 2 }),
    packages: fc.uniqueArray(fc.constantFrom(...PACKAGES, 'lib*'), { minLength: 1, maxLength: 2 }),
    repositories: fc.constant(['payments/*']),
  },
  { requiredKeys: [] },
);
const rule = fc.record({
  action: fc.constantFrom('reject', 'escalate', 'warn'),
  allow: fc.integer({ min: 0, max: 3 }),
  when: conditions,
});
const exception = fc.record(
  {
    vulnerabilityId: glob,
    packages: fc.uniqueArray(fc.constantFrom(...PACKAGES, 'lib*', '*'), { minLength: 1, maxLength: 3 }),
    repositories: fc.constantFrom(['payments/*'], ['orders/*']),
    expiresInDays: fc.integer({ min: -30, max: 60 }),
    revokeIf: fc.record(
      {
        exploitAvailable: fc.boolean(),
        minEpss: fc.integer({ min: 0, max: 10 }).map((n) => n / 10),
        minScore: fc.integer({ min: 0, max: 10 }),
        severity: fc.uniqueArray(fc.constantFrom('CRITICAL', 'HIGH'), { minLength: 1 }),
      },
      { requiredKeys: [] },
    ),
  },
  { requiredKeys: ['vulnerabilityId', 'expiresInDays'] },
);

interface PolicyShape {
  mode: 'enforce' | 'advisory';
  unknownSeverity: 'escalate' | 'reject' | 'ignore';
  rules: (typeof rule extends fc.Arbitrary<infer R> ? R : never)[];
  exceptions: (typeof exception extends fc.Arbitrary<infer E> ? E : never)[];
}

const policyShape: fc.Arbitrary<PolicyShape> = fc.record({
  mode: fc.constant('enforce' as const),
  unknownSeverity: fc.constantFrom('escalate' as const, 'reject' as const, 'ignore' as const),
  rules: fc.array(rule, { maxLength: 6 }),
  exceptions: fc.array(exception, { maxLength: 6 }),
});

function toPolicy(shape: PolicyShape): LoadedPolicy {
  const doc = {
    version: 1,
    name: 'prop',
    mode: shape.mode,
    settings: { unknownSeverity: shape.unknownSeverity },
    rules: shape.rules.map((r, i) => ({ id: `rule-${i}`, ...r })),
    exceptions: shape.exceptions.map(({ expiresInDays, ...e }, i) => ({
      id: `EXC-${i}`,
      ...e,
      expires: new Date(NOW.getTime() + expiresInDays * DAY).toISOString(),
      reason: 'r',
      approvedBy: 'a',
    })),
  };
  return parsePolicy(JSON.stringify(doc), 'prop.json');
}

/** Fisher-Yates with fast-check's numbers, so a failing order shrinks and replays. */
function shuffle<T>(items: T[], seeds: fc.Stream<number>): T[] {
  const it = seeds[Symbol.iterator]();
  for (let i = items.length - 1; i > 0; i--) {
    const j = it.next().value % (i + 1);
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

const decide = (p: LoadedPolicy, fs: readonly Finding[]) =>
  evaluate(p, { findings: fs, now: NOW, image: IMAGE, pipeline: 'payments-prod' }).record;

describe('invariants', () => {
  it('adding a counted finding never improves the outcome (enforce mode)', () => {
    fc.assert(
      fc.property(policyShape, findings, findingBody, (shape, fs, extra) => {
        const p = toPolicy(shape);
        const added = toFinding({ ...extra, status: 'ACTIVE' }, 'arn:finding/added');
        expect(RANK[decide(p, [...fs, added]).outcome]).toBeGreaterThanOrEqual(RANK[decide(p, fs).outcome]);
      }),
      { numRuns: 300 },
    );
  });

  it('removing an exception never improves the outcome', () => {
    fc.assert(
      fc.property(policyShape, findings, fc.nat(), (shape, fs, pick) => {
        fc.pre(shape.exceptions.length > 0);
        const without = {
          ...shape,
          exceptions: shape.exceptions.filter((_, i) => i !== pick % shape.exceptions.length),
        };
        expect(RANK[decide(toPolicy(without), fs).outcome]).toBeGreaterThanOrEqual(
          RANK[decide(toPolicy(shape), fs).outcome],
        );
      }),
      { numRuns: 300 },
    );
  });

  it('an expired exception never applies', () => {
    fc.assert(
      fc.property(policyShape, findings, (shape, fs) => {
        const p = toPolicy(shape);
        const r = decide(p, fs);
        const expiredIds = p.policy.exceptions
          .filter((e) => Date.parse(e.expires) < NOW.getTime())
          .map((e) => e.id);
        for (const id of expiredIds) expect(r.exceptions.applied).not.toContain(id);
        // and a policy whose exceptions have all expired decides as if it had none
        const allExpired = {
          ...shape,
          exceptions: shape.exceptions.map((e) => ({ ...e, expiresInDays: -1 })),
        };
        expect(decide(toPolicy(allExpired), fs).outcome).toBe(
          decide(toPolicy({ ...shape, exceptions: [] }), fs).outcome,
        );
      }),
      { numRuns: 300 },
    );
  });

  it('the decision depends neither on the order of findings nor on duplicates', () => {
    fc.assert(
      fc.property(
        policyShape,
        findings.chain((fs) =>
          fc.tuple(fc.constant(fs), fc.shuffledSubarray(fs), fc.infiniteStream(fc.nat())),
        ),
        (shape, [fs, dupes, seeds]) => {
          const p = toPolicy(shape);
          const mixed = shuffle([...fs, ...dupes], seeds);
          expect(JSON.stringify(decide(p, mixed))).toBe(JSON.stringify(decide(p, fs)));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('between differing copies of one finding, the choice does not depend on their order', () => {
    fc.assert(
      fc.property(
        policyShape,
        findings,
        fc.array(
          fc.tuple(fc.nat(), findingBody, fc.option(fc.integer({ min: 0, max: 3 }), { nil: undefined })),
        ),
        fc.infiniteStream(fc.nat()),
        (shape, fs, copies, seeds) => {
          fc.pre(fs.length > 0);
          const p = toPolicy(shape);
          const variants = copies.map(([i, body, updatedAt]) => ({
            ...toFinding(body, fs[i % fs.length]!.key),
            updatedAt,
          }));
          const all = [...fs, ...variants];
          const shuffled = shuffle([...all], seeds);
          expect(JSON.stringify(decide(p, shuffled))).toBe(JSON.stringify(decide(p, all)));
        },
      ),
      { numRuns: 300 },
    );
  });

  it("advisory mode approves unless the gate's own blind spots (unknown severities) say otherwise, and records what enforce would decide", () => {
    fc.assert(
      fc.property(policyShape, findings, (shape, fs) => {
        const enforce = decide(toPolicy(shape), fs);
        const advisory = decide(toPolicy({ ...shape, mode: 'advisory' }), fs);
        const unknown = enforce.violations.find((v) => v.rule === 'unknown-severity');
        expect(advisory.outcome).toBe(
          unknown === undefined ? 'APPROVE' : unknown.action === 'reject' ? 'REJECT' : 'ESCALATE',
        );
        expect(advisory.wouldBe).toBe(enforce.outcome);
      }),
      { numRuns: 200 },
    );
  });

  it('the summary never exceeds 512 characters', () => {
    const longId = fc
      .tuple(fc.integer({ min: 1, max: 64 }), fc.nat())
      .map(([n, s]) => `r${s}-${'x'.repeat(64)}`.slice(0, n).replace(/-$/, 'x'));
    fc.assert(
      fc.property(
        fc.uniqueArray(longId, { minLength: 0, maxLength: 60 }),
        fc.array(
          fc.string({ unit: fc.constantFrom('A', '1', '-', 'é', '🙂'), minLength: 1, maxLength: 200 }),
          {
            maxLength: 40,
          },
        ),
        fc.constantFrom('enforce', 'advisory'),
        (ids, vulnIds, mode) => {
          const rules = ids.map((id, i) => ({ id, action: ['reject', 'escalate', 'warn'][i % 3] }));
          const p = parsePolicy(JSON.stringify({ version: 1, name: 'n'.repeat(64), mode, rules }), 'p.json');
          const fs = vulnIds.map((v, i) =>
            toFinding(
              {
                vulnerabilityId: v,
                severity: 'HIGH',
                status: 'ACTIVE',
                score: undefined,
                epss: undefined,
                exploitAvailable: undefined,
                fixAvailable: undefined,
                firstObservedAt: undefined,
                packages: [],
              },
              `k${i}`,
            ),
          );
          const r = evaluate(p, {
            findings: fs,
            now: NOW,
            scan: { complete: false, status: 'FAILED', reason: 'x'.repeat(600) },
            conditions: [{ kind: 'error', reason: 'y'.repeat(900) }],
          }).record;
          expect(r.summary.length).toBeLessThanOrEqual(SUMMARY_MAX);
          expect(r.summary.startsWith(r.outcome)).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('the token check, over any state and action runs', () => {
  const RUNS = ['a1', 'a2', 'a3'];
  const STATUSES = ['InProgress', 'Succeeded', 'Failed', 'Abandoned', undefined];
  const key = { pipeline: 'p', executionId: 'e1', stage: 'Gate', action: 'Tollgate' };
  // Tokens of the API model's pattern (lowercase UUIDs), distinct per run and per place shown: checkToken
  // refuses anything else, and with other strings no case would ever reach a token taken.
  const uuid = (n: number) => `0000000${n}-573f-4ea7-a67e-0123456789ab`;
  const TOKEN: Record<string, string> = { a1: uuid(1), a2: uuid(2), a3: uuid(3) };
  const EXTERNAL: Record<string, string> = { a1: uuid(4), a2: uuid(5), a3: uuid(6) };
  const stateArb = fc.record({
    executionId: fc.constantFrom('e1', 'e2', undefined),
    status: fc.constantFrom(...STATUSES),
    run: fc.constantFrom(...RUNS, undefined),
    token: fc.option(fc.constantFrom(TOKEN.a1, TOKEN.a2, TOKEN.a3), { nil: undefined }),
  });
  const runArb = fc.record({
    run: fc.constantFrom(...RUNS),
    status: fc.constantFrom('InProgress', 'Succeeded', 'Failed', 'Abandoned'),
    external: fc.option(fc.constantFrom(EXTERNAL.a1, EXTERNAL.a2, EXTERNAL.a3), { nil: undefined }),
  });

  it("a gate that knows its run takes only that run's token, and gives up only on that run's end or another execution", () => {
    // Each branch below must be reached, or the property holds vacuously.
    const reached = { stage: 0, parallel: 0, final: 0 };
    fc.assert(
      fc.property(
        stateArb,
        fc.option(fc.uniqueArray(runArb, { selector: (r) => r.run, maxLength: 3 }), { nil: undefined }),
        fc.constantFrom(...RUNS),
        (st, runs, mine) => {
          const stages: StageStateView[] = [
            {
              name: 'Gate',
              executionId: st.executionId,
              actions: [{ name: 'Tollgate', status: st.status, token: st.token, actionExecutionId: st.run }],
            },
          ];
          const executions: ActionExecutionView[] | undefined = runs?.map((r) => ({
            stage: 'Gate',
            action: 'Tollgate',
            actionExecutionId: r.run,
            status: r.status,
            customData: undefined,
            externalExecutionId: r.external,
          }));
          const result = checkToken(key, stages, executions, mine);
          const own = runs?.find((r) => r.run === mine);
          if (result.ok) {
            reached[result.mode]++;
            // The token is the state's for our run (or a run the state does not name), or our own run's.
            const fromState = result.mode === 'stage';
            if (fromState)
              expect(st.run === mine || (st.run === undefined && own?.status === 'InProgress')).toBe(true);
            else expect(own?.status === 'InProgress' && result.token === own.external).toBe(true);
          } else if (result.final) {
            reached.final++;
            // Given up only on our run's end, on a state that shows our execution's run of the action ended,
            // or on a state that names another execution (superseded, as the architecture says).
            const ownEnded = own !== undefined && own.status !== 'InProgress';
            const stateEnded =
              st.executionId === 'e1' &&
              st.run === mine &&
              st.status !== 'InProgress' &&
              own?.status !== 'InProgress';
            // Nothing read of our run, and a state that names no execution: the caller reads the runs then.
            const unknown = st.executionId === undefined && runs === undefined;
            expect(ownEnded || stateEnded || st.executionId === 'e2' || unknown).toBe(true);
          }
        },
      ),
      { numRuns: 3000 },
    );
    expect(reached.stage).toBeGreaterThan(0);
    expect(reached.parallel).toBeGreaterThan(0);
    expect(reached.final).toBeGreaterThan(0);
  });

  it.each([
    ['in the state', { token: 'tok-a1', external: undefined }],
    ["as the run's externalExecutionId", { token: undefined, external: 'ext-a1' }],
    ['in the state, an uppercase UUID', { token: uuid(1).toUpperCase(), external: undefined }],
  ])('a token that is no lowercase UUID, shown %s, is not taken, nor is the gate given up', (_, shown) => {
    const stages: StageStateView[] = [
      {
        name: 'Gate',
        executionId: 'e1',
        actions: [{ name: 'Tollgate', status: 'InProgress', token: shown.token, actionExecutionId: 'a1' }],
      },
    ];
    const executions: ActionExecutionView[] = [
      {
        stage: 'Gate',
        action: 'Tollgate',
        actionExecutionId: 'a1',
        status: 'InProgress',
        customData: undefined,
        externalExecutionId: shown.external,
      },
    ];
    expect(checkToken(key, stages, executions, 'a1')).toEqual({
      ok: false,
      reason: expect.stringContaining('is not an approval token (a lowercase UUID)'),
      final: false,
    });
  });
});
