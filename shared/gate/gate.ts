import { ChainHeadMovedError } from '../audit/chain.js';
import { actionEntry, decisionEntry } from '../audit/entry.js';
import type { AuditAction, AuditRecord } from '../audit/record.js';
import type { DecisionRecord } from '../decision/record.js';
import { formatPath, InputError } from '../errors.js';
import { type ScanVerdict, SEVERITIES } from '../findings/finding.js';
import { ShapeError } from '../findings/readers.js';
import { FindingTable } from '../findings/table.js';
import { type CompiledPolicy, compilePolicy } from '../policy/compile.js';
import { type Evaluation, evaluate, type GateCondition } from '../policy/evaluate.js';
import type { LoadedPolicy } from '../policy/load.js';
import { PolicySchema } from '../policy/schema.js';
import { shown } from '../text.js';
import { boundedDecision } from './bounds.js';
import { type ClosingConfig, type ClosingDeps, GateClosing } from './closing.js';
import { approvalSummary, renderEscalation } from './escalation.js';
import { decisionEvent, gateClosedEvent, gateStateEvent } from './events.js';
import {
  type Identification,
  type ImageReference,
  imageFromCustomData,
  imageFromVariables,
} from './image.js';
import {
  DETAIL_LIMIT,
  type FindingSummary,
  type Gate,
  type GateImage,
  type GateKey,
  type GateState,
  gateId,
  type ScanState,
  type ScanStatus,
  type SeverityCounts,
  type StoredDecision,
  type ViolationFindings,
} from './model.js';
import {
  type ActionExecutionView,
  type ApprovalsPort,
  type CoverageView,
  ExecutionNotFound,
  type FindingsPort,
  type FindingsReadResult,
  type ImagesPort,
  type NotifierPort,
  type PipelineExecutionView,
  type PutApprovalOutcome,
  resultMayHaveLanded,
  type StageStateView,
} from './ports.js';
import {
  answeredBy,
  closureOfRun,
  ownRun,
  RECONCILE_GIVE_UP_MS,
  RECONCILE_MS,
  reconcileAfterEnd,
  reconcileDue,
  reconcileInterval,
  reconcileStale,
  resultOfRun,
} from './reconcile.js';
import {
  coverageState,
  ecrScanState,
  hasClosedFindings,
  inspectorScanState,
  isSettled,
  readCounts,
  sameRead,
  scanIsOf,
} from './scan.js';
import { checkToken, LISTING_GRACE_MS, ofSameApproval, type TokenCheck } from './token.js';
import {
  type ApprovalStarted,
  CHAIN_ATTEMPTS_AFTER_ACTION,
  describeError,
  entry,
  eventTime,
  type GateReport,
  GateWorkFailed,
  type HeadRead,
  hashToken,
  inTurn,
  newGate,
  report,
  SWEEP_STOP_MS,
  type SweepTime,
  UPDATE_ATTEMPTS,
  validTime,
} from './work.js';

export { GateClosing } from './closing.js';
export { describeError, hashToken } from './work.js';

/** The policy the functions run with: a broken one is not fatal, it makes every decision escalate (fail closed). */
export type PolicySource =
  | { readonly ok: true; readonly loaded: LoadedPolicy }
  | { readonly ok: false; readonly problem: string; readonly sha256: string; readonly file: string };

export interface GateConfig extends ClosingConfig {
  readonly scanSource: 'inspector' | 'ecr';
  /**
   * How long one invocation holds the right to act before the sweep may act again. It must outlive the
   * longest invocation of a function that acts (Lambda ends it by then): a lease that ran out while its
   * holder was still sending let the sweep send a second escalation beside it. A failed act gives it back.
   */
  readonly leaseMs: number;
  /** The settle rule's "a sweep apart". */
  readonly settleMs: number;
  readonly sweepConcurrency: number;
  /**
   * Recording what was done after a result or an escalation went out: attempts, and the backoff base. A gate
   * that cannot record its action is acted on again by the sweep, so a failed write there is worth retrying.
   */
  readonly recordAttempts: number;
  readonly recordBackoffMs: number;
  /**
   * The pauses before reading the approval's run again when a STARTED event finds it not listed yet (the
   * listing lags the event a moment): each a read in the invocation, where a throw costs a minute's retry
   * and a page on the function's errors.
   */
  readonly listingRereadsMs: readonly number[];
}

export const DEFAULT_CONFIG: Omit<GateConfig, 'region' | 'account' | 'scanSource'> = {
  // The deciding functions run for 5 minutes at most (infra/tollgate.ts; a test holds them below this).
  leaseMs: 6 * 60_000,
  settleMs: 50_000,
  ownIdentities: [],
  sweepConcurrency: 8,
  recordAttempts: 5,
  recordBackoffMs: 100,
  listingRereadsMs: [1_000, 3_000],
};

export interface GateDeps extends ClosingDeps {
  readonly approvals: ApprovalsPort;
  readonly findings: FindingsPort;
  readonly images: ImagesPort;
  readonly notifier: NotifierPort;
  readonly policy: PolicySource;
  readonly config: GateConfig;
}

export interface ScanFinished {
  readonly source: 'inspector' | 'ecr';
  /** Repository name (an ARN is reduced to its name by the caller). */
  readonly repository: string;
  /** The registry (account) of the repository: its ARN's account, else the event's. */
  readonly registryId: string;
  readonly digest: string;
  readonly tags: readonly string[];
  readonly status: string;
  readonly counts: SeverityCounts | undefined;
  readonly time: string;
}

/**
 * A waiting gate this long past its deadline means the timeout is not being applied; a decided one, this long
 * and an acting lease more, that its result or escalation cannot be sent: the alarm's metric counts both.
 */
export const OVERDUE_MARGIN_MS = 5 * 60_000;

interface DecideContext {
  readonly trigger: string;
  /** A findings read already started for this digest and repository (scan-finished starts it at once). */
  readonly prefetch?:
    | {
        readonly repository: string;
        readonly registryId: string | undefined;
        readonly read: Promise<FindingsReadResult>;
      }
    | undefined;
  /** The pipeline state read once per sweep per pipeline. */
  readonly stateCache?: Map<string, Promise<readonly StageStateView[]>> | undefined;
  /** The token read when the approval started, in this same invocation. */
  readonly token?: TokenCheck | undefined;
  /** The scan status this invocation has just stored (scan-finished): no need to read it back. */
  readonly scan?: ScanStatus | undefined;
  /** The audit chain's head, read beside the findings so that the decision's append adds no call in sequence. */
  readonly head?: HeadRead;
}

/**
 * A stored Inspector scan status older than this is checked against Inspector's coverage before it decides:
 * a day, well inside the three days Inspector keeps the closed findings of an image it stopped scanning.
 */
const STORED_SCAN_RECHECK_MS = 24 * 60 * 60_000;

/**
 * The gate's life (architecture §3), over the ports. Every entry point is idempotent: it reads the gate,
 * does what its state still needs, and writes with a condition on the version it read, so a duplicate or
 * concurrent delivery finds the work done (or loses the race) instead of doing it twice.
 */
export class GateService extends GateClosing<GateDeps> {
  private readonly compiled: CompiledPolicy | undefined;
  private readonly fallback: CompiledPolicy;

  constructor(d: GateDeps) {
    super(d);
    this.compiled = d.policy.ok ? compilePolicy(d.policy.loaded) : undefined;
    // With a broken policy the gate still writes a full decision record, under the defaults (which escalate
    // on error) and the broken file's hash, so auditors see exactly which text failed.
    this.fallback = compilePolicy({
      policy: PolicySchema.parse({ version: 1, name: 'invalid-policy' }),
      sha256: d.policy.ok ? d.policy.loaded.sha256 : d.policy.sha256,
      file: d.policy.ok ? d.policy.loaded.file : d.policy.file,
    });
  }

  private get waitMs(): number {
    const minutes = this.compiled?.policy.settings.scan.waitMinutes ?? 30;
    return minutes * 60_000;
  }

  // ── approval-started ────────────────────────────────────────────────────────────────────────────────

  async approvalStarted(e: ApprovalStarted): Promise<GateReport> {
    const existing = await this.d.store.getGate(e.key);
    if (existing) {
      const run = e.actionExecutionId;
      const other =
        run !== undefined && existing.actionExecutionId !== undefined && existing.actionExecutionId !== run;
      if (!other) return this.resume(existing, 'approval-started (again)');
      // The sweep numbered another run's gate with this key (its runs, not the execution's attempts).
      const holder = await this.d.store.gateOfRun(run);
      if (holder) return this.resumeKey(holder, `approval-started (its run is gate ${gateId(holder)})`);
      this.d.log.warn('approval started: the gate under its key is another run of the action', {
        gate: gateId(e.key),
        run,
      });
      return report(existing, "not this gate's run: left to the sweep, which numbers past it");
    }

    // Both reads, or CodePipeline's answer that the execution is gone (an answer: no retry changes it).
    const read = () =>
      Promise.all([
        this.d.approvals.pipelineState(e.key.pipeline),
        this.d.approvals.actionExecutions(e.key.pipeline, e.key.executionId),
      ]).catch((error: unknown) => {
        if (error instanceof ExecutionNotFound) return error;
        throw error;
      });
    const startedAt = eventTime(e.time, this.now());
    let reads = await read();
    for (const pause of this.d.config.listingRereadsMs) {
      if (reads instanceof ExecutionNotFound) break;
      // This event's own run: another run listed (an earlier attempt of a retried stage) is not its CustomData.
      const listed = reads[1].some(
        (x) =>
          x.stage === e.key.stage &&
          x.action === e.key.action &&
          (e.actionExecutionId === undefined || x.actionExecutionId === e.actionExecutionId),
      );
      if (listed || this.now().getTime() - Date.parse(startedAt) >= LISTING_GRACE_MS) break;
      await new Promise((resolve) => setTimeout(resolve, pause));
      reads = await read();
    }
    if (reads instanceof ExecutionNotFound) {
      const now = this.now();
      const base = newGate(e, startedAt, now, new Date(Date.parse(startedAt) + this.waitMs).toISOString());
      return this.openStale(base, reads.message, now);
    }
    const [stages, executions] = reads;
    const now = this.now();
    const base = newGate(e, startedAt, now, new Date(Date.parse(startedAt) + this.waitMs).toISOString());
    const justStarted = this.justStarted(base, now);
    const token = checkToken(e.key, stages, executions, e.actionExecutionId, justStarted);

    if (!token.ok && token.final) return this.openStale(base, token.reason, now);

    const identified = await this.identify(e.key, executions, {
      account: e.account || this.d.config.account,
      region: e.region || this.d.config.region,
      actionExecutionId: e.actionExecutionId,
      startedAt,
      justStarted,
    });
    if ('gone' in identified) return this.openStale(base, identified.gone, now);
    let gate: Gate = {
      ...base,
      image: identified.image,
      imageProblem: identified.problem,
      tokenHash: token.ok ? hashToken(token.token) : undefined,
      actionExecutionId: e.actionExecutionId ?? (token.ok ? token.actionExecutionId : undefined),
    };
    const started = e.found
      ? 'approval found in progress by the sweep (no STARTED event came)'
      : 'approval started';
    gate = entry(
      gate,
      now,
      identified.image
        ? `${started}; image ${identified.image.repository}@${short(identified.image.digest)} (from ${identified.image.source.split(':')[0]})`
        : `${started}; no image: ${identified.problem}`,
    );
    if (!(await this.d.store.createGate(gate))) return this.resumeRaced(gate);
    this.publish(() => gateStateEvent(gate, undefined, this.region(gate), this.account(gate)));
    const decided = await this.tryDecide(gate, {
      trigger: e.found ? 'sweep (approval found)' : 'approval-started',
      token,
    });
    return { ...decided, opened: true };
  }

  /** Opens the gate STALE: its approval is over, or gone, before Tollgate could judge it. Nothing is sent. */
  private async openStale(base: Gate, reason: string, now: Date): Promise<GateReport> {
    const stale: Gate = entry(
      { ...base, state: 'STALE', staleReason: reason, reconcileAt: reconcileStale(base, now) },
      now,
      `stale: ${reason}`,
    );
    if (!(await this.d.store.createGate(stale))) return this.resumeRaced(stale);
    this.publish(() => gateStateEvent(stale, undefined, this.region(stale), this.account(stale)));
    return { ...report(stale, reason), opened: true };
  }

  /** CustomData first, then the execution's variables; a tag is resolved to a digest here, once. */
  private async identify(
    key: GateKey,
    executions: readonly ActionExecutionView[],
    where: {
      readonly account: string | undefined;
      readonly region: string;
      readonly actionExecutionId: string | undefined;
      readonly startedAt: string;
      /** Within the listing grace: a run not listed may only lag. */
      readonly justStarted: boolean;
    },
  ): Promise<{ image: GateImage | undefined; problem: string | undefined } | { gone: string }> {
    const ofAction = executions.filter((x) => x.stage === key.stage && x.action === key.action);
    // A retried stage lists each attempt's run of the action, and the CustomData is the attempt's own: never
    // another run's, which may name another image (a retry of all the stage's actions builds again when the
    // build is in the approval's stage). Only an event that names no run takes the latest listed.
    const mine =
      where.actionExecutionId === undefined
        ? ofAction[0]
        : ofAction.find((x) => x.actionExecutionId === where.actionExecutionId);
    // Read once, if at all: for the variables, and for what a tag can be trusted with.
    let executionRead: Promise<PipelineExecutionView | undefined> | undefined;
    const readExecution = () =>
      (executionRead ??= this.d.approvals.pipelineExecution(key.pipeline, key.executionId));
    let found: Identification = imageFromCustomData(mine?.customData);
    if (!found.ok) {
      const fromCustomData = found.problem;
      const execution = await readExecution();
      // No such execution: the approval is gone, or never was in this account and region. Not a lag, even just
      // after STARTED: the execution began stages before its approval did (the listing of the approval's run
      // may lag, the execution does not), and retried, the event would only be dead-lettered.
      if (execution === undefined)
        return { gone: `execution ${key.executionId} of pipeline ${key.pipeline} was not found` };
      if (mine === undefined && where.justStarted) {
        // The variables are the fallback for a run whose CustomData names no image, not for one not listed
        // yet: a pipeline may hold an IMAGE_URI of another image, and the gate would judge that one for good.
        throw new GateWorkFailed(
          `gate ${gateId(key)}: the approval's run is not listed yet, so its CustomData, which comes before the execution's variables, cannot be read (retried)`,
          [],
        );
      }
      found = imageFromVariables(execution.variables);
      if (!found.ok && mine === undefined) {
        // No run of the action listed at all: the listing lags the STARTED event a moment, and the CustomData
        // that names the image is in it. "No image" now would escalate a release for nothing; no gate is
        // opened, and the event's retry (or the sweep's discovery) reads the run once it is listed.
        throw new GateWorkFailed(
          `gate ${gateId(key)}: the approval's run is not listed yet, so its CustomData cannot be read (retried)`,
          [],
        );
      }
      if (!found.ok) return { image: undefined, problem: `${fromCustomData}; ${found.problem}` };
    }
    const ref = found.reference;
    const elsewhere = outsideReach(ref, where);
    if (elsewhere !== undefined) return { image: undefined, problem: elsewhere };
    let digest = ref.digest;
    if (digest !== undefined) {
      // A digest names this build's image for good, but not necessarily one a scanner scans: an index (what
      // `docker buildx build --push` writes by default, and the digest its metadata reports) has no findings
      // or coverage of its own, and would wait out its deadline as never scanned, saying nothing of why. Nor
      // is a digest ECR does not have (a typo, another repository) worth waiting for.
      // ECR failing (after its retries) only loses the early word: the digest is judged unchecked, as before
      // the check (an index then waits out its deadline and escalates as never scanned). Thrown, the
      // approval's event would be dead-lettered, and with discovery off nothing would open its gate.
      const checked = await this.d.images
        .checkDigest(ref.repository, digest, ref.registryId)
        .catch((error: unknown) => {
          this.d.log.warn('ECR did not answer for the digest: judged unchecked', {
            gate: gateId(key),
            repository: ref.repository,
            digest,
            error: describeError(error),
          });
          this.d.metrics.count('DigestChecksFailed');
          return undefined;
        });
      if (checked && 'missing' in checked) return { image: undefined, problem: checked.missing };
    } else if (ref.tag !== undefined) {
      // A tag names whichever build pushed it last. In PARALLEL mode executions build side by side, and a
      // rollback deploys an earlier execution's artifacts while the tag points at the newest: in both, the
      // image the tag names now is no evidence of the one this execution deploys.
      const execution = await readExecution();
      if (execution === undefined)
        return { gone: `execution ${key.executionId} of pipeline ${key.pipeline} was not found` };
      const unbound =
        execution.executionMode === 'PARALLEL'
          ? 'a PARALLEL-mode execution, whose builds run side by side'
          : execution.executionType === 'ROLLBACK'
            ? "a rollback, which deploys an earlier execution's artifacts"
            : undefined;
      if (unbound !== undefined) {
        return {
          image: undefined,
          problem: `${ref.repository}:${ref.tag} is a tag, and in ${unbound} a tag names whichever build pushed it last, not this execution's image: name the image by digest`,
        };
      }
      const resolved = await this.d.images.resolveTag(ref.repository, ref.tag, ref.registryId);
      if ('missing' in resolved) return { image: undefined, problem: resolved.missing };
      // The gate may open well after the approval started (its event retried, or found by the sweep), and
      // the tag may have moved meanwhile: an image pushed after the start is not the one this release built.
      // A STARTED event's time is known to the second, the push to the millisecond: a push within the start's
      // second may be the build's own. (A start the sweep found has milliseconds; it is rounded down the same
      // way, which lets a push in that second through, as before.)
      if (
        resolved.pushedAt !== undefined &&
        Date.parse(resolved.pushedAt) >= Math.floor(Date.parse(where.startedAt) / 1000) * 1000 + 1000
      ) {
        return {
          image: undefined,
          problem: `${ref.repository}:${ref.tag} now points at ${short(resolved.digest)}, pushed at ${resolved.pushedAt}, after this approval started (${where.startedAt}): not the image this release built; name the image by digest`,
        };
      }
      digest = resolved.digest;
    }
    if (digest === undefined) return { image: undefined, problem: `no digest or tag in ${ref.from}` };
    return {
      image: {
        repository: ref.repository,
        digest,
        tags: ref.tag === undefined ? [] : [ref.tag],
        registryId: ref.registryId,
        source: `${ref.from}: ${ref.text}`,
      },
      problem: undefined,
    };
  }

  // ── scan-finished ───────────────────────────────────────────────────────────────────────────────────

  async scanFinished(e: ScanFinished): Promise<readonly GateReport[]> {
    // The other scanner's verdict says nothing of the findings this gate reads (an ECR basic scan is not
    // Inspector's), and stored it would stand in for the real one: a misrouted event (a second rule, a replay,
    // a direct invoke) is logged and left alone.
    if (e.source !== this.d.config.scanSource) {
      this.d.log.warn('a scan event of the other scanner: ignored', {
        source: e.source,
        scanSource: this.d.config.scanSource,
        repository: e.repository,
        digest: e.digest,
      });
      this.d.metrics.count('ForeignScanEvents');
      return [];
    }
    const verdict = e.source === 'inspector' ? inspectorScanState(e.status) : ecrScanState(e.status);
    const scan: ScanStatus = {
      digest: e.digest,
      repository: e.repository,
      registryId: e.registryId,
      source: e.source,
      status: e.status,
      verdict,
      counts: e.counts,
      // The event's own time, even ahead of the clock: the shortfall rule counts a finding changed after it
      // only from the second after (held to an earlier clock, a change in the event's own second would count),
      // and statuses are ordered by it. A status dated ahead is asked about again, by its age, when read.
      at: validTime(e.time) ?? this.now().toISOString(),
    };
    // The findings read is the longest part of the critical path, so it starts now, beside the scan write
    // and the gate lookup, and is cancelled when no gate waits for this image.
    const abort = new AbortController();
    const prefetch =
      verdict === 'complete'
        ? {
            repository: e.repository,
            registryId: e.registryId,
            read: this.readFindings(e.repository, e.digest, e.registryId, abort.signal),
          }
        : undefined;
    prefetch?.read.catch(() => undefined);
    const [stored, ofDigest] = await Promise.all([
      this.d.store.putScan(scan),
      this.d.store.gatesForDigest(e.digest, ['WAITING']),
    ]);
    // A gate of the same digest in another repository waits for its own scan: this one says nothing of it.
    const gates = ofDigest.filter((g) => g.image !== undefined && scanIsOf(scan, this.located(g, g.image)));
    if (gates.length === 0) {
      abort.abort();
      return [];
    }
    // An older event than the stored status (out of order) must not decide: then the gate reads the store.
    const inHand = stored ? scan : undefined;
    return this.forEach(gates, (gate) =>
      this.tryDecide(gate, { trigger: 'scan-finished', prefetch, scan: inHand }),
    );
  }

  // ── sweep ───────────────────────────────────────────────────────────────────────────────────────────

  async sweep(time: SweepTime = {}): Promise<readonly GateReport[]> {
    // The repair (derived data; it logs its own failures) runs beside the gates' work, not before it: a record
    // whose items take retries must not hold up a decision. It is awaited before the sweep returns.
    const repairing = this.repairAuditIndexes();
    try {
      return await this.sweepGates(time);
    } finally {
      await repairing;
    }
  }

  private async sweepGates({ timeLeftMs }: SweepTime): Promise<readonly GateReport[]> {
    const open = await this.d.store.openGates();
    const now = this.now().getTime();
    // ACTED, CLOSED and STALE gates are in the index until their end and reviewer are known (`reconcile`), and
    // are asked about only when due, after the gates still deciding: a sweep cut short leaves them, not those.
    const deciding = open.filter((g) => g.state === 'WAITING' || g.state === 'DECIDED');
    const gates = [...deciding, ...open.filter((g) => !deciding.includes(g) && reconcileDue(g, now))];
    const waiting = gates.filter((g) => g.state === 'WAITING');
    // A decided gate whose result or escalation keeps failing to go out is as stuck as one never decided, and
    // the sweep's own failures are only logged: one acting lease and the margin after its decision (or its
    // deadline, when earlier or the decision's time is not kept), it counts. From the deadline alone, a gate
    // the sweep decided early with a week's wait would page nobody for a week.
    const overdue = gates.filter((g) => {
      if (g.state === 'WAITING') return Date.parse(g.deadline) + OVERDUE_MARGIN_MS < now;
      if (g.state !== 'DECIDED') return false;
      const decided = g.decidedAt === undefined ? Number.NaN : Date.parse(g.decidedAt);
      const from = Number.isNaN(decided) ? Date.parse(g.deadline) : Math.min(decided, Date.parse(g.deadline));
      return from + this.d.config.leaseMs + OVERDUE_MARGIN_MS < now;
    });
    this.d.metrics.gatesWaiting({
      count: waiting.length,
      overdue: overdue.length,
      oldestMinutes: Math.floor(Math.max(0, ...waiting.map((g) => now - Date.parse(g.startedAt))) / 60_000),
    });
    const stateCache = new Map<string, Promise<readonly StageStateView[]>>();
    // Gates not started once the invocation's time runs short are the next sweep's, a minute later; the
    // function ends on its own, its logs and metrics flushed, rather than cut off by Lambda's timeout.
    let left = 0;
    const reports = await this.forEach(
      gates,
      (gate) =>
        gate.state === 'WAITING'
          ? this.tryDecide(gate, { trigger: 'sweep', stateCache })
          : gate.state === 'DECIDED'
            ? this.reAct(gate)
            : this.reconcile(gate),
      false,
      () => {
        const late = timeLeftMs !== undefined && timeLeftMs() < SWEEP_STOP_MS;
        if (late) left++;
        return late;
      },
    );
    if (left > 0) {
      this.d.metrics.count('SweepCutShort', left);
      this.d.log.warn("sweep: stopped short of the function's timeout; the next sweep takes the rest", {
        gates: gates.length,
        left,
      });
    }
    return reports;
  }

  /**
   * A gate whose approval may have ended unseen (ACTED, or STALE: given up as over), or that a person's answer
   * ended with nobody named (CLOSED, or STALE when the answer came before Tollgate's): its end event, or
   * CloudTrail's record of who answered, lost or dead-lettered. Nothing else would ever close the gate (and
   * append its resolution record) or name its reviewer, and auditors would read an escalation nobody answered,
   * or an approval let through by nobody. The
   * listing of the gate's run says whether it ended, how, and (its `updatedBy`) by whom; the gate is then
   * closed as the end event would have closed it, and its reviewer recorded as CloudTrail's record would.
   */
  private async reconcile(gate: Gate): Promise<GateReport> {
    const now = this.now();
    // Past any approval's end, whatever the listing would say (or however it keeps failing: a pipeline no
    // longer granted answers AccessDenied for ever), the gate stops being asked about.
    // (A start that is no time counts as long past: asked for ever is worse than never.)
    const given = !(now.getTime() - Date.parse(gate.startedAt) <= RECONCILE_GIVE_UP_MS);
    let runs: readonly ActionExecutionView[];
    try {
      runs = await this.d.approvals.actionExecutions(gate.key.pipeline, gate.key.executionId);
    } catch (error) {
      if (error instanceof ExecutionNotFound) {
        return this.stopAsking(gate, now, `CodePipeline no longer has its execution (${error.message})`);
      }
      if (given) return this.stopAsking(gate, now, `its listing still fails (${describeError(error)})`);
      // Asked again later rather than at every sweep: the failure is logged and retried then.
      await this.askLater(gate, now).catch(() => undefined);
      throw error;
    }
    // No run of the execution at all, long after this gate's ran: the pipeline is gone (the listing of a
    // deleted pipeline is empty), and nothing will ever say how the approval ended.
    if (runs.length === 0) return this.stopAsking(gate, now, 'CodePipeline lists no run of its execution');
    const run = ownRun(gate, runs);
    const state = run === undefined ? undefined : closureOfRun(run.status);
    if (run === undefined || state === undefined) {
      const why = run === undefined ? 'its run is not listed' : `its run is ${run.status}`;
      if (given) return this.stopAsking(gate, now, `${why} long after any approval ends`);
      const later = await this.askLater(gate, now);
      return later
        ? report(later, `${gate.state === 'ACTED' ? 'acted' : 'stale'}; the approval has not ended: ${why}`)
        : report(gate, 'changed meanwhile');
    }
    if (gate.closure !== undefined) {
      if (!answeredBy(run, gate))
        return this.stopAsking(gate, now, 'the listing names nobody for the answer');
      const reviewed = await this.recordListedReviewer(gate, run, now);
      if (reviewed?.changed) this.d.metrics.count('GatesReconciled');
      return reviewed ?? report(gate, 'reviewer recorded meanwhile');
    }
    this.d.log.warn(
      "the approval ended without its end reaching Tollgate: closing the gate from its run's listing",
      {
        gate: gateId(gate.key),
        status: run.status,
        reviewerRecorded: gate.reviewer !== undefined,
      },
    );
    const closed = await this.approvalEnded({
      key: gate.key,
      actionExecutionId: run.actionExecutionId || undefined,
      state,
      time: run.updatedAt ?? now.toISOString(),
      account: gate.account,
      region: this.region(gate),
    });
    if (closed.changed) this.d.metrics.count('GatesReconciled');
    if (gate.reviewer !== undefined || !answeredBy(run, gate)) return closed;
    const reviewed = await this.recordListedReviewer(gate, run, now);
    if (reviewed?.changed) this.d.metrics.count('GatesReconciled');
    return reviewed ?? closed;
  }

  /** The gate asked about again later, without a timeline entry: an escalation can wait a week. */
  private async askLater(gate: Gate, now: Date): Promise<Gate | undefined> {
    const later: Gate = {
      ...gate,
      reconcileAt: new Date(now.getTime() + reconcileInterval(gate, now.getTime())).toISOString(),
      version: gate.version + 1,
      updatedAt: now.toISOString(),
    };
    return (await this.d.store.updateGate(later, gate.version)) ? later : undefined;
  }

  /** The run's `updatedBy` recorded as the gate's reviewer, unless CloudTrail's record came first. */
  private recordListedReviewer(
    gate: Gate,
    run: ActionExecutionView,
    now: Date,
  ): Promise<GateReport | undefined> {
    return this.recordReviewer(
      {
        identity: answeredBy(run, gate) ?? '',
        identityType: undefined,
        status: resultOfRun(run.status),
        summary: run.summary,
        time: run.updatedAt ?? now.toISOString(),
      },
      () => this.d.store.getGate(gate.key),
      'listing',
    );
  }

  /** A gate whose end (none recorded) or reviewer cannot be learnt: it leaves the sweep's index, saying why. */
  private async stopAsking(gate: Gate, now: Date, why: string): Promise<GateReport> {
    const ended = gate.closure !== undefined;
    const what = ended ? 'who answered the approval' : 'how the approval ended';
    this.d.log.warn(`${what} cannot be known`, { gate: gateId(gate.key), why });
    const next = this.next(
      gate,
      { reconcileAt: undefined, ...(ended ? {} : { endUnknown: why }) },
      now,
      `${what} cannot be known: ${why}`,
    );
    if (!(await this.d.store.updateGate(next, gate.version))) return report(gate, 'changed meanwhile');
    return report(next, `${what} cannot be known: ${why}`);
  }

  /** Vulnerability index items a decision could not write (derived data: a failure here is only logged). */
  private async repairAuditIndexes(): Promise<void> {
    try {
      const repaired = await this.d.store.repairAuditIndexes(this.now());
      if (repaired > 0) this.d.log.info('finished audit vulnerability index items', { records: repaired });
    } catch (error) {
      this.d.metrics.count('AuditIndexFailures');
      this.d.log.warn('finishing audit vulnerability index items failed', { error: describeError(error) });
    }
  }

  // ── deciding ────────────────────────────────────────────────────────────────────────────────────────

  private async resumeKey(key: GateKey, why: string): Promise<GateReport> {
    const gate = await this.d.store.getGate(key);
    if (!gate) throw new GateWorkFailed(`gate ${gateId(key)} vanished`, []);
    return this.resume(gate, why);
  }

  /**
   * Opening `lost` failed: another delivery opened the same key first, or another gate holds its run (a
   * STARTED event and the sweep that found the approval, numbered otherwise: see StorePort.createGate).
   */
  private async resumeRaced(lost: Gate): Promise<GateReport> {
    const same = await this.d.store.getGate(lost.key);
    if (same) return this.resume(same, 'approval-started (raced)');
    const holder = lost.actionExecutionId ? await this.d.store.gateOfRun(lost.actionExecutionId) : undefined;
    if (!holder) throw new GateWorkFailed(`gate ${gateId(lost.key)} vanished`, []);
    return this.resumeKey(holder, `approval-started (its run is gate ${gateId(holder)})`);
  }

  private async resume(gate: Gate, trigger: string): Promise<GateReport> {
    if (gate.state === 'WAITING') return this.tryDecide(gate, { trigger });
    if (gate.state === 'DECIDED') return this.reAct(gate);
    return report(gate, `nothing to do (${trigger})`);
  }

  /**
   * Decides the gate if it can be decided now: the scan finished and settled, or cannot give a verdict, or
   * the wait ran out, or the image cannot be known. Otherwise leaves it WAITING for the next event or sweep.
   */
  private async tryDecide(gate: Gate, ctx: DecideContext): Promise<GateReport> {
    if (gate.state !== 'WAITING') return report(gate, 'not waiting');
    const now = this.now();
    // Answered already: CloudTrail's record of the call came before the action's end event (late, or being
    // retried). A decision now would stand beside the person's answer in the audit trail, and an escalation
    // would page for an approval nobody waits on; the end event closes the gate.
    if (gate.reviewer) {
      return this.markStale(gate, answeredBefore(gate.reviewer, 'Tollgate decided'), now, {
        trigger: ctx.trigger,
      });
    }
    if (!this.compiled) {
      const problem = this.d.policy.ok ? 'no policy' : this.d.policy.problem;
      return this.decideOn(gate, ctx, {
        conditions: [{ kind: 'error', reason: `the policy is invalid: ${problem}` }],
      });
    }
    if (!gate.image) {
      return this.decideOn(gate, ctx, {
        conditions: [{ kind: 'error', reason: gate.imageProblem ?? 'no image identified' }],
      });
    }
    const image = gate.image;
    // An image the URI names no registry for is in the gate's account (outsideReach refuses any other): saying
    // so lets coverage ask for the image exactly, and keeps other accounts' findings (a delegated
    // administrator sees its members') out of the read.
    const located = this.located(gate, image);
    const { registryId } = located;
    const timedOut = now.getTime() >= Date.parse(gate.deadline);
    // Inspector's coverage of the image, asked at most once per decision (for the scan status, then for closed
    // findings).
    let coverageRead: Promise<CoverageView | undefined> | undefined;
    const coverage = () =>
      (coverageRead ??= this.d.findings.coverage({
        repository: located.repository,
        digest: located.digest,
        registryId: located.registryId,
      }));
    let scan: ScanStatus;
    try {
      scan =
        ctx.scan && scanIsOf(ctx.scan, located) ? ctx.scan : await this.scanStatusFor(located, now, coverage);
    } catch (error) {
      // Coverage failing (or denied) must not keep a gate waiting past its deadline.
      return this.readFailed(gate, ctx, timedOut, error, 'the scan status');
    }

    if (scan.verdict === 'unsupported') {
      return this.decideOn(gate, ctx, {
        scan: {
          complete: false,
          status: scan.status,
          reason: `the scan cannot give a verdict (${scan.status})`,
        },
      });
    }
    if (scan.verdict === 'pending' && this.d.config.scanSource === 'inspector') {
      return this.waitOrTimeOut(gate, ctx, now, timedOut, `scan ${scan.status}`);
    }

    // Complete (or ECR, whose findings response says itself whether the scan finished): read the findings
    // and, beside them, the token the decision will act with.
    const stateRead = this.pipelineState(gate.key.pipeline, ctx);
    stateRead.catch(() => undefined);
    // The audit chain's head too: the decision's record is appended in the decision's own write.
    const head = this.d.store.auditHead(gate.key.pipeline);
    head.catch(() => undefined);
    let read: FindingsReadResult & { scan?: ScanVerdict };
    try {
      read =
        ctx.prefetch?.repository === image.repository && ctx.prefetch.registryId === registryId
          ? await ctx.prefetch.read
          : await this.readFindings(image.repository, image.digest, registryId, undefined);
    } catch (error) {
      return this.readFailed(gate, ctx, timedOut, error);
    }
    if (read.scan && !read.scan.complete) {
      const state = ecrScanState(read.scan.status);
      if (state === 'unsupported') return this.decideOn(gate, ctx, { scan: read.scan });
      return this.waitOrTimeOut(gate, ctx, now, timedOut, `scan ${read.scan.status}`);
    }
    // Inspector closes an image's findings when it stops scanning it (the image deleted, its re-scan duration
    // over, Inspector turned off): on an image, which cannot change, CLOSED findings are rarely fixed ones, and
    // a scan status stored when it was scanned does not say so. Coverage does (one request, only then).
    if (this.d.config.scanSource === 'inspector' && hasClosedFindings(read.table)) {
      let closed: { state: ScanState; status: string };
      try {
        // A repository whose scan frequency is manual reads as unsupported, whatever the scan time says.
        closed = coverageState(await coverage());
      } catch (error) {
        return this.readFailed(gate, ctx, timedOut, error, 'the scan status');
      }
      if (closed.state === 'unsupported') {
        return this.decideOn(gate, ctx, {
          scan: {
            complete: false,
            status: closed.status,
            reason: `Inspector no longer scans this image (${closed.status}), and has closed findings of it`,
          },
        });
      }
      if (closed.state === 'pending') {
        return this.waitOrTimeOut(gate, ctx, now, timedOut, `closed findings, and coverage ${closed.status}`);
      }
    }
    // Suppressed and closed findings explain a shortfall of the event's counts only if changed since its time.
    const thisRead = readCounts(
      read.table,
      now.toISOString(),
      scan.counts === undefined ? undefined : scan.at,
    );
    const settled = isSettled(thisRead, scan.counts, gate.lastRead, this.d.config.settleMs);
    if (!settled.settled) {
      if (timedOut) {
        return this.decideOn(gate, ctx, {
          findings: read.table,
          conditions: [
            { kind: 'scan-timeout', reason: `the findings did not settle within the wait: ${settled.why}` },
          ],
        });
      }
      // While the findings settle (the whole wait, if they never do), the state already read says whether the
      // approval is still there, and gives its token: a person who answers meanwhile is then recorded.
      // Best effort: a read that fails leaves both to the next sweep.
      const token = await stateRead
        .then(async (stages) => (await this.confirmedToken(gate, stages, now)).token)
        .catch(() => undefined);
      if (token && !token.ok && token.final)
        return this.markStale(gate, token.reason, now, { trigger: ctx.trigger });
      const learnt = learntFrom(gate, token);
      // An unchanged read keeps the earlier one, whose time starts the "a sweep apart" clock: replacing it
      // with each retry would put the agreement off for ever.
      const unchanged = gate.lastRead !== undefined && sameRead(gate.lastRead, thisRead);
      if (unchanged && Object.keys(learnt).length === 0) return report(gate, settled.why);
      const next = this.next(
        gate,
        { ...(unchanged ? {} : { lastRead: thisRead }), ...learnt },
        now,
        `waiting: ${settled.why}`,
      );
      await this.d.store.updateGate(next, gate.version);
      return report(next, settled.why);
    }
    let token: TokenCheck;
    try {
      ({ token } = await this.confirmedToken(gate, await stateRead, now));
    } catch (error) {
      return this.readFailed(gate, ctx, timedOut, error, 'the approval token');
    }
    // The approval is over or superseded (its end event lost, or not here yet): nothing to decide, and a
    // decision recorded now would tell auditors a release was judged that no longer waited.
    if (!token.ok && token.final) return this.markStale(gate, token.reason, now, { trigger: ctx.trigger });
    return this.decideOn(
      gate,
      { ...ctx, token, head },
      {
        findings: read.table,
        why: `${read.table.length} findings in ${read.pages} page(s); ${settled.why}`,
        ...(read.scan ? { scan: read.scan } : {}),
      },
    );
  }

  /**
   * A waiting gate whose token had not shown when it opened: its hash, as soon as a read shows the token. A
   * person may answer the approval before the gate decides, and CloudTrail's record of that call names the
   * token, not the gate: without the hash, who let the release through goes unrecorded. In PARALLEL mode only
   * the action executions carry the token (`withRuns`: `read` already looked at them). Best effort: a failure
   * here only leaves it to the next sweep.
   */
  private async learnTokenHash(
    gate: Gate,
    ctx: DecideContext,
    read: TokenCheck,
    withRuns: boolean,
    now: Date,
  ): Promise<Gate | undefined> {
    try {
      let token = read;
      if (!read.ok && !withRuns) {
        const runs = await this.runsOrGone(gate);
        token = isRuns(runs)
          ? checkToken(
              gate.key,
              await this.pipelineState(gate.key.pipeline, ctx),
              runs,
              gate.actionExecutionId,
            )
          : runs;
      }
      if (!token.ok) return undefined;
      const next = this.next(gate, learntFrom(gate, token), now, 'approval token seen');
      return (await this.d.store.updateGate(next, gate.version)) ? next : undefined;
    } catch (error) {
      this.d.log.warn('reading the approval token of a waiting gate failed; the next sweep tries again', {
        gate: gateId(gate.key),
        error: describeError(error),
      });
      return undefined;
    }
  }

  /**
   * The approval's token as the state shows it; when the state says the approval is over, confirmed with the
   * action's runs (`withRuns`), as the state may still show a run before ours, or lag a moment.
   */
  private async confirmedToken(
    gate: Gate,
    stages: readonly StageStateView[],
    now: Date,
  ): Promise<{ token: TokenCheck; withRuns: boolean }> {
    const token = checkToken(gate.key, stages, undefined, gate.actionExecutionId);
    if (token.ok || (!token.final && !showsAnotherRun(gate, stages)))
      return { token: ofSameApproval(token, gate.tokenHash), withRuns: false };
    // Final, or the state shows another run of the action in the gate's execution (a retried stage): only
    // the gate's own run says whether it is over; unread, the gate waited for its deadline, counted overdue.
    const executions = await this.runsOrGone(gate);
    if (!isRuns(executions)) return { token: executions, withRuns: true };
    return {
      token: ofSameApproval(
        checkToken(gate.key, stages, executions, gate.actionExecutionId, this.justStarted(gate, now)),
        gate.tokenHash,
      ),
      withRuns: true,
    };
  }

  private async waitOrTimeOut(
    gate: Gate,
    ctx: DecideContext,
    now: Date,
    timedOut: boolean,
    why: string,
  ): Promise<GateReport> {
    let token = ctx.token;
    if (ctx.trigger === 'sweep') {
      // While it waits, the execution may be superseded, or the approval answered: the sweep notices, once per
      // pipeline per run, before a timeout decides (and pages someone) for an approval that is gone.
      let withRuns = false;
      try {
        ({ token, withRuns } = await this.confirmedToken(
          gate,
          await this.pipelineState(gate.key.pipeline, ctx),
          now,
        ));
      } catch (error) {
        // The timeout still decides: acting reads the token again, and a wait must not outlive CodePipeline.
        if (!timedOut) throw error;
      }
      if (token && !token.ok && token.final)
        return this.markStale(gate, token.reason, now, { trigger: ctx.trigger });
      if (!timedOut && token && gate.tokenHash === undefined) {
        const learned = await this.learnTokenHash(gate, ctx, token, withRuns, now);
        if (learned) return report(learned, `waiting: ${why}`);
      }
    }
    if (timedOut) {
      return this.decideOn(gate, token ? { ...ctx, token } : ctx, {
        conditions: [
          {
            kind: 'scan-timeout',
            reason: `no completed scan within ${waitMinutesOf(gate)} minutes (${why})`,
          },
        ],
      });
    }
    return report(gate, `waiting: ${why}`);
  }

  private async readFailed(
    gate: Gate,
    ctx: DecideContext,
    timedOut: boolean,
    error: unknown,
    what = 'the findings',
  ): Promise<GateReport> {
    const why = error instanceof ShapeError ? unreadable(error) : describeError(error);
    // A finding the core cannot read (a field of a shape or value the readers do not know) will not read
    // better later: decide now (fail closed). A service error may pass: the gate waits, and the event is
    // retried, then the sweep retries until the deadline.
    if (error instanceof InputError || error instanceof ShapeError || timedOut) {
      return this.decideOn(gate, ctx, {
        conditions: [{ kind: 'error', reason: `reading ${what} failed: ${why}` }],
      });
    }
    this.d.log.warn(`reading ${what} failed; the gate keeps waiting`, { gate: gateId(gate.key), error: why });
    this.d.metrics.count('FindingsReadFailures');
    throw new GateWorkFailed(`gate ${gateId(gate.key)}: reading ${what} failed: ${why}`, [error]);
  }

  /** The image with its registry as the gate knows it: the URI's, else the gate's own account (see tryDecide). */
  private located(gate: Gate, image: GateImage): GateImage {
    return image.registryId === undefined ? { ...image, registryId: this.account(gate) } : image;
  }

  private async scanStatusFor(
    image: GateImage,
    now: Date,
    coverage: () => Promise<CoverageView | undefined>,
  ): Promise<ScanStatus> {
    // Asked of the registry the gate judges: a same-named repository of another account (a delegated
    // administrator's events name its members') has its own status, whose counts are not this image's. An
    // image of no known registry has no status it can be sure of: coverage says, as when no event came.
    const found =
      image.registryId === undefined
        ? undefined
        : await this.d.store.getScan(image.digest, image.registryId, image.repository);
    // The other scanner's status (stored before the source was switched) is not this gate's scan; nor, should
    // one be stored under this key, another registry's.
    const stored =
      found && scanIsOf(found, image) && found.source === this.d.config.scanSource ? found : undefined;
    if (stored && this.d.config.scanSource === 'ecr') return stored;
    if (stored && stored.verdict !== 'pending') {
      // A status stored long ago (a rollback, a build promoted weeks later) says what Inspector found then.
      // Since, it may have stopped scanning the image (deleted, past its re-scan duration) and, three days
      // on, deleted its closed findings: an empty read would then match a clean scan's counts. Coverage says.
      // (Dated ahead of the clock, by a status stored before event times were held to it: asked too.)
      const age = now.getTime() - Date.parse(stored.at);
      if (age >= 0 && age <= STORED_SCAN_RECHECK_MS) return stored;
      const current = coverageState(await coverage());
      if (current.state === 'complete' && stored.verdict === 'complete') return stored;
      // Coverage's verdict, not the stored one: scanned now where it said it could not be (a new Inspector
      // release, say), the findings are read, without counts to compare (the two reads must agree).
      return {
        ...stored,
        status: current.status,
        verdict: current.state,
        ...(current.state === 'complete' ? { counts: undefined } : {}),
        at: now.toISOString(),
      };
    }
    if (this.d.config.scanSource === 'ecr') {
      return {
        digest: image.digest,
        repository: image.repository,
        registryId: image.registryId,
        source: 'ecr',
        status: 'UNKNOWN',
        verdict: 'pending',
        counts: undefined,
        at: now.toISOString(),
      };
    }
    // No scan event seen (it came before Tollgate was deployed, or was lost): Inspector's coverage says.
    const { state, status } = coverageState(await coverage());
    return {
      digest: image.digest,
      repository: image.repository,
      registryId: image.registryId,
      source: 'inspector',
      status,
      verdict: state,
      counts: stored?.counts,
      at: now.toISOString(),
    };
  }

  private async readFindings(
    repository: string,
    digest: string,
    registryId: string | undefined,
    signal: AbortSignal | undefined,
  ): Promise<FindingsReadResult & { scan?: ScanVerdict }> {
    const image = { repository, digest, registryId };
    const options = signal ? { signal } : {};
    if (this.d.config.scanSource === 'ecr') return this.d.findings.ecrScanFindings(image, options);
    return this.d.findings.inspectorFindings(image, options);
  }

  private pipelineState(pipeline: string, ctx: DecideContext): Promise<readonly StageStateView[]> {
    const cached = ctx.stateCache?.get(pipeline);
    if (cached) return cached;
    const read = this.d.approvals.pipelineState(pipeline);
    ctx.stateCache?.set(pipeline, read);
    return read;
  }

  /** Evaluates, stores the decision once (with the gate's move to DECIDED), then acts on it. */
  private async decideOn(
    gate: Gate,
    given: DecideContext,
    input: {
      findings?: FindingTable;
      scan?: ScanVerdict;
      conditions?: GateCondition[];
      why?: string;
    },
  ): Promise<GateReport> {
    // No decision for an approval that is over (its end event lost): its record would tell auditors a release
    // was judged that no longer waited. Callers that have just read the token pass it; for the others (a
    // timeout, a read that failed, a scan that cannot give a verdict) the token is read here, and acting uses
    // that read. A failed read decides all the same (fail closed).
    let ctx = given;
    if (!ctx.token?.ok) {
      const token = await this.freshToken(gate, 'deciding all the same');
      if (token && !token.ok && token.final)
        return this.markStale(gate, token.reason, this.now(), { trigger: given.trigger });
      if (token) ctx = { ...ctx, token };
    }
    const now = this.now();
    const policy = this.compiled ?? this.fallback;
    let evaluation: Evaluation;
    let details: ViolationFindings[];
    let findings = input.findings ?? FindingTable.fromFindings([]);
    const image = gate.image
      ? { repository: gate.image.repository, digest: gate.image.digest, tags: gate.image.tags }
      : undefined;
    try {
      evaluation = evaluate(policy, {
        findings,
        now,
        pipeline: gate.key.pipeline,
        image,
        scan: input.scan,
        conditions: input.conditions,
      });
      details = findingDetails(evaluation);
    } catch (error) {
      // A finding that breaks evaluation (a malformed field surfaces when its row is read) is an error
      // of the gate: decide under onError, with the reason, rather than not at all. The record still names
      // the image and the scan it judged (plain data, not what threw); its counts are of no findings, and say so.
      const reason = `the evaluation failed (no finding is counted in this record): ${describeError(error)}`;
      evaluation = evaluate(policy, {
        findings: FindingTable.fromFindings([]),
        now,
        pipeline: gate.key.pipeline,
        image,
        scan: input.scan,
        conditions: [...(input.conditions ?? []), { kind: 'error', reason }],
      });
      details = [];
      findings = evaluation.table;
    }
    const latencyMs = Math.max(0, now.getTime() - Date.parse(gate.startedAt));
    const decision = boundedDecision({
      key: gate.key,
      record: evaluation.record,
      details,
      image: gate.image,
      trigger: ctx.trigger,
      decidedAt: now.toISOString(),
      latencyMs,
    });
    const { record } = decision;
    const what = `decided ${record.outcome}${input.why ? ` (${input.why})` : ''} on ${ctx.trigger}`;
    const changes: Partial<Gate> = {
      state: 'DECIDED',
      outcome: record.outcome,
      decidedAt: decision.decidedAt,
      summary: record.summary,
      actingUntil: new Date(now.getTime() + this.d.config.leaseMs).toISOString(),
      // A token first seen now (none yet when the approval started): CloudTrail's record of whoever
      // resolves the approval finds the gate by its hash, an escalated one too.
      ...(ctx.token?.ok ? { tokenHash: hashToken(ctx.token.token) } : {}),
    };
    // And the run it is of, for a gate from an event that named none: a later run of the action (a retried
    // stage) is then never taken for the gate's own.
    const run = (base: Gate): Partial<Gate> => {
      const learnt = learntFrom(base, ctx.token);
      return learnt.actionExecutionId === undefined ? {} : { actionExecutionId: learnt.actionExecutionId };
    };
    let next = this.next(gate, { ...changes, ...run(gate) }, now, what);
    let audit: AuditRecord;
    for (let base = gate, attempt = 1; ; attempt++) {
      const written = await this.appending(
        gate.key.pipeline,
        decisionEntry(decision, findings),
        ctx.head,
        (chained) => this.d.store.decide(decision, next, base.version, chained),
      );
      audit = written.record;
      if (written.result) break;
      // Another delivery decided first, or the gate ended: that one acts, or nothing should.
      const current = await this.d.store.getGate(gate.key);
      if (current?.state !== 'WAITING') return report(current ?? gate, 'decided elsewhere');
      // A reviewer recorded (someone answered it), a read recorded (the findings moved): this decision may
      // no longer hold, and the next delivery or sweep decides afresh, with a look at the token first.
      if (!onlyTokenLearnt(current, gate))
        return report(current, 'the gate moved meanwhile: decided afresh later');
      // Only the token's hash learnt (the sweep): nothing this decision rests on changed; deciding now saves a
      // sweep's wait.
      if (attempt >= UPDATE_ATTEMPTS) {
        throw new GateWorkFailed(
          `gate ${gateId(gate.key)}: the decision lost ${attempt} writes in a row`,
          [],
        );
      }
      base = current;
      next = this.next(current, { ...changes, ...run(current) }, now, what);
    }
    this.d.metrics.decision(record.outcome, latencyMs);
    this.publish(
      () => gateStateEvent(next, gate.state, this.region(next), this.account(next)),
      () => decisionEvent(next, decision, this.region(next), this.account(next)),
    );
    // The vulnerability index items go out after the action is done and recorded: derived data, never on
    // the way to PutApprovalResult (nor competing with it). If the invocation dies first, the sweep writes them.
    try {
      return await this.act(next, decision, ctx.token, Promise.resolve(audit));
    } finally {
      await this.indexAudit(audit);
    }
  }

  /** A decision's vulnerability index items; a failure is left to the sweep (the store keeps a marker). */
  private async indexAudit(record: AuditRecord): Promise<void> {
    try {
      await this.d.store.indexAudit(record);
    } catch (error) {
      this.d.metrics.count('AuditIndexFailures');
      this.d.log.warn("writing the audit record's vulnerability index failed; the sweep finishes it", {
        gate: gateId(record.gate),
        seq: record.seq,
        error: describeError(error),
      });
    }
  }

  /** The sweep's second chance for a DECIDED gate whose action failed or whose invocation died. */
  private async reAct(gate: Gate): Promise<GateReport> {
    const now = this.now();
    if (gate.actingUntil !== undefined && Date.parse(gate.actingUntil) > now.getTime()) {
      return report(gate, 'another invocation is acting');
    }
    const head = this.d.store.auditHead(gate.key.pipeline);
    head.catch(() => undefined);
    const decision = await this.d.store.getDecision(gate.key);
    if (!decision)
      throw new GateWorkFailed(`gate ${gateId(gate.key)} is DECIDED without a stored decision`, []);
    // A lease that ran out, rather than given back, was held by an invocation that may have sent the result
    // and then failed to record it (or died): kept on the gate, so that an approval found completed (or over)
    // is recorded as perhaps that result, however many claims later.
    const leaseRanOut =
      gate.resultInDoubt === undefined && gate.actingUntil !== undefined && sendsResult(gate.outcome);
    const claimed = this.next(
      gate,
      {
        actingUntil: new Date(now.getTime() + this.d.config.leaseMs).toISOString(),
        ...(leaseRanOut ? { resultInDoubt: now.toISOString() } : {}),
      },
      now,
      leaseRanOut
        ? 'acting again (sweep): the last lease ran out, not given back: its result may have gone out'
        : 'acting again (sweep)',
    );
    if (!(await this.d.store.updateGate(claimed, gate.version)))
      return report(gate, 'another invocation claimed it');
    return this.act(claimed, decision, undefined, head);
  }

  /**
   * Sends the result or the escalation. The caller holds the lease (`actingUntil`) by a conditional write,
   * so concurrent deliveries do not both act; a failure leaves the gate DECIDED for the sweep.
   */
  private async act(
    gate: Gate,
    decision: StoredDecision,
    known: TokenCheck | undefined,
    head: HeadRead,
  ): Promise<GateReport> {
    const record = decision.record;
    if (record.outcome === 'ESCALATE') {
      // Answered between the decision and now (CloudTrail's record came): nobody is paged for it.
      if (gate.reviewer) {
        // After the decision, an escalation may have gone out with nothing recorded of it (its record failed,
        // or SNS's answer was lost): said so, never "before it went out".
        // CloudTrail's times have whole seconds, the decision's milliseconds (and the clocks differ): an answer
        // within a second of the decision counts as after it.
        const after =
          gate.decidedAt !== undefined && Date.parse(gate.reviewer.at) >= Date.parse(gate.decidedAt) - 1_000;
        const what = after
          ? 'the escalation was recorded as sent (one may have gone out unrecorded)'
          : 'Tollgate decided';
        return this.markStale(gate, answeredBefore(gate.reviewer, what), this.now());
      }
      // Before anyone is paged, the approval must still wait: its end event may be lost, or this a decision
      // the sweep acts on again long after (`known` is undefined then; deciding reads it otherwise). The
      // token's hash comes with it, for CloudTrail's record of the reviewer.
      const token =
        known ?? (await this.freshToken(gate, 'escalating without it: the reviewer may not be recorded'));
      if (token && !token.ok && token.final) return this.markStale(gate, token.reason, this.now());
      // No token yet moments after the start (CodePipeline fills it in a moment later): the escalation is
      // held for it, so that CloudTrail's record of whoever answers finds the gate (the sweep's listing names
      // them too, but without the identity's type or the session's source identity). The lease is
      // given back and the next sweep sends it: not a failure, nothing to retry. Past the listing grace it
      // goes out without.
      if (token && !token.ok && this.justStarted(gate, this.now())) {
        const now = this.now();
        const held = this.next(gate, { actingUntil: undefined }, now, `escalation held: ${token.reason}`);
        const released = await this.d.store.updateGate(held, gate.version).catch((error: unknown) => {
          // Not lost: the lease runs out, and the sweep sends it then.
          this.d.log.warn('giving back the lease of a held escalation failed', {
            gate: gateId(gate.key),
            error: describeError(error),
          });
          return false;
        });
        return report(released ? held : gate, `escalation held for the approval token (${token.reason})`);
      }
      let subject: string;
      let duplicated: boolean;
      try {
        const message = renderEscalation({
          gate,
          decision,
          region: this.region(gate),
          ...this.accountField(gate),
          scanSource: this.d.config.scanSource,
        });
        subject = message.subject;
        duplicated = (await this.d.notifier.publish(message)).mayHaveDuplicated;
      } catch (error) {
        // Unmarked (no topic, a rendering error) is not sent: only SNS's own lost answers are said to be.
        const what = resultMayHaveLanded(error, false)
          ? "sending the escalation (an attempt's answer was lost: it may have gone out all the same)"
          : 'sending the escalation';
        return this.actFailed(gate, what, error);
      }
      const tokenHash = gate.tokenHash ?? (token?.ok ? hashToken(token.token) : undefined);
      if (tokenHash === undefined) {
        this.d.log.warn('escalated without the approval token: the reviewer may not be recorded', {
          gate: gateId(gate.key),
          ...(token && !token.ok ? { reason: token.reason } : {}),
        });
      }
      return this.finishAct(
        gate,
        { notifications: gate.notifications + 1, ...learntFrom(gate, token), tokenHash },
        duplicated
          ? 'escalated: notification sent (an earlier attempt, its answer lost, may have been delivered too)'
          : 'escalated: notification sent',
        {
          decision,
          head,
          action: { kind: 'escalation', status: null, answer: null, subject },
        },
      );
    }

    // Always the stored decision's result: sent again after a send in doubt, never another.
    const result = {
      status: record.outcome === 'APPROVE' ? 'Approved' : 'Rejected',
      summary: approvalSummary(record),
    } as const;
    // The answer that says "perhaps Tollgate's own result, whose answer was lost": CloudTrail's record says.
    // With the token's hash when it is read now: CloudTrail's record of the earlier call then finds the gate
    // (matching none under Tollgate's role, it would page as a borrowed role).
    const lostEarlier = (how: string, learnt: Partial<Gate> = {}): Promise<GateReport> =>
      this.finishAct(
        gate,
        learnt,
        `${how}, and an earlier invocation may have sent ${result.status} with its answer lost or not recorded: by that result or otherwise (CloudTrail's record says who)`,
        {
          decision,
          head,
          action: {
            kind: 'approval-result',
            status: result.status,
            answer: 'completed-after-lost-answer',
            subject: null,
          },
        },
      );
    // A result in doubt is no longer in doubt once CloudTrail named who answered: a person's answer (CloudTrail
    // records only calls that succeeded, and an approval is answered once) means Tollgate's did not land.
    const inDoubt = gate.resultInDoubt !== undefined && gate.reviewer?.tollgate !== false;
    let token = known;
    if (!token?.ok) {
      try {
        token = await this.readToken(gate);
      } catch (error) {
        return this.actFailed(gate, 'reading the approval token', error);
      }
    }
    if (!token.ok) {
      // Over, after a result that may have gone out: perhaps by that result, which is recorded as Tollgate's
      // action (an approval Tollgate answered is not STALE); nothing is sent now.
      if (token.final && inDoubt) return lostEarlier(`the approval is over (${token.reason}); nothing sent`);
      // Nothing was sent: the approval's end (superseded, abandoned) is recorded when its event comes.
      if (token.final) return this.markStale(gate, token.reason, this.now());
      return this.actFailed(gate, 'reading the approval token', new Error(token.reason));
    }
    let answer: PutApprovalOutcome;
    try {
      answer = await this.d.approvals.putApprovalResult({
        pipeline: gate.key.pipeline,
        stage: gate.key.stage,
        action: gate.key.action,
        token: token.token,
        result,
      });
    } catch (error) {
      // It may have landed all the same (a timeout, a 5xx): the gate keeps that in mind, and the token it went
      // with, for whoever finds the approval over. Refused before it went out (throttled), it is not in doubt.
      return this.actFailed(gate, 'sending the approval result', error, {
        ...learntFrom(gate, token),
        ...(resultMayHaveLanded(error)
          ? { resultInDoubt: gate.resultInDoubt ?? this.now().toISOString() }
          : {}),
      });
    }
    // The token was ours (its hash is the gate's, or the gate had none) and a result of this gate may have
    // answered it already: the answer CodePipeline gives to a second result is no sign of someone else.
    if (inDoubt && (answer === 'already-completed' || answer === 'invalid-token'))
      return lostEarlier(
        `sent ${result.status} again and found the approval already completed (${answer})`,
        learntFrom(gate, token),
      );
    const tokenHash = hashToken(token.token);
    const action: AuditAction = { kind: 'approval-result', status: result.status, answer, subject: null };
    const learnt = learntFrom(gate, token);
    if (answer === 'accepted') {
      return this.finishAct(
        gate,
        { approvalResult: result, tokenHash, ...learnt },
        `sent ${result.status} to CodePipeline`,
        { decision, head, action },
      );
    }
    if (answer === 'already-completed') {
      return this.finishAct(
        gate,
        { tokenHash, ...learnt },
        'the approval was already completed by someone else; nothing sent',
        { decision, head, action },
      );
    }
    if (answer === 'completed-after-lost-answer') {
      // Not "someone else": it may well be this result. Who it was comes with CloudTrail's record.
      return this.finishAct(
        gate,
        { tokenHash, ...learnt },
        `sent ${result.status}, the answer was lost, and a retry found the approval completed: by this result or by someone else (CloudTrail's record says who)`,
        { decision, head, action },
      );
    }
    return this.markStale(gate, 'CodePipeline refused the token: the execution moved on', this.now(), {
      done: { decision, head, action },
    });
  }

  /** The approval's token read afresh, with the action executions too: in PARALLEL mode only they carry it. */
  private async readToken(gate: Gate): Promise<TokenCheck> {
    const [stages, executions] = await Promise.all([
      this.d.approvals.pipelineState(gate.key.pipeline),
      this.runsOrGone(gate),
    ]);
    if (!isRuns(executions)) return executions;
    return ofSameApproval(
      checkToken(gate.key, stages, executions, gate.actionExecutionId, this.justStarted(gate, this.now())),
      gate.tokenHash,
    );
  }

  /**
   * The runs of the gate's execution, or, when CodePipeline has no such execution (the pipeline made again
   * under its name, the execution aged out), the final answer that the approval is gone: retried, every sweep
   * would fail on it until the deadline, then decide and act for an approval that no longer exists.
   */
  private async runsOrGone(
    gate: Gate,
  ): Promise<readonly ActionExecutionView[] | Extract<TokenCheck, { ok: false }>> {
    try {
      return await this.d.approvals.actionExecutions(gate.key.pipeline, gate.key.executionId);
    } catch (error) {
      if (error instanceof ExecutionNotFound) return { ok: false, reason: error.message, final: true };
      throw error;
    }
  }

  /** Whether the gate's approval started so recently that its run may not be listed yet (see checkToken). */
  private justStarted(gate: Gate, now: Date): boolean {
    return now.getTime() - Date.parse(gate.startedAt) < LISTING_GRACE_MS;
  }

  /** The token read afresh, or undefined when the read fails (logged): the caller goes on `without` it. */
  private async freshToken(gate: Gate, without: string): Promise<TokenCheck | undefined> {
    try {
      return await this.readToken(gate);
    } catch (error) {
      this.d.log.warn(`reading the approval token failed; ${without}`, {
        gate: gateId(gate.key),
        error: describeError(error),
      });
      return undefined;
    }
  }

  private async finishAct(
    gate: Gate,
    changes: Partial<Gate>,
    what: string,
    done: ActionDone,
  ): Promise<GateReport> {
    const now = this.now();
    const audit = actionEntry(gate, done.decision, done.action, now.toISOString());
    for (let attempt = 0, current = gate; attempt < UPDATE_ATTEMPTS; attempt++) {
      // The result went out: only a closure may have landed meanwhile; keep it, and keep the gate CLOSED.
      const state: GateState = current.state === 'CLOSED' ? 'CLOSED' : 'ACTED';
      // An ACTED gate is asked about by the sweep until its end is known (see `reconcile`). One closed
      // meanwhile is asked about until someone is named, when its end was an answer: its own Rejected,
      // which the closing could not know yet, makes a FAILED end one.
      const reconcileAt =
        state === 'ACTED'
          ? new Date(now.getTime() + RECONCILE_MS).toISOString()
          : (current.reconcileAt ??
            (current.closure === undefined
              ? undefined
              : reconcileAfterEnd(
                  current.closure,
                  'CLOSED',
                  {
                    reviewer: current.reviewer,
                    approvalResult: changes.approvalResult ?? current.approvalResult,
                  },
                  now,
                )));
      const next = this.next(current, { ...changes, state, actingUntil: undefined, reconcileAt }, now, what);
      // A store error here would leave the gate DECIDED with the action done but unrecorded, and the sweep
      // would act again (a second escalation): retried, unlike the writes an event's retry repeats anyway.
      const { result: written } = await this.appending(
        gate.key.pipeline,
        audit,
        done.head,
        (record) => this.recording(gate, () => this.d.store.updateGate(next, current.version, record)),
        (pipeline) => this.recording(gate, () => this.d.store.auditHead(pipeline)),
        CHAIN_ATTEMPTS_AFTER_ACTION,
      );
      const reread = written ? undefined : await this.recording(gate, () => this.d.store.getGate(gate.key));
      // Refused, yet the gate is the one this write made: an attempt that landed with its answer lost, sent
      // again (under a new request token) by `recording`. It is written; writing it again would append the
      // action to the trail twice.
      if (written || (reread !== undefined && isWriteOf(reread, next))) {
        if (current.state !== 'CLOSED') {
          this.publish(() => gateStateEvent(next, current.state, this.region(next), this.account(next)));
        } else if (
          next.approvalResult?.status !== current.approvalResult?.status ||
          next.approvalResult?.summary !== current.approvalResult?.summary
        ) {
          // Closed meanwhile: no state changed, but the Gate Closed already sent lacked the result sent.
          this.publish(() => gateClosedEvent(next, this.region(next), this.account(next)));
        }
        return report(next, what);
      }
      if (!reread) break;
      current = reread;
    }
    throw new GateWorkFailed(`gate ${gateId(gate.key)}: acted (${what}) but could not record it`, []);
  }

  /** A store call after an action: retried with backoff, since failing it makes the sweep act again. */
  private async recording<T>(gate: Gate, call: () => Promise<T>): Promise<T> {
    const { recordAttempts, recordBackoffMs } = this.d.config;
    for (let attempt = 1; ; attempt++) {
      try {
        return await call();
      } catch (error) {
        // The chain moved on: the caller re-chains; the same write again would fail the same way.
        if (error instanceof ChainHeadMovedError) throw error;
        if (attempt >= recordAttempts) {
          this.d.log.error('acted, but could not record it: the sweep will act again', {
            gate: gateId(gate.key),
            error: describeError(error),
          });
          throw error;
        }
        this.d.log.warn('recording the action failed; trying again', {
          gate: gateId(gate.key),
          attempt,
          error: describeError(error),
        });
        const ceiling = Math.min(2_000, recordBackoffMs * 2 ** (attempt - 1));
        await new Promise((resolve) => setTimeout(resolve, Math.floor(Math.random() * ceiling)));
      }
    }
  }

  private async actFailed(
    gate: Gate,
    what: string,
    error: unknown,
    learnt: Partial<Gate> = {},
  ): Promise<never> {
    this.d.log.error(`${what} failed; the sweep will act again`, {
      gate: gateId(gate.key),
      error: describeError(error),
    });
    this.d.metrics.count('ActFailures');
    // Nothing of this invocation is in flight any more: the lease is given back, so the next sweep acts
    // again at once rather than when the lease runs out. Not given back (a lost race): it runs out, which
    // the sweep takes for a result in doubt as well.
    const released = this.next(
      gate,
      { actingUntil: undefined, ...learnt },
      this.now(),
      `acting failed: ${what}`,
    );
    await this.d.store.updateGate(released, gate.version).catch(() => false);
    throw new GateWorkFailed(`gate ${gateId(gate.key)}: ${what} failed: ${describeError(error)}`, [error]);
  }

  /**
   * `done`: the refused result to record with it. `trigger`: what was deciding the gate, when something was; a
   * gate that moved meanwhile is taken up again as that (its decision, if it makes one now, names what
   * triggered it, as Tollgate's events document).
   */
  private async markStale(
    gate: Gate,
    reason: string,
    now: Date,
    { done, trigger = 'sweep' }: { readonly done?: ActionDone; readonly trigger?: string } = {},
  ): Promise<GateReport> {
    if (done) return this.markStaleAfterRefusal(gate, reason, now, done);
    const next = this.next(
      gate,
      { state: 'STALE', staleReason: reason, actingUntil: undefined, reconcileAt: reconcileStale(gate, now) },
      now,
      `stale: ${reason}`,
    );
    if (await this.d.store.updateGate(next, gate.version)) {
      this.publish(() => gateStateEvent(next, gate.state, this.region(next), this.account(next)));
      return report(next, reason);
    }
    // Acting, under its own lease, the gate lost the write to another (CloudTrail's reviewer, say): still its
    // to mark, or the lease would only run out, and be taken for a result that may have gone out.
    const current = await this.d.store.getGate(gate.key);
    if (
      current?.state === 'DECIDED' &&
      gate.state === 'DECIDED' &&
      gate.actingUntil !== undefined &&
      current.actingUntil === gate.actingUntil
    ) {
      return this.markStale(current, reason, now, { trigger });
    }
    return current ? this.resume(current, trigger) : this.resumeKey(gate.key, trigger);
  }

  /**
   * After a result CodePipeline refused, the refusal is an action of its own in the audit trail, written with
   * the gate's move to STALE. The gate may move meanwhile (its end event came while the result was refused,
   * or CloudTrail's record of a reviewer): the action is recorded all the same, on the gate as it is then; a
   * gate that ended keeps its state.
   */
  private async markStaleAfterRefusal(
    gate: Gate,
    reason: string,
    now: Date,
    done: ActionDone,
  ): Promise<GateReport> {
    const audit = actionEntry(gate, done.decision, done.action, now.toISOString());
    for (let attempt = 0, current = gate; attempt < UPDATE_ATTEMPTS; attempt++) {
      const ended = current.state === 'CLOSED';
      const next = ended
        ? this.next(current, { actingUntil: undefined }, now, `${reason} (the approval had ended)`)
        : this.next(
            current,
            {
              state: 'STALE',
              staleReason: reason,
              actingUntil: undefined,
              reconcileAt: reconcileStale(current, now),
            },
            now,
            `stale: ${reason}`,
          );
      const { result: written } = await this.appending(gate.key.pipeline, audit, done.head, (record) =>
        this.d.store.updateGate(next, current.version, record),
      );
      if (written) {
        if (next.state !== current.state)
          this.publish(() => gateStateEvent(next, current.state, this.region(next), this.account(next)));
        return report(next, reason);
      }
      const reread = await this.d.store.getGate(gate.key);
      // Another invocation acted on it (the lease had passed on: a claim or a recorded action changes it): its
      // own action is recorded there.
      if (
        !reread ||
        (reread.state !== 'DECIDED' && reread.state !== 'CLOSED') ||
        reread.actingUntil !== gate.actingUntil
      )
        return report(reread ?? gate, 'acted elsewhere');
      current = reread;
    }
    throw new GateWorkFailed(`gate ${gateId(gate.key)}: could not record the refused result`, []);
  }

  // ── plumbing ────────────────────────────────────────────────────────────────────────────────────────

  /**
   * Runs `work` for every gate, a few at a time; one gate's failure does not stop the others. With
   * `rethrow`, failures are thrown together at the end (the event is then retried or dead-lettered).
   */
  private async forEach(
    gates: readonly Gate[],
    work: (gate: Gate) => Promise<GateReport>,
    rethrow = true,
    skip: () => boolean = () => false,
  ): Promise<readonly GateReport[]> {
    const reports: GateReport[] = [];
    const failures: unknown[] = [];
    await inTurn(gates, this.d.config.sweepConcurrency, async (gate) => {
      if (skip()) return;
      try {
        reports.push(await work(gate));
      } catch (error) {
        failures.push(error);
        this.d.log.error('gate work failed', { gate: gateId(gate.key), error: describeError(error) });
      }
    });
    if (failures.length > 0 && rethrow) {
      throw new GateWorkFailed(`${failures.length} of ${gates.length} gate(s) failed`, failures);
    }
    return reports;
  }
}

/** An action taken on a decision, for its audit record. */
interface ActionDone {
  readonly decision: StoredDecision;
  readonly action: AuditAction;
  /** The chain head, known or being read (undefined: read it when appending). */
  readonly head: HeadRead;
}

/** Why a gate someone answered before Tollgate did is STALE. */
function answeredBefore(reviewer: NonNullable<Gate['reviewer']>, what: string): string {
  return `the approval was answered (${reviewer.status ?? 'resolved'}) by ${reviewer.identity} before ${what}`;
}

/** Whether a decision of this outcome is sent as a result (an escalation leaves the answer to a person). */
function sendsResult(outcome: Gate['outcome']): boolean {
  return outcome === 'APPROVE' || outcome === 'REJECT';
}

/** Whether a waiting gate read again differs from the one read before only in what the sweep learns: the token. */
function onlyTokenLearnt(current: Gate, read: Gate): boolean {
  return (
    current.reviewer?.at === read.reviewer?.at &&
    current.lastRead?.at === read.lastRead?.at &&
    current.deadline === read.deadline &&
    // The run learnt with the token (a gate whose event named none) is the token's too.
    (current.actionExecutionId === read.actionExecutionId || read.actionExecutionId === undefined)
  );
}

/**
 * What a token read teaches a gate that lacked it: the token's hash, and the run it is of (a gate from an
 * event that named no run, whose token did not show at its start, would otherwise never know it).
 */
function learntFrom(gate: Gate, token: TokenCheck | undefined): Partial<Gate> {
  if (!token?.ok) return {};
  return {
    ...(gate.tokenHash === undefined ? { tokenHash: hashToken(token.token) } : {}),
    ...(gate.actionExecutionId === undefined && token.actionExecutionId !== undefined
      ? { actionExecutionId: token.actionExecutionId }
      : {}),
  };
}

/**
 * An answer the readers cannot parse (a finding's field of a value they do not know), said as a findings file's
 * problem is: where in the answer (a page's `findings[i].field`), what was expected, what came.
 */
function unreadable(error: ShapeError): string {
  const path = formatPath(error.path);
  return `the answer does not read: ${path === '' ? '' : `${path}: `}expected ${error.expected}; got ${shown(error.value)}`;
}

/**
 * An image URI of another region or account. Tollgate reads ECR and Inspector in its own account and region
 * only (its role allows no more), so such an image could never show a scan: say so now, not after the wait.
 */
function outsideReach(
  ref: ImageReference,
  where: { readonly account: string | undefined; readonly region: string },
): string | undefined {
  if (ref.region !== undefined && ref.region !== where.region) {
    return `the image ${ref.text} is in region ${ref.region}; Tollgate judges images of its own region (${where.region}): replicate the image there, or deploy Tollgate in ${ref.region}`;
  }
  if (ref.registryId !== undefined && where.account !== undefined && ref.registryId !== where.account) {
    return `the image ${ref.text} is in the registry of account ${ref.registryId}; Tollgate judges images of its own account (${where.account})`;
  }
  return undefined;
}

function short(digest: string): string {
  return digest.length > 19 ? `${digest.slice(0, 19)}…` : digest;
}

const SEVERITY_RANK = new Map<string, number>(SEVERITIES.map((s, i) => [s, i]));

/** `stored` is the gate `written` made: its version, its time to the millisecond, its last entry. */
/** The stage state names another run of the gate's action in the gate's own execution. */
function showsAnotherRun(gate: Gate, stages: readonly StageStateView[]): boolean {
  const stage = stages.find((s) => s.name === gate.key.stage);
  const run = stage?.actions.find((a) => a.name === gate.key.action)?.actionExecutionId;
  return (
    gate.actionExecutionId !== undefined &&
    stage?.executionId === gate.key.executionId &&
    run !== undefined &&
    run !== gate.actionExecutionId
  );
}

/** The wait the gate was opened with (its deadline is fixed then), not the policy's now: a redeploy may change it. */
function waitMinutesOf(gate: Gate): number {
  return Math.round((Date.parse(gate.deadline) - Date.parse(gate.startedAt)) / 60_000);
}

function isWriteOf(stored: Gate, written: Gate): boolean {
  const last = (g: Gate) => g.timeline.at(-1);
  return (
    stored.version === written.version &&
    stored.updatedAt === written.updatedAt &&
    last(stored)?.what === last(written)?.what &&
    last(stored)?.at === last(written)?.at
  );
}

/** The findings behind each violation and warning, worst first, bounded for storage and messages. */
function findingDetails(evaluation: Evaluation): ViolationFindings[] {
  const table = evaluation.table;
  return [...evaluation.violations, ...evaluation.warnings].map(({ violation, rows }) => {
    const shown: FindingSummary[] = [];
    for (const i of rows) {
      const f = table.row(i);
      const p = f.packages[0];
      shown.push({
        vulnerabilityId: f.vulnerabilityId,
        package: p?.name,
        installedVersion: p?.version,
        fixedInVersion: p?.fixedInVersion,
        severity: f.severity,
        score: f.score,
        epss: f.epss,
        exploitAvailable: f.exploitAvailable,
      });
    }
    shown.sort(
      (a, b) =>
        (SEVERITY_RANK.get(a.severity) ?? 9) - (SEVERITY_RANK.get(b.severity) ?? 9) ||
        (b.score ?? -1) - (a.score ?? -1) ||
        a.vulnerabilityId.localeCompare(b.vulnerabilityId),
    );
    return {
      rule: violation.rule,
      shown: shown.slice(0, DETAIL_LIMIT),
      more: Math.max(0, shown.length - DETAIL_LIMIT),
    };
  });
}

export type { DecisionRecord };

/** `runsOrGone`'s runs, not its answer that the execution is gone. */
function isRuns(
  value: readonly ActionExecutionView[] | Extract<TokenCheck, { ok: false }>,
): value is readonly ActionExecutionView[] {
  return Array.isArray(value);
}
