import { type FaultSection, type PlannedFault, runFaultMatrix } from './faults.js';
import { fuzzEvents, fuzzFindings, fuzzPolicies, type HostileSection } from './hostile.js';
import type { Violation, ViolationKind } from './invariants.js';
import { type OrderingSection, runOrderings } from './orderings.js';
import { type OversizedSection, runOversized } from './oversized.js';
import { Replayer, type ReplayOptions } from './replay.js';
import { exampleScenarios, type SuiteScenario } from './scenarios.js';

/*
 * The reliability and security suite: fault injection (faults.ts), duplicates and order (orderings.ts),
 * hostile and malformed input (hostile.ts, oversized.ts), and the log checks of every replay (logs.ts).
 * `npm run reliability` runs it in full; `--quick` runs a sample of it (CI).
 */

export interface SuiteOptions {
  readonly quick: boolean;
  readonly seed: number;
  /** At most this many fault replays (default: all; quick: 40). */
  readonly faultLimit?: number;
  /** Only these planned faults (tests). */
  readonly faultFilter?: (s: SuiteScenario, planned: PlannedFault) => boolean;
  /** fast-check runs per scenario for duplicates and order (default 25; quick 2). */
  readonly orderingRuns?: number;
  /** Replays with CodePipeline's read lag (lag.ts; default: every scenario × lag; quick: QUICK_LAG_RUNS). */
  readonly lagRuns?: number;
  readonly eventCases?: number;
  readonly policyCases?: number;
  readonly findingsCases?: number;
  /** Which parts run (default all). */
  readonly parts?: readonly Part[];
  /** Only the scenarios whose name starts with one of these. */
  readonly scenarios?: readonly string[];
  /** Given to every replay: a deliberately broken adapter proves the checks can fail. */
  readonly replay?: ReplayOptions;
  readonly onProgress?: (text: string) => void;
}

/** Lagged replays in the quick run (of 8 scenarios × 3 lags in the full one: lag.ts `lagCanHide`). */
export const QUICK_LAG_RUNS = 5;

export type Part = 'faults' | 'orderings' | 'events' | 'policies' | 'findings' | 'oversized';
export const PARTS: readonly Part[] = ['faults', 'orderings', 'events', 'policies', 'findings', 'oversized'];

export interface Summary {
  readonly faultsInjected: number;
  readonly scenarios: number;
  readonly fuzzCases: number;
  readonly invariantViolations: number;
  readonly approvalsFromIncompleteData: number;
  readonly lostGates: number;
  readonly duplicateActions: number;
}

export interface SuiteReport {
  readonly mode: 'quick' | 'full';
  readonly seed: number;
  readonly faults?: FaultSection;
  readonly orderings?: OrderingSection;
  readonly hostile?: Partial<HostileSection>;
  readonly oversized?: OversizedSection;
  readonly violations: readonly Violation[];
  readonly byKind: Readonly<Partial<Record<ViolationKind, number>>>;
  /** Violations per part that ran (a kind, dead-fuzz say, may come from more than one part). */
  readonly byPart: Readonly<Partial<Record<Part, number>>>;
  readonly seconds: Readonly<Partial<Record<Part, number>>>;
  readonly summary: Summary;
}

export async function runSuite(options: SuiteOptions): Promise<SuiteReport> {
  const parts = new Set(options.parts ?? PARTS);
  const quick = options.quick;
  const scenarios = exampleScenarios().filter(
    (s) => !options.scenarios || options.scenarios.some((prefix) => s.name.startsWith(prefix)),
  );
  const progress = options.onProgress ?? (() => undefined);
  const seconds: Partial<Record<Part, number>> = {};
  const timed = async <T>(part: Part, work: () => Promise<T>): Promise<T> => {
    const start = performance.now();
    try {
      return await work();
    } finally {
      seconds[part] = Math.round((performance.now() - start) / 100) / 10;
    }
  };

  const replayer = await Replayer.start();
  let faults: FaultSection | undefined;
  let orderings: OrderingSection | undefined;
  const hostile: { -readonly [K in keyof HostileSection]?: HostileSection[K] } = {};
  let oversized: OversizedSection | undefined;
  const violations: Violation[] = [];
  const byPart: Partial<Record<Part, number>> = {};
  const add = (part: Part, found: readonly Violation[]): void => {
    byPart[part] = (byPart[part] ?? 0) + found.length;
    violations.push(...found);
  };
  try {
    if (parts.has('faults')) {
      faults = await timed('faults', () =>
        runFaultMatrix(replayer, scenarios, {
          ...((options.faultLimit ?? (quick ? 40 : undefined)) === undefined
            ? {}
            : { limit: options.faultLimit ?? 40 }),
          ...(options.faultFilter ? { filter: options.faultFilter } : {}),
          ...(options.replay ? { extra: options.replay } : {}),
          onProgress: (done, total) => {
            if (done % 50 === 0 || done === total) progress(`faults ${done}/${total}`);
          },
        }),
      );
      add('faults', [...faults.cleanViolations, ...faults.runs.flatMap((r) => r.violations)]);
    }
    if (parts.has('orderings')) {
      progress('duplicates and order');
      orderings = await timed('orderings', () =>
        runOrderings(replayer, scenarios, {
          numRuns: options.orderingRuns ?? (quick ? 2 : 25),
          seed: options.seed,
          ...((options.lagRuns ?? (quick ? QUICK_LAG_RUNS : undefined)) === undefined
            ? {}
            : { lagLimit: options.lagRuns ?? QUICK_LAG_RUNS }),
          ...(options.replay ? { extra: options.replay } : {}),
        }),
      );
      add('orderings', [
        ...orderings.cleanViolations,
        ...orderings.runs.flatMap((r) => r.violations),
        ...orderings.lagged.flatMap((r) => r.violations),
      ]);
    }
    if (parts.has('events')) {
      progress('hostile events');
      const world =
        scenarios.find((s) => s.name.startsWith('02')) ??
        exampleScenarios().find((s) => s.name.startsWith('02'))!;
      const events = await timed('events', () =>
        fuzzEvents(replayer, world, {
          // Every case runs in a world and on a table of its own, and many reach a decision: fewer cases than
          // when they shared one world (where none did), in about the time.
          numRuns: options.eventCases ?? (quick ? 100 : 1000),
          seed: options.seed,
          ...(options.replay?.adapters ? { adapters: options.replay.adapters } : {}),
        }),
      );
      Object.assign(hostile, { events: events.facts, logs: events.logs });
      add('events', events.violations);
    }
    if (parts.has('policies')) {
      progress('hostile policies');
      const policies = await timed('policies', async () =>
        fuzzPolicies({ numRuns: options.policyCases ?? (quick ? 300 : 2000), seed: options.seed }),
      );
      hostile.policies = policies.facts;
      add('policies', policies.violations);
    }
    if (parts.has('findings')) {
      progress('hostile findings files');
      const findings = await timed('findings', () =>
        fuzzFindings({ numRuns: options.findingsCases ?? (quick ? 200 : 2000), seed: options.seed }),
      );
      hostile.findings = findings.facts;
      add('findings', findings.violations);
    }
  } finally {
    await replayer.close();
  }
  if (parts.has('oversized')) {
    progress('oversized inputs');
    oversized = await timed('oversized', () => runOversized(quick));
    add('oversized', oversized.violations);
  }

  const byKind: Partial<Record<ViolationKind, number>> = {};
  for (const v of violations) byKind[v.kind] = (byKind[v.kind] ?? 0) + 1;
  const summary: Summary = {
    // Replays in which the planned fault fired (one that never did is a `dead-fault` violation).
    faultsInjected: faults?.runs.filter((r) => r.injected > 0).length ?? 0,
    scenarios: scenarios.length,
    fuzzCases:
      (hostile.events?.cases ?? 0) +
      (hostile.policies?.cases ?? 0) +
      (hostile.findings?.cases ?? 0) +
      (oversized?.cases.length ?? 0),
    invariantViolations: violations.length,
    approvalsFromIncompleteData: byKind['approval-from-incomplete-data'] ?? 0,
    lostGates: byKind['lost-gate'] ?? 0,
    duplicateActions: byKind['duplicate-action'] ?? 0,
  };
  return {
    mode: quick ? 'quick' : 'full',
    seed: options.seed,
    ...(faults ? { faults } : {}),
    ...(orderings ? { orderings } : {}),
    hostile,
    ...(oversized ? { oversized } : {}),
    violations,
    byKind,
    byPart,
    seconds,
    summary,
  };
}

/** The suite failed: a violation of any kind (the last four figures of the summary line, and the others). */
export function failed(report: SuiteReport): boolean {
  const s = report.summary;
  return (
    s.invariantViolations > 0 ||
    s.approvalsFromIncompleteData > 0 ||
    s.lostGates > 0 ||
    s.duplicateActions > 0
  );
}
