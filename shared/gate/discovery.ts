import { compileGlob, type Glob } from '../glob.js';
import { type GateKey, gateId } from './model.js';
import type {
  ActionExecutionView,
  ApprovalsPort,
  ClockPort,
  LogPort,
  MetricsPort,
  PipelinesPort,
  StageStateView,
  StorePort,
} from './ports.js';
import { LISTING_GRACE_MS } from './token.js';
import {
  type ApprovalStarted,
  describeError,
  type GateReport,
  GateWorkFailed,
  hashToken,
  inTurn,
  SWEEP_STOP_MS,
  type SweepTime,
} from './work.js';

/*
 * The repair of a lost approval STARTED event. EventBridge sometimes delivers nothing at all, and that event
 * is the only one that tells Tollgate an approval is waiting: without it no gate exists, nothing decides, and
 * no alarm about waiting gates can fire. So the sweep, every few minutes, looks through the gated pipelines'
 * state for Manual approvals in progress that no gate knows, and opens their gates as the event would have.
 *
 * It reads one GetPipelineState per pipeline: the stage's latest execution. In PARALLEL execution mode the
 * state does not say which executions wait (it names none, or one from before the pipeline was switched to
 * PARALLEL), so for its gated stages it lists the pipeline's executions in progress
 * (`ListPipelineExecutions`) and the action runs of each (`ListActionExecutions`), whose approvals carry
 * their token as `externalExecutionId`. The mode is the pipeline's, as ListPipelines gives it. In any other
 * mode, or one not known (a literal glob the list lacks, a summary without one), only a gated stage whose
 * state names no execution is listed; in SUPERSEDED or QUEUED mode only executions left from PARALLEL mode
 * are looked through there (the state shows the pipeline's own).
 */

/** How a pipeline runs its executions; undefined: not known, so no shortcut may be taken on it. */
type ExecutionMode = 'PARALLEL' | 'SUPERSEDED' | 'QUEUED' | undefined;

/** A gated pipeline and its execution mode, when known. */
interface GatedPipeline {
  readonly name: string;
  readonly mode: ExecutionMode;
}

/** The API's modes; any other value (one added later) is an unknown mode, not a guess. */
function executionModeOf(mode: string | undefined): ExecutionMode {
  return mode === 'PARALLEL' || mode === 'SUPERSEDED' || mode === 'QUEUED' ? mode : undefined;
}

export interface DiscoveryConfig {
  /** The stack's `pipelines` globs: the pipelines whose approvals are gated. */
  readonly pipelines: readonly string[];
  /** The stack's `approvalActionNames` globs. */
  readonly actions: readonly string[];
  /**
   * An approval in progress for less than this is left to its STARTED event, which may still be on its way
   * (or being retried after a failed invocation).
   */
  readonly graceMs: number;
  /** Pipelines whose state is read at once. */
  readonly concurrency: number;
  /**
   * Every this many minutes (of the sweep's schedule), 0 for never: each discovery reads every gated
   * pipeline's state, more than a one-minute sweep should cost.
   */
  readonly everyMinutes: number;
}

/**
 * How far back a PARALLEL-mode pipeline's executions are looked through. CodePipeline ends a Manual approval
 * after 7 days unless its action sets a longer timeout (up to 60), so one still waiting with the default
 * started within them; its execution started before it, a day at most here. An approval given a longer
 * timeout is covered for its first 8 days, and one whose execution took longer to reach it, with its STARTED
 * event lost, is left to a person (the README says both).
 */
export const PARALLEL_LOOKBACK_MS = 8 * 24 * 60 * 60_000;

/** The most minutes between two discoveries (the stack's `discoveryMinutes` and the sweep's check alike). */
export const DISCOVERY_MAX_MINUTES = 60;

/** What the sweep asks of a discovery (`ApprovalDiscovery`, or one that says why it cannot run). */
export interface Discovery {
  due(at: Date): boolean;
  discover(
    where: { readonly account: string; readonly region: string },
    time?: SweepTime,
  ): Promise<DiscoveryReport>;
}

export const DEFAULT_DISCOVERY: Omit<DiscoveryConfig, 'pipelines' | 'actions'> = {
  graceMs: 5 * 60_000,
  concurrency: 4,
  everyMinutes: 5,
};

export interface DiscoveryDeps {
  readonly approvals: ApprovalsPort;
  readonly pipelines: PipelinesPort;
  readonly store: Pick<StorePort, 'openGates' | 'getGate' | 'gateByTokenHash' | 'gateOfRun'>;
  readonly clock: ClockPort;
  readonly log: LogPort;
  readonly metrics: MetricsPort;
  /** Opens the gate as approval-started does (`GateService.approvalStarted`). */
  readonly start: (e: ApprovalStarted) => Promise<GateReport>;
  readonly config: DiscoveryConfig;
}

export interface DiscoveryReport {
  /** Gated pipelines whose state was read. */
  readonly pipelines: number;
  /** Gated approvals in progress, past the grace period. */
  readonly inProgress: number;
  /** Gates opened for approvals whose STARTED event never came. */
  readonly found: readonly GateReport[];
}

/** One approval in progress, as the pipeline's state shows it. */
interface Candidate {
  readonly pipeline: string;
  readonly executionId: string;
  readonly stage: string;
  readonly action: string;
  readonly actionExecutionId: string | undefined;
  readonly token: string;
  readonly since: string | undefined;
  /** The execution's action runs, when they were listed to find it (PARALLEL mode). */
  readonly runs?: readonly ActionExecutionView[];
}

/** Gate keys past the action's run count tried before giving up on an approval (each one a GetItem). */
const KEYS_TRIED = 8;

/**
 * The least time, from its start, that an approval the state shows in progress (its run named) may be
 * missing from its execution's run listing before discovery fails on it. A listing's lag is taken to be
 * over by discovery's grace (before it the approval is not looked at) plus LISTING_GRACE_MS (the lag the
 * gate itself waits out, token.ts): 10 minutes by default, and the bound is never below that sum. This
 * floor adds one more quiet look at the default 5-minute schedule, so a lag just past its usual length costs
 * a retry, not a page; and it stays far below an approval's 7 days, so a run that is never listed (its
 * approval waiting with no gate, nothing deciding it) is alarmed on within a quarter of an hour.
 */
export const UNLISTED_RUN_FAILS_MS = 15 * 60_000;

export class ApprovalDiscovery implements Discovery {
  private readonly pipelineGlobs: readonly Glob[];
  private readonly actionGlobs: readonly Glob[];

  constructor(private readonly d: DiscoveryDeps) {
    this.pipelineGlobs = d.config.pipelines.map(compileGlob);
    this.actionGlobs = d.config.actions.map(compileGlob);
  }

  /** Whether the sweep scheduled at `at` looks for approvals too: on whole multiples of `everyMinutes`. */
  due(at: Date): boolean {
    const every = this.d.config.everyMinutes;
    return every > 0 && Math.floor(at.getTime() / 60_000) % every === 0;
  }

  /**
   * Opens a gate for every gated approval in progress that no gate knows. A pipeline or approval that could
   * not be read is retried by the next discovery; the call throws at the end, after the others, so that
   * the failure is counted, alarmed on and never passes for "nothing waiting".
   */
  async discover(
    where: { readonly account: string; readonly region: string },
    { timeLeftMs }: SweepTime = {},
  ): Promise<DiscoveryReport> {
    // Work not started once the invocation's time runs short: said as a failure (the look was not whole), so
    // the error alarm pages if it happens look after look, rather than Lambda's timeout cutting a gate's
    // opening in half and losing the function's logs and metrics with it.
    const late = () => timeLeftMs !== undefined && timeLeftMs() < SWEEP_STOP_MS;
    let notLookedAt = 0;
    const failures: unknown[] = [];
    let pipelines: readonly GatedPipeline[];
    try {
      pipelines = await this.gatedPipelines();
    } catch (error) {
      // Pipelines named literally are looked at all the same, their modes unknown (read from their state
      // alone, as before modes were read): a list that cannot be read (throttled, denied by an SCP) must not
      // take away the only repair for lost STARTED events. The failure is still counted and thrown.
      const literal = this.pipelineGlobs.filter((g) => g.isLiteral).map((g) => g.source);
      if (literal.length === 0) {
        this.d.metrics.count('DiscoveryFailures');
        throw error;
      }
      failures.push(error);
      this.d.log.warn('discovery: listing the pipelines failed; the ones named literally are looked at', {
        error: describeError(error),
      });
      pipelines = [...new Set(literal)].map((name) => ({ name, mode: undefined }));
    }
    // The open gates, read once before the pipelines: a gate opened since is found by its key or claim. Only
    // those still deciding: the index also holds ACTED, CLOSED and STALE gates the sweep asks CodePipeline about,
    // whose approvals a key or claim read finds as before.
    const gates = (
      await this.d.store.openGates().catch((error: unknown) => {
        this.d.metrics.count('DiscoveryFailures');
        throw error;
      })
    ).filter((g) => g.state === 'WAITING' || g.state === 'DECIDED');
    const candidates: Candidate[] = [];
    const now = this.d.clock.now().getTime();
    await inTurn(pipelines, this.d.config.concurrency, async ({ name: pipeline, mode }) => {
      if (late()) {
        notLookedAt++;
        return;
      }
      try {
        const stages = await this.d.approvals.pipelineState(pipeline);
        const shown = this.waiting(pipeline, stages, now);
        candidates.push(...shown);
        const listed = this.stagesToList(stages, mode);
        if (listed.size > 0) {
          const parallel = await this.waitingInParallel(pipeline, listed, now, {
            parallelOnly: mode === 'SUPERSEDED' || mode === 'QUEUED',
            late,
          });
          notLookedAt += parallel.notLookedAt;
          // A run the state shows too (an execution from before the switch to PARALLEL, still waiting) is
          // one approval: looked at once.
          const seen = new Set(shown.flatMap((c) => [c.token, c.actionExecutionId]));
          candidates.push(
            ...parallel.found.filter(
              (c) =>
                !seen.has(c.token) && (c.actionExecutionId === undefined || !seen.has(c.actionExecutionId)),
            ),
          );
          failures.push(...parallel.failures);
        }
      } catch (error) {
        failures.push(error);
        this.d.log.warn('discovery: looking through a pipeline failed', {
          pipeline,
          error: describeError(error),
        });
      }
    });
    const found: GateReport[] = [];
    if (candidates.length > 0) {
      // A gate knows its run by id from the event, and its token once read: either says it is not lost.
      const runs = new Set(gates.map((g) => g.actionExecutionId).filter((id) => id !== undefined));
      const hashes = new Set(gates.map((g) => g.tokenHash).filter((h) => h !== undefined));
      // An open gate from an event without its run id, under any attempt: it may be this approval.
      const unclaimed = new Set(
        gates.filter((g) => g.actionExecutionId === undefined).map((g) => approvalOf(g.key)),
      );
      for (const c of candidates) {
        if (
          (c.actionExecutionId !== undefined && runs.has(c.actionExecutionId)) ||
          hashes.has(hashToken(c.token)) ||
          unclaimed.has(approvalOf(c))
        )
          continue;
        if (late()) {
          notLookedAt++;
          continue;
        }
        try {
          const report = await this.open(c, where);
          if (report) found.push(report);
        } catch (error) {
          failures.push(error);
          this.d.log.warn('discovery: opening a gate failed', {
            gate: gateId(firstKey(c)),
            run: c.actionExecutionId,
            error: describeError(error),
          });
        }
      }
    }
    if (found.length > 0) this.d.metrics.count('ApprovalsFound', found.length);
    if (notLookedAt > 0) {
      failures.push(
        new Error(
          `stopped short of the function's timeout: ${notLookedAt} pipeline(s), execution(s) or approval(s) left for the next look`,
        ),
      );
    }
    if (failures.length > 0) {
      this.d.metrics.count('DiscoveryFailures', failures.length);
      // The first cause in the message: it is what the failed-events queue and the error alarm show.
      throw new GateWorkFailed(
        `discovery: ${failures.length} failure(s), so not every lost approval could be looked for or opened; the first: ${describeError(failures[0])}`,
        failures,
      );
    }
    return { pipelines: pipelines.length, inProgress: candidates.length, found };
  }

  /**
   * The gated pipelines with their execution modes. The list is read even when every glob is a literal name:
   * only it tells a PARALLEL-mode pipeline (whose state may still name an execution from before the switch)
   * from the others. A literal name the list lacks (a pipeline just created, or gone) is still looked at, its
   * mode unknown: its state says what it can.
   */
  private async gatedPipelines(): Promise<readonly GatedPipeline[]> {
    const summaries = await this.d.pipelines.pipelineSummaries();
    const gated = summaries
      .filter((p) => this.pipelineGlobs.some((g) => g.test(p.name)))
      .map((p): GatedPipeline => ({ name: p.name, mode: executionModeOf(p.executionMode) }));
    const listed = new Set(gated.map((p) => p.name));
    const unlisted = this.pipelineGlobs
      .filter((g) => g.isLiteral && !listed.has(g.source))
      .map((g): GatedPipeline => ({ name: g.source, mode: undefined }));
    return [...gated, ...new Map(unlisted.map((p) => [p.name, p])).values()];
  }

  /**
   * Gated approvals in progress past the grace period. Only an approval shows a token in the state, so a
   * token says the action is a Manual approval waiting; a stage that names no execution cannot say whose
   * it is (`waitingInParallel` looks there, as for every stage of a PARALLEL-mode pipeline).
   */
  private waiting(pipeline: string, stages: readonly StageStateView[], now: number): Candidate[] {
    const found: Candidate[] = [];
    for (const stage of stages) {
      if (stage.executionId === undefined) continue;
      for (const a of stage.actions) {
        if (a.status !== 'InProgress' || !a.token || !this.gated(a.name) || !this.pastGrace(a.since, now))
          continue;
        found.push({
          pipeline,
          executionId: stage.executionId,
          stage: stage.name,
          action: a.name,
          actionExecutionId: a.actionExecutionId,
          token: a.token,
          since: sinceOf(a.since),
        });
      }
    }
    return found;
  }

  /**
   * The gated stages, with their gated actions, whose approvals in progress only the executions' listing
   * shows. PARALLEL mode: every one, whatever execution the state names (a pipeline switched to PARALLEL
   * keeps showing its last execution from before). Any other mode, or none known: a stage whose state names
   * no execution (never ran, or a pipeline switched from PARALLEL, whose state shows its former mode's).
   */
  private stagesToList(
    stages: readonly StageStateView[],
    mode: ExecutionMode,
  ): ReadonlyMap<string, readonly string[]> {
    const gated = new Map<string, readonly string[]>();
    for (const stage of stages) {
      if (mode !== 'PARALLEL' && stage.executionId !== undefined) continue;
      const actions = stage.actions.map((a) => a.name).filter((name) => this.gated(name));
      if (actions.length > 0) gated.set(stage.name, actions);
    }
    return gated;
  }

  /**
   * Gated approvals in progress past the grace period in `stages` of the pipeline's executions in progress,
   * read from each execution's action runs (an execution whose approval has a gate costs that listing and
   * the table reads that find the gate: only the runs say which run is waiting). `failures`: executions
   * whose runs could not be read, and the executions left unlisted past the adapter's page limit;
   * `notLookedAt`: executions whose runs were not read because the invocation's time ran short (`late`);
   * the others have been looked through.
   */
  private async waitingInParallel(
    pipeline: string,
    stages: ReadonlyMap<string, readonly string[]>,
    now: number,
    { parallelOnly, late }: { readonly parallelOnly: boolean; readonly late: () => boolean },
  ): Promise<{ readonly found: Candidate[]; readonly failures: unknown[]; readonly notLookedAt: number }> {
    const since = new Date(now - PARALLEL_LOOKBACK_MS);
    const listed = await this.d.pipelines.recentExecutions(pipeline, since);
    const found: Candidate[] = [];
    const failures: unknown[] = [];
    let notLookedAt = 0;
    let parallelSeen = false;
    for (const execution of listed.executions) {
      // Stopping: "stop and wait" lets actions in progress finish, an approval among them.
      if (execution.status !== 'InProgress' && execution.status !== 'Stopping') continue;
      // A SUPERSEDED or QUEUED pipeline's own executions show in its state: only those left from PARALLEL
      // mode (or of a mode the summary does not say) are looked through here.
      const parallel = execution.executionMode === undefined || execution.executionMode === 'PARALLEL';
      if (parallel) parallelSeen = true;
      if (parallelOnly && !parallel) continue;
      // One listing per execution, one after another: a busy PARALLEL pipeline alone could outlast the
      // invocation. Each execution left is counted, so the look fails as not whole and the next one lists it.
      if (late()) {
        notLookedAt++;
        continue;
      }
      let runs: readonly ActionExecutionView[];
      try {
        runs = await this.d.approvals.actionExecutions(pipeline, execution.executionId);
      } catch (error) {
        // One execution's runs unread must not hide the others'.
        failures.push(error);
        // Named by the gates it could hold: the gated approvals of those stages in this execution.
        this.d.log.warn("discovery: reading an execution's action runs failed", {
          gates: [...stages].flatMap(([stage, actions]) =>
            actions.map((action) => ({
              gate: gateId({ pipeline, executionId: execution.executionId, stage, action }),
            })),
          ),
          error: describeError(error),
        });
        continue;
      }
      for (const run of runs) {
        const token = run.externalExecutionId;
        if (
          run.status !== 'InProgress' ||
          run.manualApproval !== true ||
          !token ||
          !stages.has(run.stage) ||
          !this.gated(run.action) ||
          !this.pastGrace(run.startedAt, now)
        )
          continue;
        found.push({
          pipeline,
          executionId: execution.executionId,
          stage: run.stage,
          action: run.action,
          // A run the listing names no id for has nothing to claim: `open` says so.
          actionExecutionId: run.actionExecutionId || undefined,
          token,
          since: sinceOf(run.startedAt),
          runs,
        });
      }
    }
    // Past the page limit, a SUPERSEDED or QUEUED pipeline with no PARALLEL execution in progress on the pages
    // read fails nothing: failing would page on every look at every busy pipeline whose gated stage shows no
    // execution, for approvals that nearly always cannot be there. What that leaves unseen (executions left
    // from PARALLEL mode are older than any since the switch, so on a busy pipeline they are the ones past
    // the limit) is a known gap, written down in the README.
    if (!listed.complete && (!parallelOnly || parallelSeen)) {
      const unread = new Error(
        `discovery: pipeline ${pipeline} has more executions since ${since.toISOString()} than one look lists; those past the first ${listed.executions.length} were not looked through`,
      );
      failures.push(unread);
      this.d.log.warn(unread.message, { pipeline });
    }
    return { found, failures, notLookedAt };
  }

  private gated(action: string): boolean {
    return this.actionGlobs.some((g) => g.test(action));
  }

  /**
   * No time shown: old enough. A STARTED event still on its way then finds the gate, by its key or by its
   * run's claim (StorePort.createGate).
   */
  private pastGrace(since: string | undefined, now: number, graceMs = this.d.config.graceMs): boolean {
    const at = since === undefined ? Number.NaN : Date.parse(since);
    return !(now - at < graceMs);
  }

  /** How long a run may be missing from its listing before that is a failure (UNLISTED_RUN_FAILS_MS). */
  private unlistedFailsMs(): number {
    return Math.max(this.d.config.graceMs + LISTING_GRACE_MS, UNLISTED_RUN_FAILS_MS);
  }

  /**
   * The gate the STARTED event would have opened, unless a gate holds the run already (its claim, or its
   * token for gates from before runs were claimed). The key's attempt is the action's runs in the execution
   * (an action runs once at a time, so the one in progress is the last), moved past any number an earlier
   * run's gate holds. The event numbers by the execution's attempts, which a retry that did not run the
   * approval also counts: the run's claim, not the key, keeps one gate per approval (StorePort.createGate).
   */
  private async open(
    c: Candidate,
    where: { readonly account: string; readonly region: string },
  ): Promise<GateReport | undefined> {
    const run = c.actionExecutionId;
    if (run === undefined) {
      // A state that names no run (older API answers) leaves nothing to claim, and even a first run's key
      // may not be the event's (an attempt can fail before the approval runs). Unless a gate has it, it is
      // a person's: a failure, so the alarm says so rather than a log line nobody reads.
      const [gate, byToken] = await Promise.all([
        this.d.store.getGate(firstKey(c)),
        this.d.store.gateByTokenHash(hashToken(c.token)),
      ]);
      if (byToken !== undefined) return undefined;
      // The first key's gate is this approval's only if still open and its token, when read, is this one:
      // a closed or stale gate there is an earlier run's.
      if (
        gate !== undefined &&
        gate.state !== 'CLOSED' &&
        gate.state !== 'STALE' &&
        (gate.tokenHash === undefined || gate.tokenHash === hashToken(c.token))
      )
        return undefined;
      throw new Error(
        `discovery: approval ${gateId(firstKey(c))} is in progress with no gate, and its state names no run for one to claim: not opened, left to a person`,
      );
    }
    // Most approvals in progress have a gate (an escalation waiting for a person): two reads of the table
    // say so, before anything is asked of CodePipeline.
    const [holder, byToken] = await Promise.all([
      this.d.store.gateOfRun(run),
      this.d.store.gateByTokenHash(hashToken(c.token)),
    ]);
    if (holder !== undefined || byToken !== undefined) return undefined;
    const executions = c.runs ?? (await this.d.approvals.actionExecutions(c.pipeline, c.executionId));
    const runs = executions.filter((x) => x.stage === c.stage && x.action === c.action);
    if (!runs.some((x) => x.actionExecutionId === run)) {
      // The listing lags the state a moment: the next discovery sees the run. Past any lag, the approval
      // waits with no gate, nothing deciding it: a failure, so the alarm says so (a state with no time
      // shown is taken as old enough, as for the grace period: silence is the worse mistake).
      if (this.pastGrace(c.since, this.d.clock.now().getTime(), this.unlistedFailsMs()))
        throw new Error(
          `discovery: approval ${gateId(firstKey(c))} (run ${run}) has been in progress since ${c.since ?? 'a time not shown'} with no gate, and its execution's ListActionExecutions does not list that run: not opened, left to a person`,
        );
      this.d.log.info('discovery: an approval in progress is not listed as a run yet', {
        gate: gateId(firstKey(c)),
        run,
      });
      return undefined;
    }
    const base = firstKey(c);
    for (let attempt = runs.length; attempt <= runs.length + KEYS_TRIED; attempt++) {
      const key: GateKey = attempt > 1 ? { ...base, attempt } : base;
      const gate = await this.d.store.getGate(key);
      if (gate === undefined) return this.startFound(key, c, where);
      // This run's gate; or one that names no run (an event without its run id): still live and not known
      // to hold another token, it may be this one. A STALE gate gave up on its approval (the execution moved
      // on), so it is an earlier run's, as for a run-less state above: were it taken for this one, this
      // approval would be skipped at every discovery with nothing said, while no gate decides it. Moving on
      // keeps one live gate per approval (a closed or stale gate never acts again).
      if (
        gate.actionExecutionId === run ||
        (gate.actionExecutionId === undefined &&
          gate.state !== 'CLOSED' &&
          gate.state !== 'STALE' &&
          (gate.tokenHash === undefined || gate.tokenHash === hashToken(c.token)))
      )
        return undefined;
      // Another run's gate holds the number (the event's attempts ran ahead of the runs): the next one.
    }
    throw new Error(
      `discovery: approval ${gateId(base)} (run ${run}) is in progress with no gate, and the ${KEYS_TRIED + 1} gate keys tried are other runs': not opened, left to a person`,
    );
  }

  private async startFound(
    key: GateKey,
    c: Candidate,
    where: { readonly account: string; readonly region: string },
  ): Promise<GateReport | undefined> {
    this.d.log.warn('discovery: an approval in progress has no gate (its STARTED event never came)', {
      gate: gateId(key),
      since: c.since,
    });
    const report = await this.d.start({
      key,
      actionExecutionId: c.actionExecutionId,
      time: c.since ?? this.d.clock.now().toISOString(),
      account: where.account,
      region: where.region,
      found: true,
    });
    // The event may have opened it (or another key holding the run) a moment before: not found, then.
    return report.opened ? report : undefined;
  }
}

/** The approval a key names, whatever the attempt: pipeline, execution, stage and action. */
function approvalOf(k: Pick<GateKey, 'pipeline' | 'executionId' | 'stage' | 'action'>): string {
  return JSON.stringify([k.pipeline, k.executionId, k.stage, k.action]);
}

/** A time the state or a listing showed, if it reads as one. */
function sinceOf(at: string | undefined): string | undefined {
  return at === undefined || Number.isNaN(Date.parse(at)) ? undefined : at;
}

/**
 * The key of the candidate's approval without an attempt number: the gate's key if it is the action's first
 * run, and what the logs name it by before its number is known.
 */
function firstKey(c: Candidate): GateKey {
  return { pipeline: c.pipeline, executionId: c.executionId, stage: c.stage, action: c.action };
}
