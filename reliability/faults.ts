import { vulnIndexWrite } from '../adapters/dynamodb/audit-items.js';
import { RECONCILE_MS } from '../shared/gate/reconcile.js';
import type { QuietResult, RunControl, ScheduledFault } from '../simulator/run.js';
import { actionsByGate, checkExpectations, checkRun, type Violation } from './invariants.js';
import { checkLogs, type LogFacts } from './logs.js';
import type { Replay, Replayer, ReplayOptions } from './replay.js';
import type { SuiteScenario } from './scenarios.js';

/*
 * Fault injection. For each example scenario, the clean replay says which AWS operations (the store's
 * DynamoDB calls included) each step makes, and how often. Then, for each step, each of those operations
 * and each fault kind, the scenario is replayed with that fault injected right before the step:
 *
 *   kinds        throttling (ThrottlingException), 5xx (InternalServerException), timeout (TimeoutError),
 *                access denied (AccessDeniedException); and for paginated reads that read a second page in
 *                that step, a later page (ServiceUnavailable on page 2 only).
 *   persistence  once:   the first such call of the step fails, once (the adapters' 3 attempts absorb a
 *                        retryable one; a store call, or access denied, fails the invocation and Lambda's
 *                        retry has to);
 *                last:   only the last such call of the step fails, once (for operations called more than
 *                        once in the step: the write after an action, the second page of a chain, …; the
 *                        store's VULN# index writes, TransactWriteItems after the action's, are not counted
 *                        here);
 *                first-index: the first of those index writes fails, once;
 *                outage: the next 50 such calls fail, from this step on: every retry is exhausted, events
 *                        are dead-lettered, sweeps fail, until the faults stop.
 *   answer lost  for PutApprovalResult, SNS Publish, EventBridge PutEvents and the store's PutItem and
 *                TransactWriteItems: the call lands (the service performs it) and the client hears a
 *                TimeoutError or a 500 (answer-lost-timeout, answer-lost-5xx), once, last or first-index as
 *                above. A retry then repeats a call that already took effect.
 *
 * The store's faults are injected in front of the SDK's own retries (the simulator hooks the document
 * client at its first middleware step), so for DynamoDB one injected failure stands for a blip that outlasted
 * them, and the four kinds fail alike; the AWS adapters' own retries do run.
 *
 * After the last step the faults stop, the dead-letter queue is redriven (as an operator does after an
 * outage: without it, a gate whose approval STARTED event was dead-lettered would not exist), and the sweep
 * runs a minute apart until the gates are quiet (at most the policy's wait + 10 sweeps). Then the invariants
 * (invariants.ts) are checked against the clean replay, those of a settled run included (a gate the clean
 * run decided still decides, perhaps failing closed; none is STALE or holds an unsent decision while its
 * approval waits; one with the clean run's outcome ends as it does), no event is left in the dead-letter
 * queue, and the log lines are checked against logs.ts. Every replay
 * reads one finding (coverage entry, action execution) per page (`pageSize: 1`), so that later pages exist.
 */

export const PAGE_SIZE = 1;
export const OUTAGE_CALLS = 50;

const KINDS = [
  { kind: 'throttling', error: 'ThrottlingException' },
  { kind: '5xx', error: 'InternalServerException' },
  { kind: 'timeout', error: 'TimeoutError' },
  { kind: 'access-denied', error: 'AccessDeniedException' },
] as const;

/**
 * The call lands and only its answer is lost (a timeout, a 5xx after the service acted): for the writes
 * whose repetition matters, the result, the escalation, the events, and the store's writes.
 */
const ANSWER_LOST = [
  { kind: 'answer-lost-timeout', error: 'TimeoutError' },
  { kind: 'answer-lost-5xx', error: 'InternalServerException' },
] as const;

export const LANDABLE = new Set([
  'PutApprovalResult',
  'Publish',
  'PutEvents',
  'TransactWriteItems',
  'PutItem',
]);

const PAGINATED = new Set([
  'ListFindings',
  'ListCoverage',
  'ListActionExecutions',
  'DescribeImageScanFindings',
]);

export type Persistence = 'once' | 'last' | 'first-index' | 'outage';

export interface PlannedFault {
  readonly step: number;
  readonly operation: string;
  readonly kind: string;
  readonly persistence: Persistence;
  readonly fault: ScheduledFault;
}

export interface FaultRun {
  readonly scenario: string;
  readonly planned: PlannedFault;
  readonly violations: readonly Violation[];
  /** Calls that failed by injection (the fault actually hit). */
  readonly injected: number;
  /** Deliveries that ended dead-lettered (a redriven event dead-lettered again counts twice). */
  readonly deadLettered: number;
  /** Events the final redrive delivered again, as `redrive()` returned it. */
  readonly redriven: number;
  /**
   * Escalations sent again because the first went unrecorded: the store could not record it, or SNS Publish's
   * answer was lost (see invariants.ts).
   */
  readonly unrecordedRepeats: number;
  /** Of unrecordedRepeats, those whose first publish's answer was lost. */
  readonly answerLostRepeats: number;
  readonly sweeps: number;
  readonly quiet: boolean;
  readonly outcomes: string;
}

export interface FaultSection {
  readonly scenarios: number;
  readonly planned: number;
  readonly runs: readonly FaultRun[];
  readonly cleanViolations: readonly Violation[];
  readonly logs: LogFacts;
}

/**
 * The same ending for every replay: the faults stop, the dead-letter queue is redriven (as an operator does
 * after an outage), then the sweep runs a minute apart until the gates are quiet. What the sweeps came to is
 * kept for `quietOf`.
 */
export function settle(s: SuiteScenario, marks?: number[]) {
  return async (control: RunControl): Promise<void> => {
    marks?.push(control.world.calls.length);
    control.world.clearFailures();
    const redriven = await control.redrive();
    const first = await control.sweepUntilQuiet({ maxSweeps: s.waitMinutes + 10 });
    // The schedule keeps sweeping: a gate whose end or reviewer was lost with the outage's events (a person's
    // approval recorded by CloudTrail before its gate existed) is asked about once due, 15 minutes on
    // (shared/gate/reconcile.ts): twice, for the end and then for who answered, as the orderings part does.
    for (let i = 0; i < 2; i++) {
      control.clock.set(control.clock.now().getTime() + RECONCILE_MS);
      await control.sweep();
    }
    const last = await control.sweepUntilQuiet({ maxSweeps: s.waitMinutes + 10 });
    // Quiet within the sweeps it took after the redrive (the reconciliation's two not counted), and quiet at the
    // end: a run that was not quiet before the reconciliation's sweeps counts as such.
    noteQuiet(control.world, { sweeps: first.sweeps + last.sweeps, quiet: first.quiet && last.quiet });
    // What is still dead-lettered after the redrive and the sweeps is an event lost for good.
    noteRedrive(control.world, { redriven, left: control.deadLettered.length });
  };
}

const settled = new WeakMap<object, QuietResult>();

export interface RedriveResult {
  /** Dead-lettered events the final redrive delivered again (what `redrive()` returned). */
  readonly redriven: number;
  /** Events in the dead-letter queue after the redrive and the sweeps. */
  readonly left: number;
}

const redrives = new WeakMap<object, RedriveResult>();

/** Keeps what a replay's final redrive came to, for `redriveOf`. */
export function noteRedrive(world: object, result: RedriveResult): void {
  redrives.set(world, result);
}

/** What the replay's final redrive came to; undefined when it was not settled by `settle`. */
export function redriveOf(replay: Replay): RedriveResult | undefined {
  return redrives.get(replay.world);
}

/** The violation of a settled replay that left events in the dead-letter queue; none when it left none. */
export function deadLetters(replay: Replay): Violation[] {
  const r = redriveOf(replay);
  if (!r)
    return [{ kind: 'dead-letter', detail: 'the replay was not settled: its dead-letter queue unread' }];
  return r.left === 0
    ? []
    : [
        {
          kind: 'dead-letter',
          detail: `${r.left} event(s) still dead-lettered after the final redrive (${r.redriven} redriven) and the sweeps`,
        },
      ];
}

/** Keeps what a replay's last sweeps came to, for `quietOf`. */
export function noteQuiet(world: object, quiet: QuietResult): void {
  settled.set(world, quiet);
}

/** The violation of a replay whose gates were not quiet after its sweeps; none when they were. */
export function unquiet(replay: Replay): Violation[] {
  const quiet = quietOf(replay);
  return quiet.quiet ? [] : [{ kind: 'unquiet', detail: `not quiet after ${quiet.sweeps} sweeps` }];
}

export function quietOf(replay: Replay): QuietResult {
  return settled.get(replay.world) ?? { sweeps: 0, quiet: false };
}

/** The clean replay, with the index of the first call of each step (and of the settling). */
export async function cleanReplay(
  replayer: Replayer,
  s: SuiteScenario,
  extra: ReplayOptions = {},
): Promise<{ replay: Replay; marks: number[] }> {
  const marks: number[] = [];
  const replay = await replayer.replay(s.loaded, {
    ...extra,
    pageSize: PAGE_SIZE,
    beforeStep: (_i, _step, control) => {
      marks.push(control.world.calls.length);
    },
    afterSteps: settle(s, marks),
  });
  return { replay, marks };
}

/**
 * A TransactWriteItems of the store's VULN# index items only (written after a decision's record), hashed
 * keys (VULN-SHA256#) included: a chunk holding one is still an index write, and must get its fault.
 */
export function indexWrite(call: { operation: string; input: Record<string, unknown> }): boolean {
  return call.operation === 'TransactWriteItems' && vulnIndexWrite(call.input.TransactItems);
}

/** The faults to inject in one scenario, from the operations its clean replay made in each step. */
export function planFaults(clean: Replay, marks: readonly number[]): PlannedFault[] {
  const planned: PlannedFault[] = [];
  for (let step = 0; step + 1 < marks.length; step++) {
    const calls = clean.world.calls.slice(marks[step], marks[step + 1]);
    const counts = new Map<string, number>();
    const laterPages = new Set<string>();
    for (const c of calls) {
      counts.set(c.operation, (counts.get(c.operation) ?? 0) + 1);
      if (PAGINATED.has(c.operation) && typeof c.input.nextToken === 'string') laterPages.add(c.operation);
    }
    for (const [operation] of [...counts.entries()].sort(([a], [b]) => a.localeCompare(b))) {
      // The store's writes of VULN# index items are TransactWriteItems too, after the decision's and the
      // action's: `last` still means the last of the others (the write after an action), and the first
      // index write has a fault of its own (the index writes' failures, as when they were BatchWriteItem).
      const ofOperation = calls.filter((c) => c.operation === operation);
      const others = ofOperation.flatMap((c, i) => (indexWrite(c) ? [] : [i]));
      const firstIndex = ofOperation.findIndex(indexWrite);
      for (const { kind, error } of KINDS) {
        const at = (persistence: Persistence, times: number, skip: number): void => {
          planned.push({
            step,
            operation,
            kind,
            persistence,
            fault: { step, fail: { operation, error, times, skip } },
          });
        };
        at('once', 1, 0);
        if (others.length > 1) at('last', 1, others.at(-1)!);
        if (firstIndex > 0) at('first-index', 1, firstIndex);
        at('outage', OUTAGE_CALLS, 0);
      }
      if (LANDABLE.has(operation)) {
        for (const { kind, error } of ANSWER_LOST) {
          const at = (persistence: Persistence, skip: number): void => {
            planned.push({
              step,
              operation,
              kind,
              persistence,
              fault: { step, fail: { operation, error, times: 1, skip, landed: true } },
            });
          };
          at('once', 0);
          if (others.length > 1) at('last', others.at(-1)!);
          if (firstIndex > 0) at('first-index', firstIndex);
        }
      }
      if (laterPages.has(operation)) {
        for (const [persistence, times] of [
          ['once', 1],
          ['outage', OUTAGE_CALLS],
        ] as const) {
          planned.push({
            step,
            operation,
            kind: 'later-page',
            persistence,
            fault: { step, fail: { operation, error: 'ServiceUnavailable', times, page: 2 } },
          });
        }
      }
    }
  }
  return planned;
}

export interface FaultOptions {
  /**
   * At most this many faults in all (the quick run): taken in turn from each kind × service, so that a
   * small sample still has every kind of fault on every service.
   */
  readonly limit?: number;
  /** Only the planned faults this keeps (before sampling). */
  readonly filter?: (s: SuiteScenario, planned: PlannedFault) => boolean;
  readonly extra?: ReplayOptions;
  readonly onProgress?: (done: number, total: number) => void;
}

export async function runFaultMatrix(
  replayer: Replayer,
  scenarios: readonly SuiteScenario[],
  options: FaultOptions = {},
): Promise<FaultSection> {
  const extra = options.extra ?? {};
  const plans: { s: SuiteScenario; clean: Replay; faults: PlannedFault[] }[] = [];
  const cleanViolations: Violation[] = [];
  const logs = new LogFactsBuilder();
  for (const s of scenarios) {
    const { replay, marks } = await cleanReplay(replayer, s, extra);
    cleanViolations.push(
      ...checkExpectations(s, replay),
      ...checkRun(s, replay, replay, { settled: true }),
      ...unquiet(replay),
      ...deadLetters(replay),
      ...logs.check(s, replay),
    );
    const all = planFaults(replay, marks).filter((p) => options.filter?.(s, p) ?? true);
    plans.push({ s, clean: replay, faults: all });
  }
  if (options.limit !== undefined) spread(plans, options.limit);
  const total = plans.reduce((n, p) => n + p.faults.length, 0);
  const runs: FaultRun[] = [];
  for (const { s, clean, faults } of plans) {
    for (const planned of faults) {
      const replay = await replayer.replay(s.loaded, {
        ...extra,
        pageSize: PAGE_SIZE,
        faults: [planned.fault],
        afterSteps: settle(s),
      });
      const quiet = quietOf(replay);
      const injected = replay.world.calls.filter((c) => c.injected).length;
      const violations = [
        ...checkRun(s, clean, replay, { settled: true }),
        ...unquiet(replay),
        ...deadLetters(replay),
        ...logs.check(s, replay),
      ];
      // A fault that never fired tested nothing, yet counted among the faults replayed.
      if (injected === 0) {
        violations.push({
          kind: 'dead-fault',
          detail: `${s.name}: the planned ${planned.kind} (${planned.persistence}) on ${planned.operation} at step ${planned.step} never fired`,
        });
      }
      const acted = [...actionsByGate(s, replay).values()];
      runs.push({
        scenario: s.name,
        planned,
        violations,
        injected,
        deadLettered: replay.result.deliveries.filter((d) => d.outcome === 'dead-lettered').length,
        redriven: redriveOf(replay)?.redriven ?? 0,
        unrecordedRepeats: acted.reduce((n, a) => n + a.unrecorded, 0),
        answerLostRepeats: acted.reduce((n, a) => n + a.unrecordedAnswerLost, 0),
        sweeps: quiet.sweeps,
        quiet: quiet.quiet,
        outcomes: replay.result.gates.map((g) => `${g.state}/${g.outcome ?? '-'}`).join(' '),
      });
      options.onProgress?.(runs.length, total);
    }
  }
  return { scenarios: scenarios.length, planned: total, runs, cleanViolations, logs: logs.facts() };
}

/** Keeps `limit` of the planned faults, round-robin over kind × service (persistence and steps in turn). */
function spread(plans: { faults: PlannedFault[] }[], limit: number): void {
  const groups = new Map<string, { plan: number; fault: PlannedFault }[]>();
  plans.forEach((p, plan) => {
    for (const fault of p.faults) {
      const key = `${fault.kind}/${serviceOf(fault.operation)}`;
      groups.set(key, [...(groups.get(key) ?? []), { plan, fault }]);
    }
  });
  // Each group in a fixed shuffled order (so the scenarios and steps take turns), then one of each in turn.
  let state = 20261125;
  const random = () => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state / 2 ** 31;
  };
  const queues = [...groups.values()].map((q) =>
    q
      .map((item) => ({ item, key: random() }))
      .sort((a, b) => a.key - b.key)
      .map((x) => x.item),
  );
  const kept = new Set<PlannedFault>();
  for (let round = 0; kept.size < limit && queues.some((q) => q.length > round); round++) {
    for (const q of queues) {
      const pick = q[round];
      if (kept.size < limit && pick) kept.add(pick.fault);
    }
  }
  for (const p of plans) p.faults = p.faults.filter((f) => kept.has(f));
}

/** The AWS service an operation belongs to (the store's DynamoDB calls included). */
export function serviceOf(operation: string): string {
  if (
    ['GetPipelineState', 'ListActionExecutions', 'GetPipelineExecution', 'PutApprovalResult'].includes(
      operation,
    )
  )
    return 'CodePipeline';
  if (['ListFindings', 'ListCoverage'].includes(operation)) return 'Inspector2';
  if (['DescribeImages', 'DescribeImageScanFindings'].includes(operation)) return 'ECR';
  if (operation === 'Publish') return 'SNS';
  if (operation === 'PutEvents') return 'EventBridge';
  return 'DynamoDB';
}

/** Accumulates the log checks over many replays. */
export class LogFactsBuilder {
  private lines = 0;
  private violations = 0;

  check(s: SuiteScenario, replay: Replay): Violation[] {
    const found = checkLogs(s, replay);
    this.lines += replay.logs.length;
    this.violations += found.length;
    return found;
  }

  facts(): LogFacts {
    return { lines: this.lines, violations: this.violations };
  }
}
