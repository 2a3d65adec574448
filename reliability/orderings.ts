import fc from 'fast-check';
import { describeError } from '../shared/gate/gate.js';
import { type GateKey, gateId, gateKeyOf } from '../shared/gate/model.js';
import { RECONCILE_MS } from '../shared/gate/reconcile.js';
import type { DeliveryPoint, RunControl } from '../simulator/run.js';
import { offsetMs, type ScenarioStep } from '../simulator/scenario.js';
import { LogFactsBuilder, noteQuiet, unquiet } from './faults.js';
import { checked } from './hostile.js';
import { checkExpectations, checkRun, type Violation } from './invariants.js';
import { type LagRun, lagPlan, replayLagged } from './lag.js';
import type { LogFacts } from './logs.js';
import type { Replay, Replayer, ReplayOptions } from './replay.js';
import type { SuiteScenario } from './scenarios.js';

/*
 * Duplicates and order, property-based. EventBridge delivers at least once and in no promised order, and
 * Lambda may run two deliveries of one event at the same time. For every example scenario, fast-check draws
 * a plan: for each event the scenario causes (in order; the world's own events after a result included),
 *
 *   copies      0 (dropped), 1, 2 or 3 deliveries;
 *   concurrent  the copies are delivered at once (Promise.all), each in a Lambda instance of its own;
 *   delay       0, 1 or 2: the event is held back until that many later events were delivered (a late
 *               delivery overtaken by later events);
 *   late        0 (none), 1 to 3, or LATE_AT_END: one more copy of an event delivered (copies > 0) comes
 *               again after that many later events, or at the very end of the run, after every other
 *               event, the approval's end included (EventBridge's retry of a delivery it thought failed:
 *               a redelivery onto a gate that moved on, or closed).
 *
 * What EventBridge could reorder is bounded: a held event is delivered before a person acts (a `review`
 * step, many minutes later) and before the run ends. The schedule runs the sweep every minute while a gate is
 * open (as the stack's rule does), so a dropped event is repaired as it would be. After the steps the sweep
 * runs until the gates are quiet. Then every gate must end with the clean run's outcome, and every invariant
 * of the fault matrix holds. A dropped approval STARTED (every copy) is repaired by the sweep's discovery
 * (shared/gate/discovery.ts, on as the stack runs it, every minute here), after its grace period: when the
 * steps end with that approval still waiting, its gate must exist by the end. Its outcome may differ from the
 * clean run's (it is decided later: a timeout or a person may come first), but an APPROVE must still be the
 * clean run's, on the same counts.
 */

export interface Directive {
  readonly copies: number;
  readonly concurrent: boolean;
  readonly delay: number;
  /** One more copy, after this many later events (LATE_AT_END: after all of them); 0 or absent: none. */
  readonly late?: number;
}

/** `late`: the extra copy comes after every other event of the run, once the gates have ended. */
export const LATE_AT_END = 99;

const ONCE: Directive = { copies: 1, concurrent: false, delay: 0 };
const PLAN_LENGTH = 12;

export const directive: fc.Arbitrary<Directive> = fc.record({
  copies: fc.oneof(
    { weight: 1, arbitrary: fc.constant(0) },
    { weight: 3, arbitrary: fc.integer({ min: 1, max: 3 }) },
  ),
  concurrent: fc.boolean(),
  delay: fc.oneof(
    { weight: 2, arbitrary: fc.constant(0) },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: 2 }) },
  ),
  // Two in five events come again late: a plan of 12 has about five, one or two at the end.
  late: fc.oneof(
    { weight: 3, arbitrary: fc.constant(0) },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: 3 }) },
    { weight: 1, arbitrary: fc.constant(LATE_AT_END) },
  ),
});

export const plan: fc.Arbitrary<readonly Directive[]> = fc.array(directive, {
  minLength: PLAN_LENGTH,
  maxLength: PLAN_LENGTH,
});

type Json = Record<string, unknown>;
type Deliver = (event: Json, instance?: number) => Promise<void>;

interface Held {
  readonly event: Json;
  readonly directive: Directive;
  /** The event's place in the order the run caused the events. */
  readonly index: number;
  left: number;
}

interface Late {
  readonly event: Json;
  /** The event's place in causing order: its own delivery is not one of the later events it waits for. */
  readonly index: number;
  /** Kept for the end of the run (LATE_AT_END), not counted down. */
  readonly atEnd: boolean;
  left: number;
}

/** Applies a plan to a run's deliveries. */
export class Disorder {
  private next = 0;
  private held: Held[] = [];
  private late: Late[] = [];
  /** The latest (in causing order) event delivered so far; -1 before any. */
  private latest = -1;
  /** Events whose first delivery came after that of an event caused later: overtaken, really. */
  overtaken = 0;
  /** Late copies delivered (the `late` directive). */
  lateCopies = 0;
  /** Gates whose approval STARTED event was dropped, every copy of it. */
  readonly unseen = new Set<string>();
  /** The same, with the approval's place in the world, to tell whether it still waits. */
  readonly dropped = new Map<string, StartedDetail>();
  /** Of those, the approvals still waiting when the steps ended: discovery must open their gates. */
  readonly waiting = new Set<string>();
  /**
   * Gates (ids) one of whose ending events was dropped, every copy of it; a CloudTrail record whose token
   * names no known approval, by `pipeline/?/stage/action` (every gate on that action).
   */
  readonly endingDropped = new Set<string>();
  /** What was done, for the report of a failing plan. */
  readonly log: string[] = [];

  /** `tokens`: the approval tokens' gates (SuiteScenario.gateOfToken), to tell whose CloudTrail record was lost. */
  constructor(
    private readonly directives: readonly Directive[],
    private readonly tokens: ReadonlyMap<string, GateKey> = new Map(),
  ) {}

  /** Directives of the plan used so far (one per event delivered through the plan; held ones included). */
  get consumed(): number {
    return Math.min(this.next, this.directives.length);
  }

  readonly deliverVia = async (event: Json, deliver: Deliver, _at: DeliveryPoint): Promise<void> => {
    const index = this.next++;
    const d = this.directives[index] ?? ONCE;
    const name = describe(event);
    if (d.copies === 0) {
      this.log.push(`drop ${name}`);
      const started = startedGate(event);
      if (started) {
        this.unseen.add(started.id);
        this.dropped.set(started.id, started.detail);
      }
      const ending = endingGate(event, this.tokens);
      if (ending) this.endingDropped.add(ending);
      return;
    }
    if (d.delay > 0) {
      this.log.push(`hold ${name} for ${d.delay}`);
      this.held.push({ event, directive: d, index, left: d.delay });
      return;
    }
    await this.send(event, d, index, deliver);
    await this.tick(deliver, index);
  };

  /**
   * Delivers every held event (before a person acts, and at the end), and the late copies due after a
   * number of events; `end`: the late copies kept for the end too (the run's last deliveries).
   */
  async flush(deliver: Deliver, end = false): Promise<void> {
    const held = this.held;
    this.held = [];
    for (const h of held) await this.send(h.event, h.directive, h.index, deliver);
    const due = this.late.filter((l) => end || !l.atEnd);
    this.late = this.late.filter((l) => !due.includes(l));
    for (const l of due) await this.sendLate(l, deliver);
  }

  /** Event `index` was delivered: held events and late copies of earlier ones wait one event fewer. */
  private async tick(deliver: Deliver, index: number): Promise<void> {
    for (const h of this.held) h.left--;
    for (const l of this.late) if (!l.atEnd && l.index !== index) l.left--;
    const due = this.held.filter((h) => h.left <= 0);
    this.held = this.held.filter((h) => h.left > 0);
    for (const h of due) await this.send(h.event, h.directive, h.index, deliver);
    const late = this.late.filter((l) => !l.atEnd && l.left <= 0);
    this.late = this.late.filter((l) => !late.includes(l));
    for (const l of late) await this.sendLate(l, deliver);
  }

  private async sendLate(l: Late, deliver: Deliver): Promise<void> {
    this.log.push(`late copy of ${describe(l.event)}`);
    this.lateCopies++;
    await deliver(structuredClone(l.event));
  }

  private async send(event: Json, d: Directive, index: number, deliver: Deliver): Promise<void> {
    const name = describe(event);
    // Overtaken: an event caused later was delivered first (a held event overtaken by none counts nothing).
    if (index < this.latest) this.overtaken++;
    this.latest = Math.max(this.latest, index);
    const late = d.late ?? 0;
    if (late > 0) this.late.push({ event, index, atEnd: late >= LATE_AT_END, left: late });
    if (d.concurrent && d.copies > 1) {
      this.log.push(`${d.copies}× at once ${name}`);
      await Promise.all(Array.from({ length: d.copies }, (_, i) => deliver(structuredClone(event), i)));
    } else {
      this.log.push(`${d.copies}× ${name}`);
      for (let i = 0; i < d.copies; i++) await deliver(structuredClone(event));
    }
  }
}

function describe(event: Json): string {
  const detail = (typeof event.detail === 'object' && event.detail !== null ? event.detail : {}) as Json;
  const what = detail.state ?? detail['scan-status'] ?? detail.eventName ?? '';
  return `${String(event['detail-type'])}${what ? ` ${String(what)}` : ''}`;
}

interface StartedDetail {
  readonly pipeline: string;
  readonly stage: string;
  readonly action: string;
  readonly executionId: string;
}

/**
 * The gate (id) of an event that ends an approval: its action's end (by execution), CloudTrail's result (by
 * the token's approval); `pipeline/?/stage/action` for a token no approval of the scenario has.
 */
function endingGate(event: Json, tokens: ReadonlyMap<string, GateKey>): string | undefined {
  const d = (typeof event.detail === 'object' && event.detail !== null ? event.detail : {}) as Json;
  if (event['detail-type'] === 'CodePipeline Action Execution State Change') {
    if (!['SUCCEEDED', 'FAILED', 'ABANDONED', 'CANCELED'].includes(String(d.state))) return undefined;
    const attempt = d['pipeline-execution-attempt'];
    return gateId(
      gateKeyOf({
        pipeline: String(d.pipeline),
        stage: String(d.stage),
        action: String(d.action),
        'execution-id': String(d['execution-id']),
        'pipeline-execution-attempt': typeof attempt === 'number' ? attempt : undefined,
      }),
    );
  }
  if (event['detail-type'] === 'AWS API Call via CloudTrail') {
    const p = (
      typeof d.requestParameters === 'object' && d.requestParameters !== null ? d.requestParameters : {}
    ) as Json;
    const key = tokens.get(String(p.token));
    if (key) return gateId(key);
    return `${String(p.pipelineName)}/?/${String(p.stageName)}/${String(p.actionName)}`;
  }
  return undefined;
}

function startedGate(event: Json): { id: string; detail: StartedDetail } | undefined {
  if (event['detail-type'] !== 'CodePipeline Action Execution State Change') return undefined;
  const d = (event.detail ?? {}) as Json;
  if (d.state !== 'STARTED') return undefined;
  const attempt = d['pipeline-execution-attempt'];
  const detail = {
    pipeline: String(d.pipeline),
    stage: String(d.stage),
    action: String(d.action),
    executionId: String(d['execution-id']),
  };
  const id = gateId(
    gateKeyOf({
      ...detail,
      'execution-id': detail.executionId,
      'pipeline-execution-attempt': typeof attempt === 'number' ? attempt : undefined,
    }),
  );
  return { id, detail };
}

/** The sweep's discovery as the stack runs it, but every minute (the replays sweep minute by minute). */
export const DISCOVERY = { everyMinutes: 1, graceMs: 5 * 60_000 } as const;

/**
 * The stack's schedule: before a step, a sweep at each whole minute since the previous step, while a gate
 * is open. The scenarios name only the sweeps that matter to them; a dropped event relies on the others.
 */
export function minuteSweeps(
  s: SuiteScenario,
  before?: (step: ScenarioStep, control: RunControl) => Promise<void>,
) {
  const start = Date.parse(s.loaded.scenario.start);
  return async (_index: number, step: ScenarioStep, control: RunControl): Promise<void> => {
    await before?.(step, control);
    const offset = offsetMs(step.at);
    if (offset === undefined) return;
    const target = start + offset;
    for (let t = Math.floor(control.clock.now().getTime() / 60_000 + 1) * 60_000; t < target; t += 60_000) {
      const open = (await control.gates()).some((g) => g.state === 'WAITING' || g.state === 'DECIDED');
      if (!open) break;
      control.clock.set(t);
      await control.sweep();
    }
  };
}

export interface OrderingRun {
  readonly scenario: string;
  readonly plan: readonly string[];
  readonly violations: readonly Violation[];
  readonly dropped: number;
  readonly duplicated: number;
  readonly concurrent: number;
  /** Events really overtaken: first delivered after an event caused later. */
  readonly delayed: number;
  /** Late copies delivered (an event again after later ones, or at the end). */
  readonly late: number;
}

export interface OrderingSection {
  readonly scenarios: number;
  readonly runs: readonly OrderingRun[];
  /** Each scenario replayed in order with CodePipeline's read lag (lag.ts), judged as the plans are. */
  readonly lagged: readonly LagRun[];
  readonly cleanViolations: readonly Violation[];
  readonly logs: LogFacts;
}

export interface OrderingOptions {
  readonly numRuns: number;
  readonly seed: number;
  readonly extra?: ReplayOptions;
  /** At most this many lagged replays (lag.ts; default: every scenario with every lag). */
  readonly lagLimit?: number;
}

async function replayWith(
  replayer: Replayer,
  s: SuiteScenario,
  disorder: Disorder | undefined,
  extra: ReplayOptions,
): Promise<Replay> {
  return replayer.replay(s.loaded, {
    ...extra,
    ...(disorder ? { deliverVia: disorder.deliverVia } : {}),
    beforeStep: minuteSweeps(s, async (step, control) => {
      if (disorder && step.review) await disorder.flush(control.deliver);
    }),
    // A test may turn it off (`discovery: false`) to see the lost-gate check fail without it.
    discovery: 'discovery' in extra ? extra.discovery : DISCOVERY,
    afterSteps: async (control) => {
      if (disorder) await disorder.flush(control.deliver);
      await control.drain();
      // The late copies kept for the end: after every other event, the approvals' ends included.
      if (disorder) {
        await disorder.flush(control.deliver, true);
        await control.drain();
      }
      await control.redrive();
      if (disorder && disorder.dropped.size > 0) {
        for (const [id, d] of disorder.dropped) {
          const slot = control.world.findSlot(d.pipeline, d.stage, d.action);
          if (slot?.status === 'InProgress' && slot.executionId === d.executionId) disorder.waiting.add(id);
        }
        // The schedule sweeps every minute, gates or none: discovery's grace period passes.
        for (let i = 0; i <= DISCOVERY.graceMs / 60_000; i++) {
          control.clock.set(control.clock.now().getTime() + 60_000);
          await control.sweep();
        }
      }
      if (disorder && disorder.endingDropped.size > 0) {
        // A lost ending event is repaired by the sweep asking CodePipeline once the gate is due
        // (shared/gate/reconcile.ts): twice, for the end and then for who answered.
        for (let i = 0; i < 2; i++) {
          control.clock.set(control.clock.now().getTime() + RECONCILE_MS);
          await control.sweep();
        }
      }
      noteQuiet(control.world, await control.sweepUntilQuiet({ maxSweeps: s.waitMinutes + 10 }));
    },
  });
}

/**
 * Ids of the gates one of whose ending events the plan dropped: by gate, so that another execution's gate on
 * the same action is still held to the clean run's end; every gate on the action only for a CloudTrail
 * record whose token no approval of the scenario has.
 */
export function endingDroppedGates(disorder: Disorder, ...replays: Replay[]): Set<string> {
  const ids = new Set<string>();
  for (const r of replays) {
    for (const g of r.result.gates) {
      const id = gateId(g);
      if (
        disorder.endingDropped.has(id) ||
        disorder.endingDropped.has(`${g.pipeline}/?/${g.stage}/${g.action}`)
      ) {
        ids.add(id);
      }
    }
  }
  return ids;
}

/** One plan's replay of `s`, judged against its clean replay (the logs are checked by the caller). */
export async function replayPlan(
  replayer: Replayer,
  s: SuiteScenario,
  clean: Replay,
  directives: readonly Directive[],
  extra: ReplayOptions = {},
): Promise<{ disorder: Disorder; replay: Replay; violations: Violation[] }> {
  const disorder = new Disorder(directives, s.gateOfToken);
  const replay = await replayWith(replayer, s, disorder, extra);
  const violations = [
    ...checkRun(s, clean, replay, {
      unseen: disorder.unseen,
      mustFind: disorder.waiting,
      sameDecisions: true,
      endingDropped: endingDroppedGates(disorder, clean, replay),
    }),
    ...unquiet(replay),
  ];
  return { disorder, replay, violations };
}

/** The replay of `s` with every event delivered once, in order: what every plan is judged against. */
export function cleanOrdering(
  replayer: Replayer,
  s: SuiteScenario,
  extra: ReplayOptions = {},
): Promise<Replay> {
  return replayWith(replayer, s, undefined, extra);
}

export async function runOrderings(
  replayer: Replayer,
  scenarios: readonly SuiteScenario[],
  options: OrderingOptions,
): Promise<OrderingSection> {
  const extra = options.extra ?? {};
  const runs: OrderingRun[] = [];
  const lagged: LagRun[] = [];
  const lags = lagPlan(scenarios, options.lagLimit);
  const cleanViolations: Violation[] = [];
  const logs = new LogFactsBuilder();
  for (const [index, s] of scenarios.entries()) {
    const clean = await cleanOrdering(replayer, s, extra);
    cleanViolations.push(
      ...checkExpectations(s, clean),
      ...checkRun(s, clean, clean, { sameDecisions: true }),
      ...unquiet(clean),
      ...logs.check(s, clean),
    );
    const before = runs.length;
    const details = await fc.check(
      fc.asyncProperty(plan, async (directives) => {
        let planned: Awaited<ReturnType<typeof replayPlan>>;
        try {
          planned = await replayPlan(replayer, s, clean, directives, extra);
        } catch (e) {
          // A replay that crashes (its audit trail unreadable, say) is a failure of the plan, not of the check:
          // returned as `false`, fast-check would stop the plans there and shrink, and the crash go unreported.
          runs.push({
            scenario: s.name,
            // The plan's directives, so that the crash can be replayed by hand.
            plan: [`directives ${JSON.stringify(directives)}`],
            violations: [
              { kind: 'unexpected-exception', detail: `an ordering plan of ${s.name}: ${describeError(e)}` },
            ],
            dropped: 0,
            duplicated: 0,
            concurrent: 0,
            delayed: 0,
            late: 0,
          });
          return true;
        }
        const { disorder, replay, violations: broken } = planned;
        const violations = [...broken, ...logs.check(s, replay)];
        const used = directives.slice(0, disorder.consumed);
        runs.push({
          scenario: s.name,
          plan: disorder.log,
          violations,
          dropped: used.filter((d) => d.copies === 0).length,
          duplicated: used.filter((d) => d.copies > 1).length,
          concurrent: used.filter((d) => d.copies > 1 && d.concurrent).length,
          delayed: disorder.overtaken,
          late: disorder.lateCopies,
        });
        // Every plan runs (no early stop, no shrinking): the suite reports how many failed, with their plans.
        return true;
      }),
      { numRuns: options.numRuns, seed: options.seed + index },
    );
    cleanViolations.push(...checked(details, `orderings of ${s.name}`));
    if (runs.length - before !== options.numRuns) {
      cleanViolations.push({
        kind: 'unexpected-exception',
        detail: `orderings of ${s.name}: ${runs.length - before} of ${options.numRuns} plans ran`,
      });
    }
    for (const { lagMs } of lags.filter((l) => l.s === s)) {
      lagged.push((await replayLagged(replayer, s, clean, lagMs, logs, extra)).run);
    }
  }
  return { scenarios: scenarios.length, runs, lagged, cleanViolations, logs: logs.facts() };
}
