import type { RunControl } from '../simulator/run.js';
import { offsetMs } from '../simulator/scenario.js';
import { type LogFactsBuilder, noteQuiet, unquiet } from './faults.js';
import { checkRun, type Violation } from './invariants.js';
import { DISCOVERY } from './orderings.js';
import type { Replay, Replayer, ReplayOptions } from './replay.js';
import type { SuiteScenario } from './scenarios.js';

/*
 * Read lag. CodePipeline's reads are eventually consistent: for a moment after an approval's STARTED event,
 * GetPipelineState may still show the stage's previous execution (or the action without its token), and
 * ListActionExecutions may not list the new run yet. The world's `readLagMs` does that for a while after each
 * approval starts (simulated time). Every example scenario where a lag can hide a read (`lagCanHide`: one
 * whose approval's STARTED event arrives) is replayed with each lag below, and a replay whose lag hid no read
 * is a `dead-lag` violation. Every event is delivered once in order and the sweep runs every minute (as the
 * clean run of duplicates and order); each replay is held to the same invariants (no APPROVE from incomplete
 * data, no lost gate, no duplicate action, a decision for every action and every decision acted on, the audit
 * chain, quiet after the sweeps) and to the clean replay's ending: outcome, state, approval result, reviewer
 * and escalations.
 *
 *   2 s    the STARTED event's own reads lag; the next event (the scan, 30 s to 6 min later) reads the truth.
 *   20 s   the same, and a scan event 5 s after the start (06) reads lagged state too.
 *
 * Lag makes the approval-started handler fail on purpose when the run's CustomData is not listed yet (the
 * event's retry reads it). The simulator's retries are immediate, where Lambda's come 1 and then 2 minutes
 * later: here a delivery that failed all its immediate attempts is retried as Lambda would, at the first
 * whole minute at least 1 minute later, then 2 minutes after that; and the sweep runs at every whole minute,
 * gates or none, as the stack's schedule does (its discovery every minute, with its 5-minute grace).
 *
 *   90 s   longer than the sweep's minute: the first sweep and most scan events read lagged state as well
 *          (an extreme lag, still inside the core's 5-minute listing grace).
 */

export const LAGS_MS: readonly number[] = [2_000, 20_000, 90_000];

export interface LagRun {
  readonly scenario: string;
  readonly lagMs: number;
  readonly violations: readonly Violation[];
  /** Reads of GetPipelineState and ListActionExecutions made while a run was hidden by the lag. */
  readonly laggedReads: number;
  readonly outcomes: string;
}

/** One lagged replay of `s`, judged against its clean replay (`cleanOrdering`, no lag). */
export async function replayLagged(
  replayer: Replayer,
  s: SuiteScenario,
  clean: Replay,
  lagMs: number,
  logs: LogFactsBuilder | undefined,
  extra: ReplayOptions = {},
): Promise<{ run: LagRun; replay: Replay }> {
  const replay = await lagReplay(replayer, s, lagMs, extra);
  const violations = [
    ...checkRun(s, clean, replay, { sameDecisions: true }),
    ...unquiet(replay),
    ...(logs ? logs.check(s, replay) : []),
    // A lag that hid no read tested nothing, yet counted among the lagged replays (as a fault that never fired).
    ...(replay.world.laggedReads === 0
      ? [{ kind: 'dead-lag' as const, detail: `${s.name}: the lag hid no read of CodePipeline` }]
      : []),
  ].map((v) => ({ ...v, detail: `read lag ${lagMs / 1000} s: ${v.detail}` }));
  return {
    replay,
    run: {
      scenario: s.name,
      lagMs,
      violations,
      laggedReads: replay.world.laggedReads,
      outcomes: replay.result.gates.map((g) => `${g.state}/${g.outcome ?? '-'}`).join(' '),
    },
  };
}

/**
 * Whether a lag can hide a read in `s`: some approval's STARTED event reaches Tollgate. When every one is lost
 * (09, 10), the sweep's discovery finds the approval only after its 5-minute grace, long after any lag here:
 * such a replay would hide nothing (a `dead-lag`), so it is not planned.
 */
export function lagCanHide(s: SuiteScenario): boolean {
  return s.loaded.scenario.steps.some((step) => step.approvalStarted && step.approvalStarted.event !== false);
}

/**
 * Which (scenario, lag) pairs run: all of them, or in the quick run `limit` of them, scenarios and lags in turn;
 * only scenarios where a lag can hide a read (`lagCanHide`).
 */
export function lagPlan(
  candidates: readonly SuiteScenario[],
  limit: number | undefined,
): { s: SuiteScenario; lagMs: number }[] {
  const scenarios = candidates.filter(lagCanHide);
  const all = scenarios.flatMap((s) => LAGS_MS.map((lagMs) => ({ s, lagMs })));
  if (limit === undefined || limit >= all.length) return all;
  // Spread over the scenarios and the lags: scenario i with lag i mod the lags, every few scenarios.
  const picked: { s: SuiteScenario; lagMs: number }[] = [];
  const step = Math.max(1, Math.floor(scenarios.length / limit));
  for (let i = 0; picked.length < limit && i < scenarios.length; i += step) {
    picked.push({ s: scenarios[i]!, lagMs: LAGS_MS[picked.length % LAGS_MS.length]! });
  }
  return picked;
}

type Json = Record<string, unknown>;

/** Lambda's asynchronous retries: 1 minute after the first attempt, then 2 minutes after the second. */
const RETRY_AFTER_MS = [60_000, 120_000] as const;

/** `s` replayed in order with the read lag, Lambda's delayed retries and the schedule's sweep every minute. */
export async function lagReplay(
  replayer: Replayer,
  s: SuiteScenario,
  lagMs: number,
  extra: ReplayOptions = {},
): Promise<Replay> {
  const start = Date.parse(s.loaded.scenario.start);
  let control: RunControl | undefined;
  const retries: { event: Json; due: number; attempt: number }[] = [];
  /** Delivers `event`; when it is dead-lettered, takes it back and schedules Lambda's next attempt. */
  const attempt = async (
    event: Json,
    deliver: (event: Json) => Promise<void>,
    attemptIndex: number,
  ): Promise<void> => {
    const dead = control!.deadLettered as Json[];
    const before = dead.length;
    await deliver(event);
    if (dead.length > before && attemptIndex < RETRY_AFTER_MS.length && dead.at(-1) === event) {
      dead.pop();
      retries.push({
        event,
        due: control!.clock.now().getTime() + RETRY_AFTER_MS[attemptIndex]!,
        attempt: attemptIndex + 1,
      });
    }
  };
  /** The minute `t`: Lambda's retries due by then, then the schedule's sweep. */
  const minute = async (t: number): Promise<void> => {
    const c = control!;
    c.clock.set(t);
    for (const r of retries.filter((x) => x.due <= t)) {
      retries.splice(retries.indexOf(r), 1);
      await attempt(r.event, (e) => c.deliver(e), r.attempt);
      await c.drain();
    }
    await c.sweep();
  };
  return replayer.replay(s.loaded, {
    ...extra,
    readLagMs: lagMs,
    discovery: 'discovery' in extra ? extra.discovery : DISCOVERY,
    deliverVia: (event, deliver) => attempt(event, deliver, 0),
    beforeStep: async (_index, step, c) => {
      control = c;
      const offset = offsetMs(step.at);
      if (offset === undefined) return;
      for (
        let t = Math.floor(c.clock.now().getTime() / 60_000 + 1) * 60_000;
        t < start + offset;
        t += 60_000
      ) {
        await minute(t);
      }
    },
    afterSteps: async (c) => {
      control = c;
      await c.drain();
      // The retries still due, each at its whole minute, the schedule sweeping meanwhile.
      while (retries.length > 0) await minute(Math.floor(c.clock.now().getTime() / 60_000 + 1) * 60_000);
      await c.redrive();
      noteQuiet(c.world, await c.sweepUntilQuiet({ maxSweeps: s.waitMinutes + 10 }));
    },
  });
}
