import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ListFindingsCommand } from '@aws-sdk/client-inspector2';
import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AwsFindings, EcrScanFindings, InspectorFindings } from '../adapters/aws/index.js';
import { auditSk, indexPk, PARTITION_KEY_BYTES } from '../adapters/dynamodb/audit-items.js';
import { DynamoStore } from '../adapters/dynamodb/store.js';
import { runEvaluate } from '../cli/evaluate.js';
import { EXIT } from '../cli/exit.js';
import { MalformedEventError } from '../functions/common/handler.js';
import {
  cleanReplay,
  deadLetters,
  indexWrite,
  PAGE_SIZE,
  type PlannedFault,
  planFaults,
  quietOf,
  redriveOf,
  runFaultMatrix,
  settle,
} from '../reliability/faults.js';
import {
  deadFindingsFuzz,
  fuzzEvents,
  fuzzFindings,
  MIN_CASES_FOR_DEAD,
  offenceCheck,
} from '../reliability/hostile.js';
import { actionsByGate, checkExpectations, checkRun } from '../reliability/invariants.js';
import { lagCanHide, lagPlan, lagReplay, replayLagged } from '../reliability/lag.js';
import { checkLines, checkPayloads } from '../reliability/logs.js';
import { oracleCounts, oracleOf } from '../reliability/oracle.js';
import {
  cleanOrdering,
  type Directive,
  Disorder,
  endingDroppedGates,
  LATE_AT_END,
  plan as orderingPlan,
  replayPlan,
  runOrderings,
} from '../reliability/orderings.js';
import { writeFindings, writeLongStrings, wrongResult } from '../reliability/oversized.js';
import { type Replay, Replayer, type ReplayOptions, rawChainProblems } from '../reliability/replay.js';
import { renderTable } from '../reliability/run.js';
import { exampleScenarios, ROOT, type SuiteScenario, suiteScenario } from '../reliability/scenarios.js';
import { runSuite, type SuiteReport } from '../reliability/suite.js';
import { gateId } from '../shared/gate/model.js';
import { compilePolicy } from '../shared/policy/compile.js';
import { parsePolicy } from '../shared/policy/load.js';
import { type GateView, type RunControl, SimClock } from '../simulator/run.js';
import { actionEvent, cloudTrailEvent, World } from '../simulator/world.js';
import { chain, entry } from './archive-fixtures.js';

/*
 * The reliability suite (reliability/): its quick run has no violation, and it does fail when the gate is
 * broken in the way the suite exists to catch (a failed findings page read as empty). Then the checkers, on
 * inputs made to fail them. The bugs the suite found have their regression tests in regressions.test.ts.
 */

type InspectorClient = Parameters<NonNullable<ReplayOptions['adapters']>>[1]['inspector'];
type Send = (command: unknown, options?: unknown) => Promise<unknown>;

/** Adapters whose Inspector client sends through `send` (made from the real one): a deliberately broken gate. */
function withInspectorSend(send: (target: InspectorClient) => Send): NonNullable<ReplayOptions['adapters']> {
  return (adapters, clients) => {
    const inspector = new Proxy(clients.inspector, {
      get(target, property, receiver) {
        if (property !== 'send') return Reflect.get(target, property, receiver);
        return send(target);
      },
    });
    const retry = { attempts: 3, baseMs: 1, maxDelayMs: 5 };
    return {
      ...adapters,
      findings: new AwsFindings(
        new InspectorFindings(inspector, retry),
        new EcrScanFindings(clients.ecr, retry),
      ),
    };
  };
}

/** The time the findings fuzz evaluates at (reliability/hostile.ts). */
const NOW = new Date('2026-11-25T12:00:00Z');
const SCENARIOS = exampleScenarios();
const scenario = (prefix: string): SuiteScenario => SCENARIOS.find((s) => s.name.startsWith(prefix))!;

/**
 * An example scenario whose scan event counts one finding of any severity, written to `dir`: a read of one
 * page settles on it. The examples' events count every finding their files hold, so that a partial read
 * never settles; this one lets a broken reader approve, to prove the checks see it when the settle rule
 * does not.
 */
function shortCounts(prefix: string, dir: string): SuiteScenario {
  const example = scenario(prefix).file;
  const raw = JSON.parse(readFileSync(example, 'utf8')) as {
    policy: string;
    world: { findings: Record<string, { file?: string }> };
    steps: { scan?: { counts?: unknown } }[];
  };
  const from = join(ROOT, 'examples', 'scenarios');
  raw.policy = join(from, raw.policy);
  for (const source of Object.values(raw.world.findings)) {
    if (source.file) source.file = join(from, source.file);
  }
  for (const step of raw.steps) if (step.scan?.counts) step.scan.counts = { TOTAL: 1 };
  const file = join(dir, example.split('/').pop()!);
  writeFileSync(file, JSON.stringify(raw));
  return suiteScenario(file);
}

describe('the reliability suite', () => {
  it('quick run: no APPROVE from incomplete data, no lost gate, no duplicate action, no violation at all', async () => {
    const report = await runSuite({ quick: true, seed: 20261125 });
    expect(report.violations).toEqual([]);
    expect(report.summary).toMatchObject({
      scenarios: 10,
      invariantViolations: 0,
      approvalsFromIncompleteData: 0,
      lostGates: 0,
      duplicateActions: 0,
    });
    expect(report.summary.faultsInjected).toBeGreaterThanOrEqual(40);
    expect(report.summary.fuzzCases).toBeGreaterThan(500);
    // The faults hit, and the logs were read.
    expect(report.faults?.runs.every((r) => r.injected > 0)).toBe(true);
    expect(report.faults?.logs.lines).toBeGreaterThan(100);
  }, 300_000);

  it('fails when a failed findings page is read as empty: APPROVE from incomplete data', async () => {
    // A deliberately broken adapter: Inspector's ListFindings errors become empty pages.
    const broken: ReplayOptions = {
      adapters: withInspectorSend((target) => async (command: unknown, options?: unknown) => {
        try {
          return await (target.send as Send)(command, options);
        } catch (e) {
          if (command instanceof ListFindingsCommand) return { findings: [], $metadata: {} };
          throw e;
        }
      }),
    };
    // With the examples' own counts the settle rule keeps such a read waiting until it reads them all; with
    // counts a read of one page meets, the broken gate approves on it, and the checks must say so.
    const dir = mkdtempSync(join(tmpdir(), 'tollgate-short-counts-'));
    const replayer = await Replayer.start();
    try {
      const section = await runFaultMatrix(replayer, [shortCounts('01', dir), shortCounts('04', dir)], {
        filter: (_s, p) => p.operation === 'ListFindings',
        extra: broken,
      });
      const violations = [...section.cleanViolations, ...section.runs.flatMap((r) => r.violations)];
      expect(section.runs.filter((r) => r.injected > 0).length).toBeGreaterThan(0);
      expect(violations.filter((v) => v.kind === 'approval-from-incomplete-data').length).toBeGreaterThan(0);
    } finally {
      await replayer.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);
});

describe('the fault plan and the VULN# index writes', () => {
  it('a chunk whose VULN# keys are hashed (a value too long for a key) is an index write, and gets its fault', () => {
    const transaction = (pks: readonly string[]) => ({
      operation: 'TransactWriteItems',
      input: { TransactItems: pks.map((pk) => ({ Put: { TableName: 't', Item: { pk, sk: 'x' } } })) },
    });
    const hashed = indexPk('VULN', `CVE-${'9'.repeat(PARTITION_KEY_BYTES)}`);
    expect(hashed.startsWith('VULN-SHA256#')).toBe(true);
    expect(indexWrite(transaction([hashed]))).toBe(true);
    expect(indexWrite(transaction(['VULN#CVE-1', hashed]))).toBe(true);
    expect(indexWrite(transaction(['AUDIT#p', hashed]))).toBe(false);
    expect(indexWrite(transaction([]))).toBe(false);

    // The decision's and the action's transactions, then the hashed chunk: its own fault skips the two.
    const calls = [transaction(['AUDIT#p', 'GATE#g']), transaction(['AUDIT#p']), transaction([hashed])];
    const planned = planFaults({ world: { calls } } as unknown as Replay, [0, calls.length]);
    expect(planned).toContainEqual(
      expect.objectContaining({
        persistence: 'first-index',
        fault: expect.objectContaining({ fail: expect.objectContaining({ skip: 2 }) }),
      }),
    );
  });

  it('`last` still hits the write after the action; the first index write has a fault of its own, and the items get written', async () => {
    const replayer = await Replayer.start();
    try {
      const s = scenario('02');
      const { replay, marks } = await cleanReplay(replayer, s);
      const planned = planFaults(replay, marks).filter((p) => p.operation === 'TransactWriteItems');
      const target = (p: PlannedFault) =>
        replay.world.calls
          .slice(marks[p.step], marks[p.step + 1])
          .filter((c) => c.operation === 'TransactWriteItems')[p.fault.fail.skip ?? 0]!;
      const hits = planned.map((p) => ({ persistence: p.persistence, index: indexWrite(target(p)) }));
      expect(hits).toContainEqual({ persistence: 'last', index: false });
      expect(hits).toContainEqual({ persistence: 'first-index', index: true });
      expect(hits.filter((h) => h.persistence === 'first-index').every((h) => h.index)).toBe(true);
      expect(hits.filter((h) => h.persistence === 'last').some((h) => h.index)).toBe(false);

      // Each kind of failure of that write: no violation, and the same items written after it by the sweep's
      // repair, from the pending marker (the faults are injected before the SDK's own retries, so a throttled
      // write fails here as one the SDK gave up on would).
      const indexFaults = planned.filter((p) => indexWrite(target(p)));
      expect(indexFaults.map((p) => p.kind).sort()).toEqual([
        '5xx',
        'access-denied',
        'answer-lost-5xx',
        'answer-lost-timeout',
        'throttling',
        'timeout',
      ]);
      for (const p of indexFaults.filter((f) => f.fault.fail.landed)) {
        // The write landed, only its answer was lost: no violation either.
        const run = await replayer.replay(s.loaded, {
          pageSize: PAGE_SIZE,
          faults: [p.fault],
          afterSteps: settle(s),
        });
        expect(run.world.calls.filter((c) => c.landed)).toHaveLength(1);
        expect(checkRun(s, replay, run), p.kind).toEqual([]);
        expect(quietOf(run).quiet).toBe(true);
      }
      for (const p of indexFaults.filter((f) => !f.fault.fail.landed)) {
        const run = await replayer.replay(s.loaded, {
          pageSize: PAGE_SIZE,
          faults: [p.fault],
          afterSteps: settle(s),
        });
        const failed = run.world.calls.filter((c) => c.injected);
        expect(failed).toHaveLength(1);
        expect(indexWrite(failed[0]!)).toBe(true);
        const after = run.world.calls.slice(run.world.calls.indexOf(failed[0]!) + 1);
        expect(
          after.some(
            (c) =>
              indexWrite(c) &&
              !c.failed &&
              JSON.stringify(c.input.TransactItems) === JSON.stringify(failed[0]!.input.TransactItems),
          ),
          p.kind,
        ).toBe(true);
        expect(checkRun(s, replay, run), p.kind).toEqual([]);
        expect(quietOf(run).quiet).toBe(true);
      }
    } finally {
      await replayer.close();
    }
  }, 120_000);
});

describe('a dropped approval STARTED event, every copy', () => {
  // The first event each scenario causes is its approval's STARTED; every other event is delivered once.
  const dropFirst = [
    { copies: 0, concurrent: false, delay: 0 },
    ...Array.from({ length: 11 }, () => ({ copies: 1, concurrent: false, delay: 0 })),
  ];

  it.each([
    ['01', 'APPROVE'],
    ['02', 'REJECT'],
  ])(
    'scenario %s: the sweep finds the waiting approval and decides it (%s); without discovery the check fails',
    async (prefix, outcome) => {
      const replayer = await Replayer.start();
      try {
        const s = scenario(prefix);
        const clean = await cleanOrdering(replayer, s);
        const repaired = await replayPlan(replayer, s, clean, dropFirst);
        expect(repaired.disorder.waiting.size).toBe(1);
        expect(repaired.violations).toEqual([]);
        const gate = repaired.replay.result.gates[0]!;
        expect(gate.outcome).toBe(outcome);
        expect(gate.timeline[0]?.what).toMatch(/^approval found in progress by the sweep/);

        const lost = await replayPlan(replayer, s, clean, dropFirst, { discovery: false });
        expect(lost.violations.map((v) => v.kind)).toEqual(['lost-gate']);
        expect(lost.violations[0]?.detail).toMatch(/discovery did not find its waiting approval/);
      } finally {
        await replayer.close();
      }
    },
    120_000,
  );
});

describe('the checkers', () => {
  const s = scenario('01');
  const key = {
    pipeline: 'billing-api',
    executionId: '00000001-5c4d-4e6f-8a9b-0c1d2e3f4a5b',
    stage: 'Deploy',
    action: 'TollgateApproval',
  };
  const id = `${key.pipeline}/${key.executionId}/${key.stage}/${key.action}`;
  const token = [...s.gateOfToken.keys()][0]!;

  it('logs: a token, a credential, a finding payload, a line that is not JSON, a gate named without its key', () => {
    const ok = JSON.stringify({ level: 'INFO', message: 'approval started', gate: id });
    const lines = [
      ok,
      JSON.stringify({ level: 'INFO', message: `token ${token.toUpperCase()}`, gate: id }),
      JSON.stringify({ level: 'INFO', message: 'keys', accessKeyId: 'AKIAABCDEFGHIJKLMNOP', gate: id }),
      JSON.stringify({ level: 'DEBUG', message: s.payloads[0], gate: id }),
      'Error: something went wrong',
      JSON.stringify({ level: 'WARN', message: `execution ${key.executionId} failed` }),
    ];
    const found = checkLines(s, [key], lines).map((v) => v.detail.split(':')[0]);
    expect(found).toEqual([
      'an approval token',
      'a credential',
      expect.stringMatching(/^a finding payload/),
      'not a JSON line',
      `names gate ${id} without a gate key`,
    ]);
    // A line about this gate under another gate's key.
    const other = { ...key, executionId: '00000099-5c4d-4e6f-8a9b-0c1d2e3f4a5b' };
    const otherId = `${other.pipeline}/${other.executionId}/${other.stage}/${other.action}`;
    const misfiled = JSON.stringify({
      level: 'INFO',
      message: `execution ${key.executionId} waits`,
      gate: otherId,
    });
    expect(checkLines(s, [key, other], [misfiled]).map((v) => v.detail.split(':')[0])).toEqual([
      `names gate ${id} under another gate's key (${otherId})`,
    ]);
    const filed = JSON.stringify({ level: 'INFO', message: `execution ${key.executionId} waits`, gate: id });
    expect(checkLines(s, [key, other], [filed])).toEqual([]);
  });

  it('payloads: an approval token in an SNS message or an EventBridge event', () => {
    const world = { messages: [], published: [], calls: [] };
    expect(checkPayloads(s, world)).toEqual([]);
    const leaked = (w: Partial<Parameters<typeof checkPayloads>[1]>) =>
      checkPayloads(s, { ...world, ...w } as Parameters<typeof checkPayloads>[1]).map((v) => v.kind);
    expect(leaked({ messages: [{ subject: 's', message: { text: `token ${token}` }, at: '' }] })).toEqual([
      'secret',
    ]);
    expect(leaked({ published: [{ Detail: { token: token.toUpperCase() } }] })).toEqual(['secret']);
  });

  function fake(
    gates: Partial<GateView>[],
    calls: { operation: string; input: object; failed?: boolean; injected?: boolean; landed?: boolean }[],
    audit: Partial<Replay['audit']> = {},
  ): Replay {
    return {
      result: { gates: gates.map((g) => ({ ...key, state: null, outcome: null, decision: null, ...g })) },
      world: { calls: calls.map((c) => ({ failed: false, injected: false, ...c })) },
      logs: [],
      // By default the trail matches the gates: one decision record per decided gate, every chain verified.
      audit: {
        verify: { ok: true, records: 0, problems: [] },
        decisions: new Map(gates.some((g) => g.decision) ? [[id, 1]] : []),
        raw: [],
        ...audit,
      },
    } as unknown as Replay;
  }
  /** Scenario 01's image, whose findings file holds MEDIUM 1 and LOW 2 (the oracle's count). */
  const DIGEST = 'sha256:ea7c5d4916fee16a84ab59b2e37233604d06b60dccaa55268177535f7d4223c1';
  const approve = {
    outcome: 'APPROVE',
    subject: { digest: DIGEST },
    counts: { CRITICAL: 0, HIGH: 0, MEDIUM: 1, LOW: 2 },
  } as const;
  const put = { operation: 'PutApprovalResult', input: { token, result: { status: 'Approved' } } };

  it('invariants: a lost gate, an APPROVE on fewer findings, two results, an action without its decision', () => {
    const clean = fake(
      [{ state: 'CLOSED', outcome: 'APPROVE', decision: approve as unknown as GateView['decision'] }],
      [put],
    );
    const kinds = (run: Replay) => checkRun(s, clean, run).map((v) => v.kind);
    expect(kinds(clean)).toEqual([]);
    expect(kinds(fake([{ state: null }], []))).toEqual(['lost-gate']);
    // Fewer findings than the clean run's, and than the files hold: both checks see it.
    const partial = { ...approve, counts: { ...approve.counts, LOW: 1 } } as unknown as GateView['decision'];
    expect(kinds(fake([{ state: 'ACTED', outcome: 'APPROVE', decision: partial }], [put]))).toEqual([
      'approval-from-incomplete-data',
      'approval-from-incomplete-data',
    ]);
    // ACTED or CLOSED on a decision the world never took: no result accepted, or one of the other status.
    const acted = {
      state: 'ACTED',
      outcome: 'APPROVE',
      decision: approve as unknown as GateView['decision'],
    } as const;
    expect(kinds(fake([acted], []))).toEqual(['decided-not-acted']);
    const sent = { status: 'Approved', summary: 'APPROVE' } as GateView['approvalResult'];
    expect(
      kinds(fake([{ ...acted, state: 'CLOSED', approvalResult: sent }], [{ ...put, failed: true }])),
    ).toEqual(['decided-not-acted']);
    // Decided, its result never sent (every attempt failed), then closed by the approval's end (abandoned):
    // it claims no action, and none is owed.
    expect(kinds(fake([{ ...acted, state: 'CLOSED' }], [{ ...put, failed: true }]))).toEqual([]);
    // … unless the clean run's gate sent that result: CLOSED without it is not "claims nothing" then.
    const cleanSent = fake([{ ...acted, state: 'CLOSED', approvalResult: sent }], [put]);
    expect(
      checkRun(s, cleanSent, fake([{ ...acted, state: 'CLOSED' }], [{ ...put, failed: true }])).map(
        (v) => v.kind,
      ),
    ).toEqual(['decided-not-acted']);
    // A person's answer ended the approval: Tollgate's result was refused, not lost.
    const alice = { identity: 'arn:aws:sts::123456789012:assumed-role/SecurityEngineer/alice' };
    expect(kinds(fake([{ ...acted, state: 'CLOSED', reviewer: alice } as Partial<GateView>], []))).toEqual(
      [],
    );
    const decided = {
      state: 'ACTED',
      outcome: 'APPROVE',
      decision: approve as unknown as GateView['decision'],
    } as const;
    expect(kinds(fake([decided], [put, put]))).toEqual(['duplicate-action']);
    // A second result after one that was refused (answered), with no fault: still a duplicate.
    const refused = { ...put, failed: true };
    expect(kinds(fake([decided], [put, refused]))).toEqual(['duplicate-action']);
    // After a call a fault stopped, or one that landed with its answer lost, the retry is excused.
    expect(kinds(fake([decided], [{ ...put, failed: true, injected: true }, put]))).toEqual([]);
    expect(kinds(fake([decided], [{ ...put, failed: true, injected: true, landed: true }, refused]))).toEqual(
      [],
    );
    // An APPROVE on the same counts but other findings, or another image, is not the clean run's.
    const withFindings = (digest: string, ids: string[]) =>
      ({
        ...approve,
        subject: { digest },
        violations: [],
        warnings: [{ rule: 'w', findings: ids }],
      }) as unknown as GateView['decision'];
    const cleanBasis = fake(
      [{ state: 'CLOSED', outcome: 'APPROVE', decision: withFindings(DIGEST, ['CVE-1']) }],
      [put],
    );
    const basis = (d: GateView['decision']) =>
      checkRun(s, cleanBasis, fake([{ state: 'CLOSED', outcome: 'APPROVE', decision: d }], [put])).map(
        (v) => v.kind,
      );
    expect(basis(withFindings(DIGEST, ['CVE-1']))).toEqual([]);
    expect(basis(withFindings(DIGEST, ['CVE-2']))).toEqual(['approval-from-incomplete-data']);
    // Another image: not the clean run's, and not what the files hold of it (none).
    expect(basis(withFindings('sha256:b', ['CVE-1']))).toEqual([
      'approval-from-incomplete-data',
      'approval-from-incomplete-data',
    ]);
    expect(kinds(fake([{ state: 'WAITING' }], [put]))).toEqual([
      'approval-from-incomplete-data',
      'action-without-decision',
    ]);
  });

  it('a repeated escalation is a duplicate when the store had recorded the first', () => {
    const message = JSON.stringify({ sqs: JSON.stringify({ gate: key }) });
    const publish = { operation: 'Publish', input: { Message: message } };
    const recorded = {
      operation: 'PutItem',
      input: { Item: { pk: `GATE#${id}`, sk: 'GATE', gate: { notifications: 1 } } },
    };
    const escalate = {
      state: 'ACTED',
      outcome: 'ESCALATE',
      decision: { outcome: 'ESCALATE' },
    } as unknown as Partial<GateView>;
    const clean = fake([escalate], [publish]);
    // No fault between the two: a duplicate, not the at-least-once window.
    expect(actionsByGate(s, fake([escalate], [publish, publish])).get(id)).toMatchObject({
      escalations: 2,
      unrecorded: 0,
    });
    expect(checkRun(s, clean, fake([escalate], [publish, publish])).map((v) => v.kind)).toEqual([
      'duplicate-action',
    ]);
    // An injected fault hit the store's write between them, and nothing recorded the first: excused.
    const failedWrite = { ...recorded, failed: true, injected: true };
    expect(actionsByGate(s, fake([escalate], [publish, failedWrite, publish])).get(id)).toMatchObject({
      escalations: 2,
      unrecorded: 1,
      unrecordedAnswerLost: 0,
    });
    expect(checkRun(s, clean, fake([escalate], [publish, failedWrite, publish]))).toEqual([]);
    // The first publish landed and its answer was lost: the retry is excused too, counted by its cause.
    const lostPublish = { ...publish, failed: true, injected: true, landed: true };
    expect(checkRun(s, clean, fake([escalate], [lostPublish, publish]))).toEqual([]);
    expect(actionsByGate(s, fake([escalate], [lostPublish, publish])).get(id)).toMatchObject({
      escalations: 2,
      unrecorded: 1,
      unrecordedAnswerLost: 1,
    });
    // Both at once: the answer lost (nothing was to be recorded), whatever the store's writes did.
    expect(actionsByGate(s, fake([escalate], [lostPublish, failedWrite, publish])).get(id)).toMatchObject({
      unrecorded: 1,
      unrecordedAnswerLost: 1,
    });
    // A refused store write (no fault) between them excuses nothing.
    const refusedWrite = { ...recorded, failed: true };
    expect(checkRun(s, clean, fake([escalate], [publish, refusedWrite, publish])).map((v) => v.kind)).toEqual(
      ['duplicate-action'],
    );
    expect(checkRun(s, clean, fake([escalate], [publish, recorded, publish])).map((v) => v.kind)).toEqual([
      'duplicate-action',
    ]);
    // Since the audit trail, the write that records an escalation is a TransactWriteItems.
    const transacted = {
      operation: 'TransactWriteItems',
      input: { TransactItems: [{ Put: recorded.input }, { Put: { Item: { pk: 'AUDIT#p', sk: 'SEQ#1' } } }] },
    };
    expect(checkRun(s, clean, fake([escalate], [publish, transacted, publish])).map((v) => v.kind)).toEqual([
      'duplicate-action',
    ]);
  });

  it("the table names both causes of a repeated escalation, not only the store's", () => {
    const planned = { kind: 'throttle', persistence: 'once', operation: 'Publish' };
    const run = {
      planned,
      injected: 1,
      deadLettered: 0,
      redriven: 0,
      unrecordedRepeats: 3,
      answerLostRepeats: 1,
      sweeps: 2,
      violations: [],
    };
    const report = {
      mode: 'quick',
      seed: 1,
      faults: {
        scenarios: 1,
        planned: 2,
        runs: [run, run],
        cleanViolations: [],
        logs: { lines: 0, violations: 0 },
      },
      hostile: {},
      violations: [],
      byKind: {},
      seconds: {},
      summary: {},
    } as unknown as SuiteReport;
    const row = renderTable(report)
      .split('\n')
      .find((line) => line.startsWith('| fault injection'));
    expect(row).toContain(
      "6 escalation(s) repeated because the first went unrecorded (4 a store write failed, 2 SNS Publish's answer was lost so it was sent again)",
    );
    expect(row).not.toContain('because the store never recorded the first');
  });

  it('invariants: an audit chain that does not verify, a decision without its record or with two', () => {
    // DECIDED: its action not yet taken, so that only the trail is judged here.
    const decided = {
      state: 'DECIDED',
      outcome: 'APPROVE',
      decision: approve as unknown as GateView['decision'],
    } as const;
    const clean = fake([decided], []);
    const kinds = (run: Replay) => checkRun(s, clean, run).map((v) => v.kind);
    expect(kinds(clean)).toEqual([]);
    expect(kinds(fake([decided], [], { decisions: new Map() }))).toEqual(['audit-chain']);
    expect(kinds(fake([decided], [], { decisions: new Map([[id, 2]]) }))).toEqual(['audit-chain']);
    const broken = {
      ok: false,
      records: 3,
      problems: [{ pipeline: key.pipeline, seq: 2, kind: 'missing' as const, detail: 'record 2 is missing' }],
    };
    expect(checkRun(s, clean, fake([decided], [], { verify: broken }))).toEqual([
      { kind: 'audit-chain', detail: `${key.pipeline} #2 missing: record 2 is missing` },
    ]);
    // What the raw items say, checked without the store's code, counts as much.
    expect(
      checkRun(
        s,
        clean,
        fake([decided], [], { raw: ['AUDIT#p #2: its hash is not the SHA-256 of its content'] }),
      ),
    ).toEqual([
      { kind: 'audit-chain', detail: 'raw items: AUDIT#p #2: its hash is not the SHA-256 of its content' },
    ]);
  });
});

describe('the strengthened checks, against a deliberately broken gate', () => {
  let replayer: Replayer;
  beforeAll(async () => {
    replayer = await Replayer.start();
  });
  afterAll(async () => {
    await replayer.close();
  });

  const run = (s: SuiteScenario, options: ReplayOptions = {}) =>
    replayer.replay(s.loaded, { ...options, pageSize: PAGE_SIZE, afterSteps: settle(s) });

  it("the chains are checked from the raw items too, without the store's code: a record changed in place is caught", async () => {
    const s1 = scenario('01');
    const { replay } = await cleanReplay(replayer, s1);
    expect(replay.audit.raw).toEqual([]);
    // The replay's table is dropped after it: the same check on a table of its own, a record then edited.
    await replayer.withTable(async (doc, tableName) => {
      const store = new DynamoStore(doc, tableName);
      for (const record of chain('raw-check', [entry(), entry({ outcome: 'REJECT' }), entry()])) {
        await store.appendAudit(record);
      }
      expect(await rawChainProblems(doc, tableName)).toEqual([]);
      await doc.send(
        new UpdateCommand({
          TableName: tableName,
          Key: { pk: 'AUDIT#raw-check', sk: auditSk(2) },
          UpdateExpression: 'SET #r.#s = :s',
          ExpressionAttributeNames: { '#r': 'record', '#s': 'summary' },
          ExpressionAttributeValues: { ':s': 'APPROVE, said someone' },
        }),
      );
      expect(await rawChainProblems(doc, tableName)).toEqual([
        'AUDIT#raw-check #2: its hash is not the SHA-256 of its content',
      ]);
    });
  }, 60_000);

  it('an ordering plan whose replay crashes is reported, and the plans after it still run', async () => {
    // fast-check reports a property that throws in its result, which was not read: the crash, and every
    // plan after it, went unreported and the suite passed.
    let replays = 0;
    const crashing = Object.create(replayer) as Replayer;
    crashing.replay = async (...args: Parameters<Replayer['replay']>) => {
      if (replays++ === 0) return replayer.replay(...args); // the clean replay
      throw new Error('the replay crashed');
    };
    const section = await runOrderings(crashing, [scenario('01')], { numRuns: 3, seed: 1, lagLimit: 0 });
    expect(section.runs).toHaveLength(3);
    expect(section.runs.flatMap((r) => r.violations.map((v) => [v.kind, v.detail]))).toEqual(
      Array(3).fill(['unexpected-exception', expect.stringContaining('the replay crashed')]),
    );
  }, 120_000);

  it('a result sent twice, or an escalation published twice, with no fault: duplicate-action', async () => {
    const twice: ReplayOptions = {
      adapters: (adapters) => ({
        ...adapters,
        approvals: Object.assign(Object.create(adapters.approvals) as typeof adapters.approvals, {
          putApprovalResult: async (request: Parameters<typeof adapters.approvals.putApprovalResult>[0]) => {
            const first = await adapters.approvals.putApprovalResult(request);
            await adapters.approvals.putApprovalResult(request);
            return first;
          },
        }),
      }),
    };
    const s1 = scenario('01');
    const { replay: clean1 } = await cleanReplay(replayer, s1);
    expect(checkRun(s1, clean1, clean1)).toEqual([]);
    const doubled = await run(s1, twice);
    expect(checkRun(s1, clean1, doubled).map((v) => v.kind)).toContain('duplicate-action');

    const publishTwice: ReplayOptions = {
      adapters: (adapters) => ({
        ...adapters,
        notifier: {
          publish: async (message) => {
            await adapters.notifier.publish(message);
            return adapters.notifier.publish(message);
          },
        },
      }),
    };
    const s3 = scenario('03');
    const { replay: clean3 } = await cleanReplay(replayer, s3);
    const published = await run(s3, publishTwice);
    expect(checkRun(s3, clean3, published).map((v) => v.kind)).toContain('duplicate-action');
  }, 120_000);

  it('a call that landed with its answer lost: the retry is excused, and the gate ends as the clean run', async () => {
    const s = scenario('01');
    const { replay: clean } = await cleanReplay(replayer, s);
    const step = s.loaded.scenario.steps.findIndex((x) => x.scan);
    const lost = await run(s, {
      faults: [
        { step, fail: { operation: 'PutApprovalResult', error: 'TimeoutError', times: 1, landed: true } },
      ],
    });
    const puts = lost.world.calls.filter((c) => c.operation === 'PutApprovalResult');
    expect(puts[0]).toMatchObject({ failed: true, injected: true, landed: true });
    // It landed: the approval took the result, and the retry heard that it was already completed.
    expect(puts.length).toBeGreaterThan(1);
    expect(puts.slice(1).every((c) => c.failed && !c.injected)).toBe(true);
    expect(checkRun(s, clean, lost)).toEqual([]);
    // CodePipeline took Tollgate's result: CloudTrail's record names Tollgate as the reviewer, which makes the
    // result sent the gate's own.
    expect(lost.result.gates[0]).toMatchObject({
      state: 'CLOSED',
      outcome: 'APPROVE',
      approvalResult: { status: 'Approved' },
    });
    expect(lost.result.gates[0]?.reviewer?.identity).toMatch(/TollgateGateRole/);
  }, 60_000);

  it('a ListFindings filter on the wrong repository: the clean replay no longer meets the scenario', async () => {
    const s = scenario('02');
    const { replay: clean } = await cleanReplay(replayer, s);
    expect(checkExpectations(s, clean)).toEqual([]);
    const wrongRepository: ReplayOptions = {
      adapters: withInspectorSend((target) => (command: unknown, options?: unknown) => {
        if (command instanceof ListFindingsCommand && command.input.filterCriteria) {
          command.input.filterCriteria.ecrImageRepositoryName = [
            {
              comparison: 'EQUALS',
              value: 'arn:aws:ecr:eu-west-1:123456789012:repository/payments/api',
            },
          ];
        }
        return (target.send as Send)(command, options);
      }),
    };
    const broken = await run(s, wrongRepository);
    expect(checkExpectations(s, broken).map((v) => v.kind)).toContain('expectation');
  }, 60_000);

  it('the world refuses a filter or a comparison it does not implement, and an invalid approval result', async () => {
    const s = scenario('02');
    const world = new World(s.loaded, new SimClock(Date.parse(s.loaded.scenario.start)));
    const digest = s.loaded.scenario.world.images[0]!.digest;
    const findings = (filterCriteria: object) => world.answer('ListFindingsCommand', { filterCriteria });
    await expect(
      findings({
        ecrImageHash: [{ comparison: 'EQUALS', value: digest }],
        vulnerabilityId: [{ comparison: 'EQUALS', value: 'x' }],
      }),
    ).rejects.toMatchObject({ name: 'ValidationException' });
    await expect(
      findings({ ecrImageHash: [{ comparison: 'CONTAINS', value: 'sha' }] }),
    ).rejects.toMatchObject({
      name: 'ValidationException',
    });
    const all = (await findings({ ecrImageHash: [{ comparison: 'EQUALS', value: digest }] })) as {
      findings: unknown[];
    };
    const prefix = (await findings({
      ecrImageHash: [{ comparison: 'PREFIX', value: digest.slice(0, 12) }],
    })) as {
      findings: unknown[];
    };
    const critical = (await findings({
      ecrImageHash: [{ comparison: 'EQUALS', value: digest }],
      severity: [{ comparison: 'NOT_EQUALS', value: 'CRITICAL' }],
    })) as { findings: { severity: string }[] };
    expect(all.findings.length).toBeGreaterThan(1);
    expect(prefix.findings).toHaveLength(all.findings.length);
    const criticals = (all.findings as { severity?: string }[]).filter((f) => f.severity === 'CRITICAL');
    expect(criticals.length).toBeGreaterThan(0);
    expect(critical.findings.length).toBe(all.findings.length - criticals.length);
    expect(critical.findings.every((f) => f.severity !== 'CRITICAL')).toBe(true);
    await expect(
      world.answer('ListCoverageCommand', {
        filterCriteria: { ecrRepositoryName: [{ comparison: 'PREFIX', value: 'p' }] },
      }),
    ).rejects.toMatchObject({ name: 'ValidationException' });

    const approval = s.loaded.scenario.world.approvals[0]!;
    world.startApproval(approval);
    const put = (token: string, summary: string) =>
      world.putApprovalResult({
        pipelineName: approval.pipeline,
        stageName: approval.stage,
        actionName: approval.action,
        token,
        result: { status: 'Rejected', summary },
      });
    expect(() => put(approval.token!.toUpperCase(), 'ok')).toThrow(/token/);
    expect(() => put(approval.token!, 'x'.repeat(513))).toThrow(/summary/);
    expect(put(approval.token!, 'x'.repeat(512))).toHaveProperty('approvedAt');
  });

  it('the event fuzz reaches decisions; it fails when it never does, and when a hostile event approves', async () => {
    const s = scenario('02');
    const alive = await fuzzEvents(replayer, s, { numRuns: 100, seed: 20261125 });
    expect(alive.facts.decided).toBeGreaterThan(0);
    expect(alive.facts.acted).toBeGreaterThan(0);
    expect(alive.violations.filter((v) => v.kind === 'dead-fuzz')).toEqual([]);
    expect(alive.violations.filter((v) => v.kind === 'dead-letter')).toEqual([]);

    const ignoring = await fuzzEvents(replayer, s, {
      numRuns: 30,
      seed: 7,
      handlers: (handlers) =>
        Object.fromEntries(
          Object.keys(handlers).map((fn) => [fn, async () => ({ ignored: 'sabotaged' })]),
        ) as unknown as typeof handlers,
    });
    expect(ignoring.violations.map((v) => v.kind)).toContain('dead-fuzz');

    // An approvals adapter that sends Approved whatever was decided.
    const approving = await fuzzEvents(replayer, s, {
      numRuns: 60,
      seed: 7,
      adapters: (adapters) => ({
        ...adapters,
        approvals: Object.assign(Object.create(adapters.approvals) as typeof adapters.approvals, {
          putApprovalResult: (request: Parameters<typeof adapters.approvals.putApprovalResult>[0]) =>
            adapters.approvals.putApprovalResult({
              ...request,
              result: { ...request.result, status: 'Approved' },
            }),
        }),
      }),
    });
    expect(approving.violations.map((v) => v.kind)).toContain('approval-from-hostile-input');
  }, 180_000);

  it('the findings fuzz keeps offences untouched, and an evaluate that approves them is caught by both checks', async () => {
    const live = await fuzzFindings({ numRuns: 200, seed: 20261125 });
    expect(live.violations).toEqual([]);
    expect(live.facts.offencesKept).toBeGreaterThan(0);

    // Approves whatever it reads: each untouched offence is an approval from hostile input, named by the
    // independent check (its array and element) as well as by the reader's.
    const approving = await fuzzFindings({
      numRuns: 200,
      seed: 20261125,
      evaluateWith: async () => ({ exitCode: EXIT.APPROVE, stdout: '', warnings: [] }),
    });
    const details = approving.violations
      .filter((v) => v.kind === 'approval-from-hostile-input')
      .map((v) => v.detail);
    expect(
      details.filter((d) => /kept unchanged the element \d+ of findings of findings-\d\.json/.test(d)),
    ).toHaveLength(live.facts.offencesKept ?? -1);
    expect(details.some((d) => /APPROVE of a mutation that kept [A-Z]/.test(d))).toBe(true);
  }, 120_000);

  it('the findings fuzz is dead only when no case kept an offence, in a run large enough to tell', async () => {
    // Seed 110 keeps 3 of 200, under the 2% share that used to be required: a healthy run, not a dead one.
    const healthy = await fuzzFindings({ numRuns: 200, seed: 110 });
    expect(healthy.facts.offencesKept).toBeGreaterThan(0);
    expect(healthy.violations).toEqual([]);
    expect(deadFindingsFuzz({ cases: MIN_CASES_FOR_DEAD, offencesKept: 0 })).toBe(true);
    expect(deadFindingsFuzz({ cases: 5000, offencesKept: 0 })).toBe(true);
    expect(deadFindingsFuzz({ cases: MIN_CASES_FOR_DEAD, offencesKept: 1 })).toBe(false);
    expect(deadFindingsFuzz({ cases: MIN_CASES_FOR_DEAD - 1, offencesKept: 0 })).toBe(false);
  }, 120_000);

  it("the independent check: a harmless finding beside the other file's offence is no offence; removing that offence may approve", async () => {
    const policy = join(ROOT, 'examples', 'policies', 'baseline.yaml');
    const compiled = compilePolicy(parsePolicy(readFileSync(policy, 'utf8'), policy));
    const read = (name: string) =>
      JSON.parse(readFileSync(join(ROOT, 'examples', 'findings', `${name}.json`), 'utf8')) as {
        findings: unknown[];
      };
    const dropFirst = (doc: { findings: unknown[] }) => ({ ...doc, findings: doc.findings.slice(1) });
    const dir = mkdtempSync(join(tmpdir(), 'tollgate-offence-'));
    try {
      for (const names of [
        ['search-api.first-findings.list-findings', 'search-api.late-findings.list-findings'],
        ['orders-worker.list-findings', 'orders-worker.list-findings'],
      ]) {
        const docs = names.map(read);
        const check = offenceCheck(compiled, docs);
        // The check is alive on these inputs: unmutated, they keep their offence.
        expect(check.untouchedOffence([0, 1], docs)).toBeDefined();
        const mutated = docs.map(dropFirst);
        const paths = mutated.map((doc, i) => {
          const path = join(dir, `findings-${i}.json`);
          writeFileSync(path, JSON.stringify(doc));
          return path;
        });
        const out = await runEvaluate({ policy, findings: paths, format: 'json', color: false, now: NOW });
        expect(out.exitCode).toBe(EXIT.APPROVE);
        expect(check.untouchedOffence([0, 1], mutated)).toBeUndefined();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('orderings: the directives consumed are counted, not the log lines; a different ending is a violation', async () => {
    const plan = [
      { copies: 1, concurrent: false, delay: 1 },
      { copies: 1, concurrent: false, delay: 0 },
      { copies: 0, concurrent: false, delay: 0 },
    ];
    const disorder = new Disorder(plan);
    const event = (name: string) => ({ 'detail-type': name, detail: {} });
    const deliver = async () => undefined;
    await disorder.deliverVia(event('A'), deliver, { step: 0, origin: 'step' });
    await disorder.deliverVia(event('B'), deliver, { step: 1, origin: 'step' });
    await disorder.flush(deliver);
    expect(disorder.log).toHaveLength(3);
    expect(disorder.consumed).toBe(2);

    const s = scenario('03');
    const clean = await cleanOrdering(replayer, s);
    const same = checkRun(s, clean, clean, { sameDecisions: true });
    expect(same).toEqual([]);
    const gates = clean.result.gates.map((g) => ({
      ...g,
      reviewer: null,
      notifications: g.notifications + 1,
    }));
    const other = { ...clean, result: { ...clean.result, gates } } as Replay;
    expect(checkRun(s, clean, other, { sameDecisions: true }).map((v) => v.kind)).toContain(
      'different-decision',
    );
    const ids = new Set(gates.map((g) => `${g.pipeline}/${g.executionId}/${g.stage}/${g.action}`));
    expect(
      checkRun(s, clean, other, { sameDecisions: true, endingDropped: ids }).filter((v) =>
        v.detail.startsWith('ends'),
      ),
    ).toEqual([]);
  }, 120_000);

  it('orderings: an escalation whose end and CloudTrail record are both lost is closed by the sweep, its reviewer named', async () => {
    const s = scenario('03');
    const clean = await cleanOrdering(replayer, s);
    // The events in the order the plan meets them, from a plan that delivers each once.
    const once = { copies: 1, concurrent: false, delay: 0 };
    const probe = await replayPlan(
      replayer,
      s,
      clean,
      Array.from({ length: 200 }, () => once),
    );
    const ending = (line: string) =>
      / (SUCCEEDED|FAILED)$/.test(line) || line.includes('AWS API Call via CloudTrail');
    expect(probe.disorder.log.filter(ending).length).toBeGreaterThanOrEqual(2);
    const plan = probe.disorder.log.map((line) => (ending(line) ? { ...once, copies: 0 } : once));
    const { replay, violations, disorder } = await replayPlan(replayer, s, clean, plan);
    expect(disorder.endingDropped.size).toBeGreaterThan(0);
    expect(violations).toEqual([]);
    const want = clean.result.gates.find((g) => g.reviewer !== null)!;
    const got = replay.result.gates.find((g) => gateId(g) === gateId(want))!;
    expect(got.state).toBe('CLOSED');
    expect(got.closure?.state).toBe(want.closure?.state);
    expect(got.reviewer).toMatchObject({ identity: want.reviewer!.identity, source: 'listing' });

    // The check itself: the same gate left ACTED, or CLOSED with nobody named, is a violation.
    const ids = new Set([gateId(want)]);
    for (const change of [{ state: 'ACTED' as const, reviewer: null }, { reviewer: null }]) {
      const gates = replay.result.gates.map((g) => (gateId(g) === gateId(want) ? { ...g, ...change } : g));
      const other = { ...replay, result: { ...replay.result, gates } } as Replay;
      expect(
        checkRun(s, clean, other, { sameDecisions: true, endingDropped: ids }).map((v) => v.kind),
      ).toContain('unreconciled');
    }
  }, 180_000);

  it('read lag: just after STARTED the state shows no token and the listing no run; after the lag both do', async () => {
    const s = scenario('08');
    const start = Date.parse(s.loaded.scenario.start);
    const read = async (world: World) => {
      const state = (await world.answer('GetPipelineStateCommand', { name: 'checkout-web' })) as {
        stageStates: {
          latestExecution?: { pipelineExecutionId: string };
          actionStates: { latestExecution?: { token?: string; status: string } }[];
        }[];
      };
      const listed = (await world.answer('ListActionExecutionsCommand', {
        pipelineName: 'checkout-web',
        filter: { pipelineExecutionId: execution2 },
      })) as { actionExecutionDetails: unknown[] };
      const stage = state.stageStates[0]!;
      return {
        execution: stage.latestExecution?.pipelineExecutionId,
        status: stage.actionStates[0]!.latestExecution?.status,
        token: stage.actionStates[0]!.latestExecution?.token,
        runs: listed.actionExecutionDetails.length,
      };
    };
    const steps = s.loaded.scenario.steps;
    const first = steps.find((x) => x.approvalStarted)!.approvalStarted!;
    const second = steps.find((x) => x.supersede)!.supersede!;
    const execution2 = second.executionId;
    expect(first.pipeline).toBe('checkout-web');

    for (const lagMs of [0, 20_000]) {
      const clock = new SimClock(start);
      const world = new World(s.loaded, clock, { readLagMs: lagMs });
      // An approval that never ran before: in progress at once, but without its token during the lag.
      world.startApproval(first);
      const token1 = world.findSlot(first.pipeline, first.stage, first.action)!.token;
      const fresh = (await world.answer('GetPipelineStateCommand', { name: first.pipeline })) as {
        stageStates: { actionStates: { latestExecution?: { token?: string; status: string } }[] }[];
      };
      const action = fresh.stageStates[0]!.actionStates[0]!.latestExecution!;
      expect(action.status).toBe('InProgress');
      expect(action.token).toBe(lagMs > 0 ? undefined : token1);

      // Execution 2 takes the stage 3 minutes later: during the lag the state still shows execution 1
      // (its run abandoned, no token) and the listing has no run of execution 2.
      clock.set(start + 180_000);
      world.supersede(second);
      world.startApproval(second);
      const token2 = world.findSlot(second.pipeline, second.stage, second.action)!.token;
      const now = await read(world);
      if (lagMs > 0) {
        expect(now).toEqual({ execution: first.executionId, status: 'Abandoned', token: undefined, runs: 0 });
        expect(world.laggedReads).toBe(3);
      } else {
        expect(now).toEqual({ execution: execution2, status: 'InProgress', token: token2, runs: 1 });
        expect(world.laggedReads).toBe(0);
      }
      // A moment before the lag ends, still behind; once it has passed, the truth.
      clock.set(start + 180_000 + 19_999);
      expect((await read(world)).token).toBe(lagMs > 0 ? undefined : token2);
      clock.set(start + 180_000 + 20_000);
      expect(await read(world)).toEqual({
        execution: execution2,
        status: 'InProgress',
        token: token2,
        runs: 1,
      });
    }
  });

  it('read lag: the approval-started handler waits the lag out (Lambda retries 1 minute later), and the replay ends as the clean one', async () => {
    const s = scenario('03');
    const clean = await cleanOrdering(replayer, s);
    const lagged = await lagReplay(replayer, s, 2_000);
    // The STARTED event's reads lagged: the handler failed on purpose (no run listed, so no CustomData) and
    // the retry a minute later opened the gate.
    expect(lagged.world.laggedReads).toBeGreaterThan(0);
    const started = lagged.result.deliveries.filter((d) => d.function === 'approval-started');
    expect(started[0]?.outcome).toBe('dead-lettered');
    expect(Date.parse(started[0]!.at)).toBe(Date.parse(s.loaded.scenario.start));
    expect(
      started.some((d) => d.outcome === 'ok' && Date.parse(d.at) >= Date.parse(started[0]!.at) + 60_000),
    ).toBe(true);
    const { run } = await replayLagged(replayer, s, clean, 2_000, undefined);
    expect(run.violations).toEqual([]);
    expect(run.outcomes).toBe('CLOSED/ESCALATE');
  }, 60_000);
});

describe('checks that a decision was acted on, and counted what the files hold', () => {
  let replayer: Replayer;
  beforeAll(async () => {
    replayer = await Replayer.start();
  });
  afterAll(async () => {
    await replayer.close();
  });

  /** `s` replayed with the clean run's planned fault that `pick` chooses, and the clean run to judge it by. */
  const withFault = async (
    s: SuiteScenario,
    pick: (p: PlannedFault) => boolean,
    options: ReplayOptions = {},
  ): Promise<{ clean: Replay; faulty: Replay }> => {
    const { replay: clean, marks } = await cleanReplay(replayer, s, options);
    const planned = planFaults(clean, marks).find(pick);
    if (!planned) throw new Error(`${s.name}: no such planned fault`);
    const faulty = await replayer.replay(s.loaded, {
      ...options,
      pageSize: PAGE_SIZE,
      faults: [planned.fault],
      afterSteps: settle(s),
    });
    return { clean, faulty };
  };
  const outage = (operation: string) => (p: PlannedFault) =>
    p.operation === operation && p.kind === '5xx' && p.persistence === 'outage';

  it('a result CodePipeline never took, reported to the gate as accepted: decided-not-acted', async () => {
    // A deliberately broken adapter: a PutApprovalResult that failed is said to be accepted.
    const swallow: ReplayOptions = {
      adapters: (adapters) => ({
        ...adapters,
        approvals: Object.assign(Object.create(adapters.approvals) as typeof adapters.approvals, {
          putApprovalResult: async (request: Parameters<typeof adapters.approvals.putApprovalResult>[0]) => {
            try {
              return await adapters.approvals.putApprovalResult(request);
            } catch {
              return 'accepted' as const;
            }
          },
        }),
      }),
    };
    for (const prefix of ['01', '02']) {
      const s = scenario(prefix);
      const broken = await withFault(s, outage('PutApprovalResult'), swallow);
      expect(broken.faulty.result.gates.map((g) => g.state)).toEqual(['ACTED']);
      expect(checkRun(s, broken.clean, broken.faulty).map((v) => v.kind)).toEqual(['decided-not-acted']);
      // The real adapter retries once the outage ends: the approval takes the result, and no violation.
      const real = await withFault(s, outage('PutApprovalResult'));
      expect(real.faulty.result.gates.map((g) => g.state)).toEqual(['CLOSED']);
      expect(checkRun(s, real.clean, real.faulty)).toEqual([]);
    }
  }, 120_000);

  it('an escalation SNS never delivered, reported to the gate as sent: decided-not-acted', async () => {
    const swallow: ReplayOptions = {
      adapters: (adapters) => ({
        ...adapters,
        notifier: {
          publish: async (message) => {
            try {
              return await adapters.notifier.publish(message);
            } catch {
              return { mayHaveDuplicated: false };
            }
          },
        },
      }),
    };
    const s = scenario('06');
    const broken = await withFault(s, outage('Publish'), swallow);
    expect(broken.faulty.result.gates.map((g) => `${g.state}/${g.outcome}`)).toEqual(['ACTED/ESCALATE']);
    expect(checkRun(s, broken.clean, broken.faulty).map((v) => v.kind)).toEqual(['decided-not-acted']);
    const real = await withFault(s, outage('Publish'));
    expect(checkRun(s, real.clean, real.faulty)).toEqual([]);
  }, 120_000);

  it("the oracle: the example findings files counted by hand, and every scan step's counts agree with them", () => {
    const zero = { CRITICAL: 0, HIGH: 0, MEDIUM: 0, LOW: 0, INFORMATIONAL: 0, UNTRIAGED: 0 };
    const of = (prefix: string, digest: string) => oracleOf(scenario(prefix), digest);
    // Pinned by hand from examples/findings (ACTIVE findings only: payments-api's suppressed CRITICAL is not).
    expect(of('01', 'sha256:ea7c5d4916fee16a84ab59b2e37233604d06b60dccaa55268177535f7d4223c1')).toEqual({
      ...zero,
      MEDIUM: 1,
      LOW: 2,
    });
    expect(of('02', 'sha256:3f9a1c0d8e2b47a6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2')).toEqual({
      ...zero,
      CRITICAL: 1,
      HIGH: 3,
      MEDIUM: 3,
      LOW: 2,
      UNTRIAGED: 1,
    });
    expect(of('04', 'sha256:9c7d02b8b260fa42b14a85cc1221f942f2029b5bf1132fc300ec479273406f5d')).toEqual({
      ...zero,
      MEDIUM: 1,
      LOW: 2,
    });
    expect(of('08', 'sha256:8bfd6dbb639236290e302e2c15d66bc041f2ba75b12c07eb969fcc330ae46da8')).toEqual({
      ...zero,
      LOW: 1,
    });
    expect(of('10', 'sha256:5e040586cfc3a73f0f3bfdd0bc7c2af71abaf40c9bb1c795ef9159b7b3b4abfd')).toEqual(zero);
    // The examples' scan events count TOTAL over every severity (LOW included) and list CRITICAL, HIGH and
    // MEDIUM, as Inspector's documented counts do (an assumption for TOTAL: the one real sample counts
    // nothing): a scenario whose counts fall short of its files lets a read that lost findings settle.
    for (const s of SCENARIOS) {
      for (const step of s.loaded.scenario.steps) {
        const counts = step.scan?.counts;
        if (!step.scan || !counts) continue;
        const want = oracleCounts(s).get(step.scan.digest) ?? zero;
        const total = Object.values(want).reduce((a, b) => a + b, 0);
        expect({ scenario: s.name, ...counts }).toEqual({
          scenario: s.name,
          CRITICAL: want.CRITICAL,
          HIGH: want.HIGH,
          MEDIUM: want.MEDIUM,
          TOTAL: total,
        });
      }
    }
  });

  it('a reader that reads only the first page, on a scan event it satisfies: the oracle catches the APPROVE', async () => {
    // A deliberately broken reader: every ListFindings page after the first is read as the end of the list.
    const firstPageOnly: ReplayOptions = {
      adapters: withInspectorSend((target) => async (command: unknown, options?: unknown) => {
        const out = (await (target.send as Send)(command, options)) as Record<string, unknown>;
        return command instanceof ListFindingsCommand ? { ...out, nextToken: undefined } : out;
      }),
    };
    // Scenario 01 with the scan event counting one finding: the broken reader settles on the first page and
    // approves, in the clean run and every other alike, which the comparison with the clean run cannot see.
    const dir = mkdtempSync(join(tmpdir(), 'tollgate-oracle-'));
    try {
      const s = shortCounts('01', dir);
      const { replay: broken } = await cleanReplay(replayer, s, firstPageOnly);
      expect(broken.result.gates.map((g) => g.outcome)).toEqual(['APPROVE']);
      const found = checkRun(s, broken, broken);
      expect(found.map((v) => v.kind)).toEqual(['approval-from-incomplete-data']);
      expect(found[0]?.detail).toMatch(/the files hold/);
      // The real reader reads every page: the same scenario approves on what the files hold.
      const { replay: real } = await cleanReplay(replayer, s);
      expect(real.result.gates.map((g) => g.outcome)).toEqual(['APPROVE']);
      expect(checkRun(s, real, real)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it('a lagged replay that hid no read is dead-lag; the plan leaves out the scenarios whose STARTED events are all lost', async () => {
    const s9 = scenario('09');
    expect(lagCanHide(s9)).toBe(false);
    expect(lagCanHide(scenario('10'))).toBe(false);
    expect(lagPlan(SCENARIOS, undefined).map((p) => p.s.name.slice(0, 2))).not.toContain('09');
    expect(lagPlan(SCENARIOS, undefined)).toHaveLength(8 * 3);
    const clean = await cleanOrdering(replayer, s9);
    const { run } = await replayLagged(replayer, s9, clean, 20_000, undefined);
    expect(run.laggedReads).toBe(0);
    expect(run.violations.map((v) => v.kind)).toEqual(['dead-lag']);
  }, 120_000);

  it('oversized inputs: a decision must reject the CRITICAL findings written, counting every one', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tollgate-oversized-test-'));
    try {
      const file = join(dir, 'f.json');
      const written = writeFindings(file, 20, Number.MAX_SAFE_INTEGER, true);
      const doc = JSON.parse(readFileSync(file, 'utf8')) as { findings: { severity: string }[] };
      expect(written.findings).toBe(doc.findings.length);
      expect(written.critical).toBe(doc.findings.filter((f) => f.severity === 'CRITICAL').length);
      expect(written.critical).toBeGreaterThan(0);
      const plan = { written };
      const all = { total: written.findings, critical: written.critical };
      expect(wrongResult(plan, { decision: 'REJECT', counted: all })).toBeUndefined();
      expect(wrongResult(plan, { decision: 'APPROVE', counted: all })).toMatch(
        /decided APPROVE.*expected REJECT/,
      );
      expect(wrongResult(plan, { decision: 'ESCALATE', counted: all })).toMatch(/expected REJECT/);
      expect(wrongResult(plan, { decision: 'REJECT', counted: { ...all, total: all.total - 1 } })).toMatch(
        /counted 19 finding\(s\) of the 20 written/,
      );
      expect(wrongResult(plan, { decision: 'REJECT' })).toMatch(/counted no finding/);
      expect(wrongResult({}, { decision: 'APPROVE' })).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the checks made stronger after review', () => {
  let replayer: Replayer;
  beforeAll(async () => {
    replayer = await Replayer.start();
  });
  afterAll(async () => {
    await replayer.close();
  });

  /** `replay` with its gates replaced (the rest kept: world, calls, audit). */
  const withGates = (replay: Replay, gates: GateView[], audit = replay.audit): Replay =>
    ({ ...replay, result: { ...replay.result, gates }, audit }) as Replay;

  it('fault matrix: a gate that gives up, decides and never sends, or stays ACTED fails the settled checks', async () => {
    for (const prefix of ['01', '02']) {
      const s = scenario(prefix);
      const { replay: clean } = await cleanReplay(replayer, s);
      expect(checkRun(s, clean, clean, { settled: true })).toEqual([]);
      // Another replay of it, whose world is put back to its approval still waiting (as a gate that gave up
      // or never sent its result would leave it).
      const { replay: other } = await cleanReplay(replayer, s);
      const g = clean.result.gates[0]!;
      other.world.findSlot(g.pipeline, g.stage, g.action)!.status = 'InProgress';
      const kinds = (run: Replay) => checkRun(s, clean, run, { settled: true }).map((v) => v.kind);
      const none = { approvalResult: null, reviewer: null, closure: null };
      // Gave up: STALE, no decision (and no decision record).
      const gaveUp = withGates(other, [{ ...g, ...none, state: 'STALE', outcome: null, decision: null }], {
        ...other.audit,
        decisions: new Map(),
      });
      expect(kinds(gaveUp)).toEqual(expect.arrayContaining(['lost-decision', 'unsettled']));
      // Decided, never sent, parked STALE.
      expect(kinds(withGates(other, [{ ...g, ...none, state: 'STALE' }]))).toEqual(
        expect.arrayContaining(['unsettled', 'unreconciled']),
      );
      // Decided and holding it (DECIDED) while the approval waits.
      expect(kinds(withGates(other, [{ ...g, ...none, state: 'DECIDED' }]))).toContain('unsettled');
      // Acted, its end never recorded: still ACTED where the clean run ends CLOSED.
      expect(kinds(withGates(clean, [{ ...g, state: 'ACTED', reviewer: null, closure: null }]))).toEqual([
        'unreconciled',
      ]);
    }
  }, 120_000);

  it('fault matrix: an approval a person answered before the gate could decide is no lost decision, but must name them', async () => {
    // An outage outlasting the wait for alice's answer (scenario 03): the gate never decides, and her
    // CloudTrail record came before the gate existed; the sweep's reconciliation names her from the listing.
    const s = scenario('03');
    const { replay: clean } = await cleanReplay(replayer, s);
    const g = clean.result.gates[0]!;
    expect(g).toMatchObject({ outcome: 'ESCALATE', closure: { state: 'SUCCEEDED' } });
    expect(g.reviewer).not.toBeNull();
    const kinds = (gate: GateView) =>
      checkRun(s, clean, withGates(clean, [gate], { ...clean.audit, decisions: new Map() }), {
        settled: true,
      }).map((v) => v.kind);
    const answered = { ...g, state: 'CLOSED' as const, outcome: null, decision: null, notifications: 0 };
    expect(kinds(answered)).not.toContain('lost-decision');
    expect(kinds(answered)).not.toContain('unreconciled');
    // Nobody named for that answer: unreconciled.
    expect(kinds({ ...answered, reviewer: null })).toContain('unreconciled');
    // Ended otherwise (a timeout: FAILED, nobody named): a decision lost all the same.
    expect(kinds({ ...answered, reviewer: null, closure: { ...g.closure!, state: 'FAILED' } })).toContain(
      'lost-decision',
    );
  }, 60_000);

  it('fault matrix: events left in the dead-letter queue after the final redrive are a violation; redriven is what redrive() returned', async () => {
    const s = scenario('01');
    const world = {
      clearFailures: () => undefined,
    } as unknown as RunControl['world'];
    const left = [{ 'detail-type': 'x' }];
    const control = {
      world,
      deadLettered: left,
      redrive: async () => 3,
      sweepUntilQuiet: async () => ({ sweeps: 1, quiet: true }),
      sweep: async () => undefined,
      clock: { now: () => new Date(0), set: () => undefined },
    } as unknown as RunControl;
    await settle(s)(control);
    const replay = { world } as unknown as Replay;
    expect(redriveOf(replay)).toEqual({ redriven: 3, left: 1 });
    expect(deadLetters(replay).map((v) => v.detail)).toEqual([
      '1 event(s) still dead-lettered after the final redrive (3 redriven) and the sweeps',
    ]);
    // A real replay settles with its queue empty.
    const { replay: clean } = await cleanReplay(replayer, s);
    expect(deadLetters(clean)).toEqual([]);
    expect(redriveOf(clean)?.left).toBe(0);
  }, 60_000);

  it('orderings: a dropped ending is keyed by gate; its result and escalations must still be the clean run’s', async () => {
    const s = scenario('08');
    const clean = await cleanOrdering(replayer, s);
    const approved = clean.result.gates.find((g) => g.outcome === 'APPROVE')!;
    const other = clean.result.gates.find((g) => g !== approved)!;
    expect(other.stage + other.action).toBe(approved.stage + approved.action);
    // The approved gate's SUCCEEDED and CloudTrail record dropped: only its own gate is marked.
    const world = new World(s.loaded, new SimClock(Date.parse(s.loaded.scenario.start)));
    const slot = world.findSlot(approved.pipeline, approved.stage, approved.action)!;
    const token = [...s.gateOfToken].find(([, k]) => k.executionId === approved.executionId)![0];
    const disorder = new Disorder(
      [
        { copies: 0, concurrent: false, delay: 0 },
        { copies: 0, concurrent: false, delay: 0 },
      ],
      s.gateOfToken,
    );
    const deliver = async () => undefined;
    const ended = actionEvent(world, { ...slot, executionId: approved.executionId }, 'SUCCEEDED');
    await disorder.deliverVia(ended, deliver, { step: 0, origin: 'world' });
    const trail = cloudTrailEvent(world, 'arn:aws:sts::123456789012:assumed-role/TollgateGateRole/tollgate', {
      pipelineName: approved.pipeline,
      stageName: approved.stage,
      actionName: approved.action,
      token,
    });
    await disorder.deliverVia(trail, deliver, { step: 0, origin: 'world' });
    const dropped = endingDroppedGates(disorder, clean);
    expect([...dropped]).toEqual([gateId(approved)]);
    const opts = { sameDecisions: true, endingDropped: dropped } as const;
    // The approved gate lost the result it sent: still a violation with its ending dropped.
    const lostResult = withGates(
      clean,
      clean.result.gates.map((g) => (g === approved ? { ...g, approvalResult: null } : g)),
    );
    expect(checkRun(s, clean, lostResult, opts).map((v) => v.kind)).toContain('different-decision');
    // The other execution's gate on the same action is held to the clean run's end.
    const otherMoved = withGates(
      clean,
      clean.result.gates.map((g) => (g === other ? { ...g, notifications: g.notifications + 1 } : g)),
    );
    expect(checkRun(s, clean, otherMoved, opts).map((v) => v.kind)).toContain('different-decision');
  }, 120_000);

  it('oversized: the long strings may be refused, but a decision must not approve and must count its finding', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tollgate-long-test-'));
    try {
      const written = writeLongStrings(join(dir, 'long.json'), 1);
      expect(written).toMatchObject({ findings: 1, critical: 0 });
      const plan = { written };
      const one = { total: 1, critical: 0 };
      expect(wrongResult(plan, { decision: 'REJECT', counted: one })).toBeUndefined();
      expect(wrongResult(plan, { decision: 'ESCALATE', counted: one })).toBeUndefined();
      expect(wrongResult(plan, { decision: 'APPROVE', counted: one })).toMatch(/decided APPROVE/);
      expect(wrongResult(plan, { decision: 'APPROVE', counted: { total: 0, critical: 0 } })).toMatch(
        /counted 0 finding\(s\) of the 1 written/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('hostile events: an unmutated, unforged event dead-lettered as malformed is a violation', async () => {
    const s = scenario('02');
    const { account, region } = s.loaded.scenario;
    const broken = await fuzzEvents(replayer, s, {
      numRuns: 60,
      seed: 20261125,
      handlers: (h) => ({
        ...h,
        'approval-started': async (e, c) => {
          // The cases' deliveries go through world.invoking; the setup's (a gate opened first) do not.
          if (!(new Error().stack ?? '').includes('invoking')) return h['approval-started'](e, c);
          const event = e as {
            source?: string;
            account?: string;
            region?: string;
            detail?: { state?: string };
          };
          if (
            event.source === 'aws.codepipeline' &&
            event.account === account &&
            event.region === region &&
            event.detail?.state === 'STARTED'
          ) {
            throw new MalformedEventError('approval-started', ['(deliberately broken)']);
          }
          return h['approval-started'](e, c);
        },
      }),
    });
    expect(broken.violations.map((v) => v.kind)).toContain('dead-letter');
  }, 180_000);

  it('orderings: late copies come after later events or at the very end, and the plans draw them often', async () => {
    const order: string[] = [];
    const deliver = async (e: Record<string, unknown>) => {
      order.push(String(e['detail-type']));
    };
    const once: Directive = { copies: 1, concurrent: false, delay: 0 };
    const disorder = new Disorder([{ ...once, late: LATE_AT_END }, once, { ...once, late: 1 }, once]);
    for (const name of ['A', 'B', 'C', 'D']) {
      await disorder.deliverVia({ 'detail-type': name, detail: {} }, deliver, { step: 0, origin: 'step' });
    }
    await disorder.flush(deliver);
    expect(order).toEqual(['A', 'B', 'C', 'D', 'C']);
    await disorder.flush(deliver, true);
    expect(order).toEqual(['A', 'B', 'C', 'D', 'C', 'A']);
    expect(disorder.lateCopies).toBe(2);
    const plans = fc.sample(orderingPlan, { numRuns: 100, seed: 1 });
    const atEnd = plans.filter((p) => p.some((d) => d.copies > 0 && d.late === LATE_AT_END)).length;
    expect(atEnd).toBeGreaterThan(80);
    // The real gate, with its STARTED and its ending delivered again once the gate closed: as the clean run.
    const s = scenario('01');
    const clean = await cleanOrdering(replayer, s);
    const directives = Array.from({ length: 12 }, () => ({ ...once, late: LATE_AT_END }));
    const { disorder: ran, violations } = await replayPlan(replayer, s, clean, directives);
    expect(ran.lateCopies).toBeGreaterThan(2);
    expect(violations).toEqual([]);
  }, 120_000);

  it('figures: overtaken counts events delivered after a later one; the table counts per part and what redrive() returned', async () => {
    const deliver = async () => undefined;
    const held = new Disorder([
      { copies: 1, concurrent: false, delay: 1 },
      { copies: 1, concurrent: false, delay: 1 },
      { copies: 0, concurrent: false, delay: 0 },
    ]);
    for (const name of ['A', 'B', 'C']) {
      await held.deliverVia({ 'detail-type': name, detail: {} }, deliver, { step: 0, origin: 'step' });
    }
    await held.flush(deliver);
    expect(held.overtaken).toBe(0);
    const passed = new Disorder([
      { copies: 1, concurrent: false, delay: 1 },
      { copies: 1, concurrent: false, delay: 0 },
    ]);
    for (const name of ['A', 'B']) {
      await passed.deliverVia({ 'detail-type': name, detail: {} }, deliver, { step: 0, origin: 'step' });
    }
    expect(passed.overtaken).toBe(1);

    const run = {
      planned: { kind: 'throttling', persistence: 'outage', operation: 'GetPipelineState' },
      injected: 1,
      deadLettered: 5,
      redriven: 2,
      unrecordedRepeats: 0,
      answerLostRepeats: 0,
      sweeps: 2,
      violations: [],
    };
    const report = {
      mode: 'quick',
      seed: 1,
      faults: {
        scenarios: 1,
        planned: 1,
        runs: [run],
        cleanViolations: [],
        logs: { lines: 0, violations: 0 },
      },
      hostile: {
        events: { cases: 1, ignored: 0, handled: 1, deadLettered: 0, mustIgnore: 0, decided: 1, acted: 1 },
        findings: { cases: 1, accepted: 1, inputErrors: 0 },
      },
      violations: [
        { kind: 'dead-fuzz', detail: 'findings fuzz: dead' },
        { kind: 'unexpected-exception', detail: 'event fuzz: crashed' },
      ],
      byKind: {},
      byPart: { events: 1, findings: 1 },
      seconds: {},
      summary: {},
    } as unknown as SuiteReport;
    const lines = renderTable(report).split('\n');
    const row = (start: string) => lines.find((line) => line.startsWith(start))!;
    expect(row('| fault injection')).toContain('2 dead-lettered events redriven');
    expect(row('| hostile events').split('|')[3]!.trim()).toBe('1');
    expect(row('| hostile findings').split('|')[3]!.trim()).toBe('1');
  }, 60_000);
});
