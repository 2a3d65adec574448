import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import {
  ApprovalAlreadyCompletedException,
  InvalidApprovalTokenException,
  PipelineNotFoundException,
} from '@aws-sdk/client-codepipeline';
import { ImageNotFoundException, ScanNotFoundException } from '@aws-sdk/client-ecr';
import { ScanStatusReason } from '@aws-sdk/client-inspector2';
import type { ClockPort } from '../shared/gate/ports.js';
import { coverageState } from '../shared/gate/scan.js';
import type { LoadedScenario, ScenarioApproval } from './scenario.js';
import { findingsDocument } from './scenario.js';
import { asSdk } from './sdk-shape.js';

/*
 * The AWS account a scenario describes, answering the SDK's commands. The simulator hands the real AWS
 * adapters SDK clients whose requests this world answers (a middleware in place of the HTTP call), so a
 * replay exercises the same pagination, error mapping and retries as Lambda does, and the world can count,
 * delay and fail calls.
 */

export const TOLLGATE_ROLE = 'TollgateGateRole';

type Json = Record<string, unknown>;

interface ApprovalSlot {
  readonly pipeline: string;
  readonly stage: string;
  readonly action: string;
  executionId: string;
  token: string;
  customData: string | undefined;
  variables: Record<string, string>;
  executionMode: ScenarioApproval['executionMode'];
  status: 'InProgress' | 'Succeeded' | 'Failed' | 'Abandoned' | undefined;
  actionExecutionId: string;
  startedAt: Date;
  /** Once the run ended: when, and (a result sent) who sent it with which summary, as the listing shows. */
  ended?: RunEnd | undefined;
  history: {
    executionId: string;
    status: string;
    actionExecutionId: string;
    customData: string | undefined;
    startedAt: Date;
    ended?: RunEnd | undefined;
  }[];
}

interface RunEnd {
  readonly at: Date;
  readonly updatedBy?: string;
  readonly summary?: string;
}

interface Coverage {
  repository: string;
  statusCode: 'ACTIVE' | 'INACTIVE';
  reason: string;
  at: Date;
  /** Whether Inspector scanned the image: only then does coverage give a `lastScannedAt`. */
  scanned: boolean;
}

export interface InjectedFailure {
  readonly operation: string;
  readonly error: string;
  remaining: number;
  readonly page: number | undefined;
  /** Matching calls to let through before the first failure (to fail, say, only the second PutItem). */
  skip: number;
  /**
   * The call lands (the service performs it) and only its answer is lost: the client hears `error` (a
   * timeout, a 5xx) for a request that took effect. Otherwise the service never sees the request.
   */
  readonly landed?: boolean | undefined;
}

export interface CallRecord {
  readonly operation: string;
  /** Wall-clock milliseconds since the world was made. */
  readonly start: number;
  end: number;
  /** 1 + the depth of the deepest call that had ended when this one started: the chain of sequential calls. */
  readonly depth: number;
  failed: boolean;
  /** The request, as the client sent it (the store's calls: as the document client sent it). */
  readonly input: Json;
  /** The failure was injected (the service never saw the request, unless `landed`), not the service's own answer. */
  injected: boolean;
  /** The injected failure came after the service performed the call: it landed, only its answer was lost. */
  landed?: boolean;
  /** The function whose invocation made the call (`World.invoking`); undefined for the simulator's own. */
  readonly caller: string | undefined;
}

/** Which function's invocation is running, through its awaits (handlers may run concurrently). */
const invocation = new AsyncLocalStorage<string>();

export interface SentMessage {
  readonly subject: string;
  readonly message: unknown;
  readonly at: string;
}

export interface WorldOptions {
  /** Added to every call, to measure the critical path as a real account would shape it. */
  readonly latencyMs?: number;
  /** At most this many items per page of a paginated read (the service may return fewer than asked). */
  readonly pageSize?: number;
  /**
   * Read lag (simulated milliseconds; default 0, none): CodePipeline's reads are eventually consistent. For
   * this long after an approval action starts, GetPipelineState still shows what it showed before: the
   * stage's previous execution and the action's previous run (no token), or, for an action that never ran
   * before, its run in progress without its `token`; and ListActionExecutions does not list the new run yet.
   * After the lag both show the truth.
   */
  readonly readLagMs?: number;
}

export class World {
  private readonly slots: ApprovalSlot[] = [];
  private readonly images = new Map<string, string>();
  /** `repository@digest` → the image's manifest media type. */
  private readonly manifests = new Map<string, string>();
  private readonly coverage = new Map<string, Coverage>();
  private readonly ecrScans = new Map<string, { status: string; description: string }>();
  private readonly findings = new Map<string, unknown[]>();
  private readonly ecrDocs = new Map<string, Json>();
  readonly failures: InjectedFailure[] = [];
  readonly calls: CallRecord[] = [];
  readonly messages: SentMessage[] = [];
  readonly published: Json[] = [];
  /** Events the world itself caused (CodePipeline's after a result, CloudTrail's records), to deliver next. */
  readonly outbox: Json[] = [];
  private readonly epoch = performance.now();
  /** While above 0, calls go straight through: neither counted nor failed (the simulator's own reads). */
  private unobservedDepth = 0;
  /** Reads of GetPipelineState and ListActionExecutions that the read lag kept from showing a run. */
  laggedReads = 0;
  /** `showFormerExecution`: by pipeline, then stage. */
  private readonly formerExecutions = new Map<string, Map<string, { executionId: string; run: string }>>();
  /** The scenario's images are there from its start: pushed before any of its approvals started. */
  private readonly pushedAt: Date;

  constructor(
    private readonly loaded: LoadedScenario,
    private readonly clock: ClockPort,
    private readonly options: WorldOptions = {},
  ) {
    const { world } = loaded.scenario;
    this.pushedAt = clock.now();
    for (const a of world.approvals) this.slots.push(this.slot(a, undefined));
    for (const image of world.images) {
      for (const tag of image.tags) this.images.set(`${image.repository}:${tag}`, image.digest);
      this.manifests.set(`${image.repository}@${image.digest}`, image.mediaType);
    }
    for (const [digest, source] of Object.entries(world.findings)) this.setFindings(digest, source, false);
    for (const scan of world.scans) this.setScan(scan.digest, scan.repository, scan.status);
  }

  get account(): string {
    return this.loaded.scenario.account;
  }

  get region(): string {
    return this.loaded.scenario.region;
  }

  now(): Date {
    return this.clock.now();
  }

  // ── changes of the world (scenario steps) ───────────────────────────────────────────────────────────

  private slot(a: ScenarioApproval, status: ApprovalSlot['status']): ApprovalSlot {
    return {
      pipeline: a.pipeline,
      stage: a.stage,
      action: a.action,
      executionId: a.executionId,
      token: a.token ?? randomUUID(),
      customData: a.customData,
      variables: { ...(a.variables ?? {}) },
      executionMode: a.executionMode,
      status,
      actionExecutionId: randomUUID(),
      startedAt: this.clock.now(),
      history: [],
    };
  }

  /**
   * The PARALLEL-mode pipeline's state shows, for this stage, an execution from before it was switched to
   * PARALLEL (the state keeps it): that execution Succeeded, each action's run with it, no token. Scenarios
   * do not describe a pipeline's past modes: tests set it from `SimulationOptions.onWorld`.
   */
  showFormerExecution(pipeline: string, stage: string, executionId: string): void {
    const stages = this.formerExecutions.get(pipeline) ?? new Map();
    stages.set(stage, { executionId, run: randomUUID() });
    this.formerExecutions.set(pipeline, stages);
  }

  findSlot(pipeline: string, stage: string, action: string): ApprovalSlot | undefined {
    return this.slots.find((s) => s.pipeline === pipeline && s.stage === stage && s.action === action);
  }

  /** The approval action starts: it shows in progress, with its token. */
  startApproval(key: { pipeline: string; stage: string; action: string; executionId: string }): ApprovalSlot {
    const slot = this.findSlot(key.pipeline, key.stage, key.action);
    if (!slot) throw new Error(`the world has no approval ${key.pipeline}/${key.stage}/${key.action}`);
    if (slot.executionId !== key.executionId) {
      throw new Error(
        `approval ${key.pipeline}/${key.stage}/${key.action} runs execution ${slot.executionId}, not ${key.executionId}`,
      );
    }
    slot.status = 'InProgress';
    slot.startedAt = this.clock.now();
    slot.ended = undefined;
    return slot;
  }

  /** A newer execution takes the stage: the waiting action of the older one is abandoned. */
  supersede(a: ScenarioApproval): { previous: ApprovalSlot | undefined; next: ApprovalSlot } {
    const slot = this.findSlot(a.pipeline, a.stage, a.action);
    const next = this.slot(a, 'InProgress');
    if (!slot) {
      this.slots.push(next);
      return { previous: undefined, next };
    }
    const previous = { ...slot, history: [...slot.history] };
    slot.history.push({
      executionId: slot.executionId,
      status: slot.status === 'InProgress' ? 'Abandoned' : (slot.status ?? 'Abandoned'),
      actionExecutionId: slot.actionExecutionId,
      customData: slot.customData,
      startedAt: slot.startedAt,
      ended: slot.ended ?? { at: this.clock.now() },
    });
    Object.assign(slot, { ...next, ended: undefined, history: slot.history });
    return { previous, next: slot };
  }

  /**
   * The action of `executionId` ends without a result. An earlier execution's (superseded) run ends in the
   * history: the execution running now goes on.
   */
  endApproval(
    key: { pipeline: string; stage: string; action: string; executionId: string },
    status: 'Failed' | 'Abandoned',
  ): { pipeline: string; stage: string; action: string; executionId: string; actionExecutionId: string } {
    const slot = this.findSlot(key.pipeline, key.stage, key.action);
    if (!slot) throw new Error(`the world has no approval ${key.pipeline}/${key.stage}/${key.action}`);
    const past = slot.history.findLast((h) => h.executionId === key.executionId);
    if (slot.executionId !== key.executionId && past) {
      past.status = status;
      past.ended = { at: this.clock.now() };
      return { ...key, actionExecutionId: past.actionExecutionId };
    }
    slot.status = status;
    slot.ended = { at: this.clock.now() };
    return { ...key, actionExecutionId: slot.actionExecutionId };
  }

  setScan(digest: string, repository: string, status: string): void {
    const at = this.clock.now();
    if (INSPECTOR_REASONS.has(status)) {
      // Inspector's own coverage reason, shown as Inspector shows it: inactive only when it ends the scanning,
      // a scan time only for an image it scanned; a manual scan frequency lists the image, active, unscanned.
      const scanned = SCANNED_REASONS.has(status);
      const state = coverageState({
        statusCode: 'ACTIVE',
        reason: status,
        lastScannedAt: scanned ? at.toISOString() : undefined,
      }).state;
      this.coverage.set(digest, {
        repository,
        statusCode: state === 'unsupported' && status !== 'SCAN_FREQUENCY_MANUAL' ? 'INACTIVE' : 'ACTIVE',
        reason: status,
        at,
        scanned,
      });
    } else if (/COMPLETE$/.test(status) || status === 'ACTIVE') {
      this.coverage.set(digest, {
        repository,
        statusCode: 'ACTIVE',
        reason: 'SUCCESSFUL',
        at,
        scanned: true,
      });
    } else if (status === 'PENDING_INITIAL_SCAN' || status === 'IN_PROGRESS' || status === 'PENDING') {
      this.coverage.set(digest, {
        repository,
        statusCode: 'ACTIVE',
        reason: 'PENDING_INITIAL_SCAN',
        at,
        scanned: false,
      });
    } else {
      this.coverage.set(digest, { repository, statusCode: 'INACTIVE', reason: status, at, scanned: false });
    }
    this.ecrScans.set(digest, { status, description: `scan ${status.toLowerCase()}` });
  }

  setFindings(digest: string, source: { file: string } | { findings: unknown[] }, append: boolean): void {
    // Held as the SDK hands them over (Dates), converted here once: a replay's answers are not charged for it.
    const doc = asSdk(
      'file' in source ? findingsDocument(this.loaded, source.file) : { findings: source.findings },
    );
    const list = findingsOf(doc);
    if (isObject(doc) && isObject(doc.imageScanFindings)) this.ecrDocs.set(digest, doc);
    const had = append ? (this.findings.get(digest) ?? []) : [];
    this.findings.set(digest, [...had, ...list]);
  }

  fail(failure: Omit<InjectedFailure, 'remaining' | 'skip'> & { times: number; skip?: number }): void {
    this.failures.push({
      operation: failure.operation,
      error: failure.error,
      remaining: failure.times,
      page: failure.page,
      skip: failure.skip ?? 0,
      landed: failure.landed === true,
    });
  }

  /** The faults stop: every injected failure not yet used up is dropped. */
  clearFailures(): void {
    this.failures.length = 0;
  }

  /** Runs `work` (the simulator's own reads of the store) without counting or failing its calls. */
  async unobserved<T>(work: () => Promise<T>): Promise<T> {
    this.unobservedDepth++;
    try {
      return await work();
    } finally {
      this.unobservedDepth--;
    }
  }

  // ── the SDK's commands ──────────────────────────────────────────────────────────────────────────────

  /** Answers one SDK command, as the service would; counts it, delays it, and fails it when told to. */
  answer(command: string, input: Json): Promise<Json> {
    const operation = command.replace(/Command$/, '');
    return this.around(
      operation,
      async () => ({
        ...this.dispatch(operation, input),
        $metadata: { httpStatusCode: 200, requestId: randomUUID() },
      }),
      input,
    );
  }

  /** Runs one invocation of `fn`: the calls it makes are recorded as its (`CallRecord.caller`). */
  invoking<T>(fn: string, work: () => Promise<T>): Promise<T> {
    return invocation.run(fn, work);
  }

  /**
   * Counts, delays and (when told to) fails one call; `work` answers it: the world itself, or dynalite for
   * the store's calls, so that the critical path counts those too.
   */
  async around<T>(operation: string, work: () => Promise<T>, input: Json = {}): Promise<T> {
    if (this.unobservedDepth > 0) return work();
    const start = performance.now() - this.epoch;
    const depth =
      1 + this.calls.reduce((d, c) => (c.end <= start && c.end > 0 ? Math.max(d, c.depth) : d), 0);
    const record: CallRecord = {
      operation,
      start,
      end: 0,
      depth,
      failed: false,
      input,
      injected: false,
      landed: false,
      caller: invocation.getStore(),
    };
    this.calls.push(record);
    try {
      if (this.options.latencyMs) await new Promise((r) => setTimeout(r, this.options.latencyMs));
      const injected = this.injectedFailure(operation, input);
      if (injected?.landed) {
        // The service performs the call (its own refusal, if any, is the answer the client hears); only a
        // call that took effect has its answer replaced by the failure.
        await work();
        record.injected = true;
        record.landed = true;
        throw injected.error;
      }
      if (injected) {
        record.injected = true;
        throw injected.error;
      }
      return await work();
    } catch (e) {
      record.failed = true;
      throw e;
    } finally {
      record.end = performance.now() - this.epoch;
    }
  }

  /** The error to fail this call with, when an injected failure matches it (and whether the call lands first). */
  private injectedFailure(operation: string, input: Json): { error: Error; landed: boolean } | undefined {
    const page = pageOf(input, this.options.pageSize);
    const failure = this.failures.find(
      (f) => f.remaining > 0 && f.operation === operation && (f.page === undefined || f.page === page),
    );
    if (!failure) return undefined;
    if (failure.skip > 0) {
      failure.skip--;
      return undefined;
    }
    failure.remaining--;
    const landed = failure.landed === true;
    return {
      error: serviceError(
        failure.error,
        `${operation}: injected ${failure.error}${landed ? ' after the call landed' : ''}`,
      ),
      landed,
    };
  }

  private dispatch(operation: string, input: Json): Json {
    switch (operation) {
      case 'GetPipelineState':
        return this.getPipelineState(String(input.name));
      case 'ListActionExecutions':
        return this.listActionExecutions(input);
      case 'ListPipelines': {
        const names = [...new Set(this.slots.map((s) => s.pipeline))].sort();
        const summaries = names.map((name) => ({
          name,
          version: 1,
          pipelineType: 'V2',
          executionMode: this.slots.find((s) => s.pipeline === name)?.executionMode ?? 'SUPERSEDED',
        }));
        return paged(summaries, input, 'pipelines', this.pageSize(input, 1000));
      }
      case 'ListPipelineExecutions':
        return this.listPipelineExecutions(input);
      case 'GetPipelineExecution':
        return this.getPipelineExecution(String(input.pipelineName), String(input.pipelineExecutionId));
      case 'PutApprovalResult':
        return this.putApprovalResult(input);
      case 'DescribeImages':
        return this.describeImages(input);
      case 'DescribeImageScanFindings':
        return this.describeImageScanFindings(input);
      case 'ListCoverage':
        return this.listCoverage(input);
      case 'ListFindings':
        return this.listFindings(input);
      case 'Publish':
        this.messages.push({
          subject: String(input.Subject ?? ''),
          message: parseJson(String(input.Message ?? '')),
          at: this.clock.now().toISOString(),
        });
        return { MessageId: randomUUID() };
      case 'PutEvents': {
        const entries = Array.isArray(input.Entries) ? (input.Entries as Json[]) : [];
        for (const e of entries) this.published.push({ ...e, Detail: parseJson(String(e.Detail ?? '{}')) });
        return { FailedEntryCount: 0, Entries: entries.map(() => ({ EventId: randomUUID() })) };
      }
      default:
        throw serviceError('UnknownOperationException', `the simulator does not answer ${operation}`);
    }
  }

  private pipelineSlots(name: string): ApprovalSlot[] {
    const slots = this.slots.filter((s) => s.pipeline === name);
    if (slots.length === 0) {
      throw new PipelineNotFoundException({
        message: `Pipeline not found: ${name}`,
        $metadata: { httpStatusCode: 400 },
      });
    }
    return slots;
  }

  /** The read lag is on and the slot's current run started less than `readLagMs` ago: reads do not show it yet. */
  lagging(slot: { status: ApprovalSlot['status']; startedAt: Date }): boolean {
    const lag = this.options.readLagMs ?? 0;
    return (
      lag > 0 && slot.status !== undefined && this.clock.now().getTime() - slot.startedAt.getTime() < lag
    );
  }

  private getPipelineState(name: string): Json {
    const slots = this.pipelineSlots(name);
    const stages = [...new Set(slots.map((s) => s.stage))];
    return {
      pipelineName: name,
      pipelineVersion: 1,
      stageStates: stages.map((stage) => {
        const here = slots.filter((s) => s.stage === stage);
        // In PARALLEL mode the state shows no execution of its own: each execution runs apart.
        const parallel = here[0]!.executionMode === 'PARALLEL';
        const former = parallel ? this.formerExecutions.get(name)?.get(stage) : undefined;
        // What the state shows of each action: its current run, or, while reads lag behind its start, the run
        // before it (no token: it is over) or, with none before, the current run without its token yet.
        const shown = here.map((s) => {
          const previous = s.history.at(-1);
          if (!this.lagging(s)) {
            return { s, executionId: s.executionId, run: s, status: s.status, fresh: true };
          }
          return previous
            ? { s, executionId: previous.executionId, run: previous, status: previous.status, fresh: false }
            : { s, executionId: s.executionId, run: s, status: s.status, fresh: false };
        });
        const first = shown[0]!;
        if (shown.some((x) => !x.fresh)) this.laggedReads++;
        return {
          stageName: stage,
          inboundExecutions: [],
          inboundTransitionState: { enabled: true },
          actionStates: shown.map(({ s, run, status, fresh }) => ({
            actionName: s.action,
            ...(status && !parallel
              ? {
                  latestExecution: {
                    actionExecutionId: run.actionExecutionId,
                    status,
                    lastStatusChange: run.startedAt,
                    ...(status === 'InProgress' && fresh ? { token: s.token } : {}),
                  },
                }
              : {}),
            ...(former
              ? {
                  latestExecution: {
                    actionExecutionId: former.run,
                    status: 'Succeeded',
                    lastStatusChange: this.pushedAt,
                  },
                }
              : {}),
          })),
          ...(former
            ? {
                latestExecution: {
                  pipelineExecutionId: former.executionId,
                  status: 'Succeeded',
                  type: 'STANDARD',
                },
              }
            : {}),
          ...(parallel || !first.status
            ? {}
            : {
                latestExecution: {
                  pipelineExecutionId: first.executionId,
                  status: first.fresh ? first.status : stageStatus(first.status),
                  type: 'STANDARD',
                },
              }),
        };
      }),
      created: new Date(0),
      updated: this.clock.now(),
    };
  }

  private listActionExecutions(input: Json): Json {
    const slots = this.pipelineSlots(String(input.pipelineName));
    const filter = isObject(input.filter) ? input.filter : {};
    // The one filter the adapters send; another (latestInPipelineExecution, …) would be ignored here.
    expectKeys('ListActionExecutions filter', filter, ['pipelineExecutionId']);
    const executionId = filter.pipelineExecutionId;
    const details: Json[] = [];
    if (slots.some((s) => this.lagging(s) && (executionId === undefined || s.executionId === executionId))) {
      this.laggedReads++;
    }
    for (const s of slots) {
      const runs = [
        ...s.history,
        // While reads lag behind the run's start, the listing does not have it yet.
        ...(s.status && !this.lagging(s)
          ? [
              {
                executionId: s.executionId,
                status: s.status,
                actionExecutionId: s.actionExecutionId,
                customData: s.customData,
                startedAt: s.startedAt,
                ended: s.status === 'InProgress' ? undefined : s.ended,
              },
            ]
          : []),
      ];
      for (const run of runs) {
        if (executionId !== undefined && run.executionId !== executionId) continue;
        const current = run.executionId === s.executionId;
        details.push({
          pipelineExecutionId: run.executionId,
          actionExecutionId: run.actionExecutionId,
          pipelineVersion: 1,
          stageName: s.stage,
          actionName: s.action,
          startTime: run.startedAt,
          lastUpdateTime: run.ended?.at ?? this.clock.now(),
          ...(run.ended?.updatedBy === undefined ? {} : { updatedBy: run.ended.updatedBy }),
          status: run.status,
          input: {
            actionTypeId: { category: 'Approval', owner: 'AWS', provider: 'Manual', version: '1' },
            configuration: { CustomData: run.customData ?? '' },
            resolvedConfiguration: run.customData === undefined ? {} : { CustomData: run.customData },
            region: this.region,
            inputArtifacts: [],
          },
          output: {
            outputArtifacts: [],
            outputVariables: {},
            ...(current && s.executionMode === 'PARALLEL' && run.status === 'InProgress'
              ? { executionResult: { externalExecutionId: s.token } }
              : run.ended?.summary === undefined
                ? {}
                : { executionResult: { externalExecutionSummary: run.ended.summary } }),
          },
        });
      }
    }
    return paged(details, input, 'actionExecutionDetails', this.pageSize(input, 100));
  }

  /**
   * The executions the approvals have run, newest first. An execution is in progress while its approval
   * waits (the world knows nothing after it), superseded once a newer one took the stage.
   */
  private listPipelineExecutions(input: Json): Json {
    const executions = new Map<string, { status: string; startedAt: Date; mode: string | undefined }>();
    const add = (executionId: string, status: string, startedAt: Date, mode: string | undefined) => {
      const had = executions.get(executionId);
      if (had && had.status === 'InProgress') return;
      executions.set(executionId, { status, startedAt: had?.startedAt ?? startedAt, mode });
    };
    for (const s of this.pipelineSlots(String(input.pipelineName))) {
      for (const h of s.history) add(h.executionId, executionStatus(h.status), h.startedAt, s.executionMode);
      if (s.status) add(s.executionId, executionStatus(s.status), s.startedAt, s.executionMode);
    }
    const summaries = [...executions]
      .sort(([, a], [, b]) => b.startedAt.getTime() - a.startedAt.getTime())
      .map(([pipelineExecutionId, x]) => ({
        pipelineExecutionId,
        status: x.status,
        startTime: x.startedAt,
        lastUpdateTime: this.clock.now(),
        trigger: { triggerType: 'StartPipelineExecution', triggerDetail: 'simulator' },
        executionMode: x.mode ?? 'SUPERSEDED',
        executionType: 'STANDARD',
      }));
    return paged(summaries, input, 'pipelineExecutionSummaries', this.pageSize(input, 100));
  }

  private getPipelineExecution(pipeline: string, executionId: string): Json {
    const slots = this.pipelineSlots(pipeline);
    const slot = slots.find(
      (s) => s.executionId === executionId || s.history.some((h) => h.executionId === executionId),
    );
    if (!slot) {
      throw serviceError('PipelineExecutionNotFoundException', `Execution ${executionId} not found`, 400);
    }
    const variables = slot.executionId === executionId ? slot.variables : {};
    return {
      pipelineExecution: {
        pipelineName: pipeline,
        pipelineVersion: 1,
        pipelineExecutionId: executionId,
        status: 'InProgress',
        artifactRevisions: [],
        variables: Object.entries(variables).map(([name, resolvedValue]) => ({ name, resolvedValue })),
        executionMode: slot.executionMode,
        executionType: 'STANDARD',
      },
    };
  }

  /** A result from Tollgate or from a person; CodePipeline then ends the action and CloudTrail records the call. */
  putApprovalResult(
    input: Json,
    identity = `arn:aws:sts::${this.account}:assumed-role/${TOLLGATE_ROLE}/tollgate`,
  ): Json {
    const slot = this.findSlot(String(input.pipelineName), String(input.stageName), String(input.actionName));
    const token = String(input.token ?? '');
    const result = isObject(input.result) ? input.result : {};
    // The API model's constraints, checked before anything else as the service does.
    if (!APPROVAL_TOKEN.test(token)) {
      throw serviceError(
        'ValidationException',
        `1 validation error detected: Value at 'token' failed to satisfy constraint: Member must satisfy regular expression pattern: ${APPROVAL_TOKEN.source}`,
        400,
      );
    }
    if (typeof result.summary !== 'string' || result.summary.length > 512) {
      throw serviceError(
        'ValidationException',
        "1 validation error detected: Value at 'result.summary' failed to satisfy constraint: Member must have length less than or equal to 512",
        400,
      );
    }
    if (result.status !== 'Approved' && result.status !== 'Rejected') {
      throw serviceError(
        'ValidationException',
        "1 validation error detected: Value at 'result.status' failed to satisfy constraint: Member must satisfy enum value set: [Approved, Rejected]",
        400,
      );
    }
    if (!slot || slot.token !== token) {
      throw new InvalidApprovalTokenException({
        message: 'Approval token either does not exist or is not the correct token for the action or stage.',
        $metadata: { httpStatusCode: 400 },
      });
    }
    if (slot.status !== 'InProgress') {
      throw new ApprovalAlreadyCompletedException({
        message: 'The approval action has already been approved or rejected',
        $metadata: { httpStatusCode: 400 },
      });
    }
    const approved = result.status === 'Approved';
    slot.status = approved ? 'Succeeded' : 'Failed';
    const now = this.clock.now();
    slot.ended = { at: now, updatedBy: identity, summary: result.summary };
    this.outbox.push(
      cloudTrailEvent(this, identity, {
        pipelineName: slot.pipeline,
        stageName: slot.stage,
        actionName: slot.action,
        token,
        result: { status: result.status, summary: result.summary },
      }),
      actionEvent(this, slot, approved ? 'SUCCEEDED' : 'FAILED'),
    );
    return { approvedAt: now };
  }

  private describeImages(input: Json): Json {
    expectKeys('DescribeImages', input, ['repositoryName', 'imageIds', 'registryId']);
    this.ownRegistry(input);
    const repository = String(input.repositoryName);
    const ids = Array.isArray(input.imageIds) ? (input.imageIds as Json[]) : [];
    const found = ids.map((id) => {
      expectKeys('DescribeImages imageIds', id, ['imageTag', 'imageDigest']);
      const digest =
        id.imageDigest !== undefined
          ? this.manifests.has(`${repository}@${String(id.imageDigest)}`)
            ? String(id.imageDigest)
            : undefined
          : this.images.get(`${repository}:${String(id.imageTag)}`);
      return { id, digest };
    });
    const lost = found.find((f) => f.digest === undefined);
    if (lost) {
      const named =
        lost.id.imageDigest !== undefined
          ? `imageDigest:'${String(lost.id.imageDigest)}'`
          : `imageTag:'${String(lost.id.imageTag)}'`;
      throw new ImageNotFoundException({
        message: `The image with imageId {${named}} does not exist within the repository with name '${repository}'`,
        $metadata: { httpStatusCode: 400 },
      });
    }
    return {
      imageDetails: found.map((f) => {
        const digest = String(f.digest);
        const tags = [...this.images].filter(([ref, d]) => d === digest && ref.startsWith(`${repository}:`));
        return {
          registryId: this.account,
          repositoryName: repository,
          imageDigest: digest,
          imageTags: tags.map(([ref]) => ref.slice(repository.length + 1)),
          imagePushedAt: this.pushedAt,
          imageManifestMediaType: this.manifests.get(`${repository}@${digest}`),
        };
      }),
    };
  }

  private describeImageScanFindings(input: Json): Json {
    expectKeys('DescribeImageScanFindings', input, [
      'repositoryName',
      'imageId',
      'registryId',
      'maxResults',
      'nextToken',
    ]);
    this.ownRegistry(input);
    const imageId = isObject(input.imageId) ? input.imageId : {};
    expectKeys('DescribeImageScanFindings imageId', imageId, ['imageDigest']);
    const digest = String(imageId.imageDigest);
    const scan = this.ecrScans.get(digest);
    // A scan is an image's in its repository: the same digest asked of another repository has none.
    if (!scan || this.coverage.get(digest)?.repository !== String(input.repositoryName)) {
      throw new ScanNotFoundException({
        message: `Image scan does not exist for the image with '{imageDigest:'${digest}'}'`,
        $metadata: { httpStatusCode: 400 },
      });
    }
    const doc = this.ecrDocs.get(digest);
    const all = scan.status === 'COMPLETE' ? (this.findings.get(digest) ?? []) : [];
    const page = paged(all, input, 'findings', this.pageSize(input, 100));
    const counts: Record<string, number> = {};
    for (const f of all) {
      const sev = isObject(f) ? String(f.severity ?? 'UNDEFINED') : 'UNDEFINED';
      counts[sev] = (counts[sev] ?? 0) + 1;
    }
    const base = doc && isObject(doc.imageScanFindings) ? doc.imageScanFindings : {};
    return {
      registryId: this.account,
      repositoryName: String(input.repositoryName),
      imageId: { imageDigest: digest },
      imageScanStatus: { status: scan.status, description: scan.description },
      imageScanFindings: {
        ...base,
        findings: page.findings,
        findingSeverityCounts: counts,
        imageScanCompletedAt: this.clock.now(),
        vulnerabilitySourceUpdatedAt: this.clock.now(),
      },
      ...(page.nextToken === undefined ? {} : { nextToken: page.nextToken }),
    };
  }

  /**
   * ListCoverage, with the filters the adapter sends answered as the service compares them (a filter the
   * world does not implement is refused: a wrong filter must not pass for a right one).
   */
  private listCoverage(input: Json): Json {
    expectKeys('ListCoverage', input, ['filterCriteria', 'maxResults', 'nextToken']);
    validateFilters('ListCoverage', input.filterCriteria, COVERAGE_COMPARISONS, COVERAGE_FILTERS);
    const idOf = (digest: string, repo: string) =>
      `arn:aws:ecr:${this.region}:${this.account}:repository/${repo}/${digest}`;
    const covered = [...this.coverage.entries()].filter(([digest, c]) =>
      matchesFilters('ListCoverage', input.filterCriteria, COVERAGE_COMPARISONS, {
        ecrRepositoryName: c.repository,
        resourceId: idOf(digest, c.repository),
        resourceType: 'AWS_ECR_CONTAINER_IMAGE',
        accountId: this.account,
        scanType: 'PACKAGE',
      }),
    );
    return paged(
      covered.map(([digest, c]) => ({
        resourceType: 'AWS_ECR_CONTAINER_IMAGE',
        resourceId: idOf(digest, c.repository),
        accountId: this.account,
        scanType: 'PACKAGE',
        scanStatus: { statusCode: c.statusCode, reason: c.reason },
        resourceMetadata: { ecrRepository: { name: c.repository }, ecrImage: { imageTags: [] } },
        ...(c.scanned ? { lastScannedAt: c.at } : {}),
      })),
      input,
      'coveredResources',
      this.pageSize(input, 100),
    );
  }

  /**
   * ListFindings over every finding the world holds, each filter compared as the service compares it
   * (EQUALS, PREFIX, NOT_EQUALS on the finding's own fields; a finding that names no image takes the image it
   * is stored under). A filter key or comparison the world does not implement is refused.
   */
  private listFindings(input: Json): Json {
    expectKeys('ListFindings', input, ['filterCriteria', 'maxResults', 'nextToken', 'sortCriteria']);
    if (input.sortCriteria !== undefined) {
      throw serviceError('ValidationException', 'the simulator does not implement sortCriteria', 400);
    }
    validateFilters('ListFindings', input.filterCriteria, FINDING_COMPARISONS, FINDING_FILTERS);
    const all: unknown[] = [];
    for (const [digest, list] of this.findings) {
      const repository = this.coverage.get(digest)?.repository ?? this.repositoryOf(digest);
      for (const f of list) {
        const image = ecrImageOfFinding(f);
        const fields = {
          ecrImageHash: image.imageHash ?? digest,
          ecrImageRepositoryName: image.repositoryName ?? repository,
          ecrImageRegistry: image.registry ?? this.account,
          severity: isObject(f) && typeof f.severity === 'string' ? f.severity : undefined,
          awsAccountId:
            isObject(f) && typeof f.awsAccountId === 'string'
              ? f.awsAccountId
              : (image.registry ?? this.account),
          resourceType: 'AWS_ECR_CONTAINER_IMAGE',
          findingStatus: isObject(f) && typeof f.status === 'string' ? f.status : 'ACTIVE',
        };
        if (matchesFilters('ListFindings', input.filterCriteria, FINDING_COMPARISONS, fields)) all.push(f);
      }
    }
    return paged(all, input, 'findings', this.pageSize(input, 100));
  }

  /** The repository of one of the world's images, by digest. */
  private repositoryOf(digest: string): string | undefined {
    for (const [ref, d] of this.images) if (d === digest) return ref.slice(0, ref.lastIndexOf(':'));
    return undefined;
  }

  /** ECR answers for this account's registry only (the scenario's world is one account). */
  private ownRegistry(input: Json): void {
    if (input.registryId !== undefined && input.registryId !== this.account) {
      throw serviceError(
        'RepositoryNotFoundException',
        `The repository with name '${String(input.repositoryName)}' does not exist in the registry with id '${String(input.registryId)}'`,
        400,
      );
    }
  }

  /** The page size of a paginated answer: what was asked for, at most the world's `pageSize`. */
  private pageSize(input: Json, fallback: number): number {
    return effectivePageSize(input, this.options.pageSize, fallback);
  }

  /** Wall-clock call depth of the deepest call so far. */
  maxDepth(operation?: string): number {
    return this.calls
      .filter((c) => operation === undefined || c.operation === operation)
      .reduce((d, c) => Math.max(d, c.depth), 0);
  }
}

// ── real-shaped events ──────────────────────────────────────────────────────────────────────────────

export function actionEvent(
  world: World,
  slot: { pipeline: string; stage: string; action: string; executionId: string; actionExecutionId: string },
  state: string,
): Json {
  return {
    version: '0',
    id: randomUUID(),
    'detail-type': 'CodePipeline Action Execution State Change',
    source: 'aws.codepipeline',
    account: world.account,
    time: isoSeconds(world),
    region: world.region,
    resources: [`arn:aws:codepipeline:${world.region}:${world.account}:${slot.pipeline}`],
    detail: {
      pipeline: slot.pipeline,
      'execution-id': slot.executionId,
      'start-time': isoSeconds(world),
      stage: slot.stage,
      'action-execution-id': slot.actionExecutionId,
      action: slot.action,
      state,
      region: world.region,
      type: { owner: 'AWS', provider: 'Manual', category: 'Approval', version: '1' },
      version: 1.0,
      'pipeline-execution-attempt': 1.0,
    },
  };
}

export function scanEvent(
  world: World,
  source: 'inspector' | 'ecr',
  scan: { digest: string; repository: string; status: string; counts?: Record<string, number> | undefined },
  tags: readonly string[],
): Json {
  const repositoryArn = `arn:aws:ecr:${world.region}:${world.account}:repository/${scan.repository}`;
  if (source === 'inspector') {
    return {
      version: '0',
      id: randomUUID(),
      'detail-type': 'Inspector2 Scan',
      source: 'aws.inspector2',
      account: world.account,
      time: isoSeconds(world),
      region: world.region,
      resources: [repositoryArn],
      detail: {
        'scan-status': scan.status,
        // Real Inspector events carry the repository ARN here, not the name.
        'repository-name': repositoryArn,
        ...(scan.counts ? { 'finding-severity-counts': scan.counts } : {}),
        'image-digest': scan.digest,
        'image-tags': [...tags],
        version: '1.0',
      },
    };
  }
  return {
    version: '0',
    id: randomUUID(),
    'detail-type': 'ECR Image Scan',
    source: 'aws.ecr',
    account: world.account,
    time: isoSeconds(world),
    region: world.region,
    resources: [repositoryArn],
    detail: {
      'scan-status': scan.status,
      'repository-name': scan.repository,
      ...(scan.counts ? { 'finding-severity-counts': scan.counts } : {}),
      'image-digest': scan.digest,
      'image-tags': [...tags],
    },
  };
}

export function cloudTrailEvent(world: World, identity: string, requestParameters: Json): Json {
  const roleSession = /assumed-role\/([^/]+)\/(.+)$/.exec(identity);
  return {
    version: '0',
    id: randomUUID(),
    'detail-type': 'AWS API Call via CloudTrail',
    source: 'aws.codepipeline',
    account: world.account,
    time: isoSeconds(world),
    region: world.region,
    resources: [],
    detail: {
      eventVersion: '1.08',
      userIdentity: {
        type: roleSession ? 'AssumedRole' : 'IAMUser',
        principalId: `AROAEXAMPLE:${roleSession?.[2] ?? 'user'}`,
        arn: identity,
        accountId: world.account,
      },
      eventTime: isoSeconds(world),
      eventSource: 'codepipeline.amazonaws.com',
      eventName: 'PutApprovalResult',
      awsRegion: world.region,
      sourceIPAddress: '203.0.113.10',
      userAgent: 'aws-sdk-js/3',
      requestParameters,
      responseElements: { approvedAt: isoSeconds(world) },
      requestID: randomUUID(),
      eventID: randomUUID(),
      readOnly: false,
      eventType: 'AwsApiCall',
      managementEvent: true,
      recipientAccountId: world.account,
      eventCategory: 'Management',
    },
  };
}

export function scheduledEvent(world: World): Json {
  return {
    version: '0',
    id: randomUUID(),
    'detail-type': 'Scheduled Event',
    source: 'aws.events',
    account: world.account,
    time: isoSeconds(world),
    region: world.region,
    resources: [`arn:aws:events:${world.region}:${world.account}:rule/tollgate-sweep`],
    detail: {},
  };
}

function isoSeconds(world: World): string {
  return `${world.now().toISOString().slice(0, 19)}Z`;
}

// ── helpers ─────────────────────────────────────────────────────────────────────────────────────────

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function findingsOf(doc: unknown): unknown[] {
  if (Array.isArray(doc)) return doc;
  if (!isObject(doc)) return [];
  if (Array.isArray(doc.findings)) return doc.findings;
  if (isObject(doc.imageScanFindings)) {
    const f = doc.imageScanFindings;
    if (Array.isArray(f.enhancedFindings)) return f.enhancedFindings;
    if (Array.isArray(f.findings)) return f.findings;
  }
  return [];
}

/** `resources[0].details.awsEcrContainerImage` of an Inspector finding (what the service filters on). */
function ecrImageOfFinding(finding: unknown): {
  imageHash?: string;
  repositoryName?: string;
  registry?: string;
} {
  const resources = isObject(finding) ? finding.resources : undefined;
  const first: unknown = Array.isArray(resources) ? resources[0] : undefined;
  const details = isObject(first) ? first.details : undefined;
  const image = isObject(details) ? details.awsEcrContainerImage : undefined;
  if (!isObject(image)) return {};
  const text = (v: unknown) => (typeof v === 'string' ? v : undefined);
  const out: { imageHash?: string; repositoryName?: string; registry?: string } = {};
  const [imageHash, repositoryName, registry] = [
    text(image.imageHash),
    text(image.repositoryName),
    text(image.registry),
  ];
  if (imageHash !== undefined) out.imageHash = imageHash;
  if (repositoryName !== undefined) out.repositoryName = repositoryName;
  if (registry !== undefined) out.registry = registry;
  return out;
}

/** The comparisons each API's string filters allow (the API model's StringComparison, CoverageStringComparison). */
const FINDING_COMPARISONS = new Set(['EQUALS', 'PREFIX', 'NOT_EQUALS']);
const COVERAGE_COMPARISONS = new Set(['EQUALS', 'NOT_EQUALS']);
/** The filter keys the world answers (every one the adapters send, and a few more it can answer exactly). */
const FINDING_FILTERS = [
  'ecrImageHash',
  'ecrImageRepositoryName',
  'ecrImageRegistry',
  'severity',
  'awsAccountId',
  'resourceType',
  'findingStatus',
] as const;
const COVERAGE_FILTERS = [
  'ecrRepositoryName',
  'resourceId',
  'resourceType',
  'accountId',
  'scanType',
] as const;

/** Throws as the service does (a ValidationException) on a request field the world does not answer. */
function expectKeys(operation: string, input: Json, known: readonly string[]): void {
  for (const key of Object.keys(input)) {
    if (input[key] !== undefined && !known.includes(key)) {
      throw serviceError(
        'ValidationException',
        `${operation}: the simulator does not implement '${key}'`,
        400,
      );
    }
  }
}

/**
 * Whether an item with these `fields` passes `filterCriteria`, compared as Inspector does: the filters of
 * one key are alternatives (EQUALS or PREFIX: any may match) and exclusions (NOT_EQUALS: none may match);
 * different keys must all pass. A key the world does not know for the item, a comparison the API does not
 * allow there, or a filter that is not a string filter, is a ValidationException: never silently ignored.
 */
function matchesFilters(
  operation: string,
  criteria: unknown,
  comparisons: ReadonlySet<string>,
  fields: Readonly<Record<string, string | undefined>>,
): boolean {
  if (criteria === undefined) return true;
  validateFilters(operation, criteria, comparisons, Object.keys(fields));
  for (const [key, list] of Object.entries(criteria as Json)) {
    if (list === undefined) continue;
    const value = fields[key];
    let positives = 0;
    let matched = false;
    for (const f of list as { comparison: string; value: string }[]) {
      const { comparison, value: want } = f;
      if (comparison === 'NOT_EQUALS') {
        if (value === want) return false;
        continue;
      }
      positives++;
      if (value !== undefined && (comparison === 'EQUALS' ? value === want : value.startsWith(want))) {
        matched = true;
      }
    }
    if (positives > 0 && !matched) return false;
  }
  return true;
}

/** Refuses (a ValidationException) filter criteria the world does not answer exactly as the service would. */
function validateFilters(
  operation: string,
  criteria: unknown,
  comparisons: ReadonlySet<string>,
  keys: readonly string[],
): void {
  if (criteria === undefined) return;
  const refuse = (what: string): never => {
    throw serviceError('ValidationException', `${operation}: ${what}`, 400);
  };
  if (!isObject(criteria)) refuse('filterCriteria is not a structure');
  for (const [key, list] of Object.entries(criteria as Json)) {
    if (list === undefined) continue;
    if (!keys.includes(key)) refuse(`the simulator does not implement the filter '${key}'`);
    if (!Array.isArray(list) || list.length === 0) refuse(`filter '${key}' is not a non-empty list`);
    for (const f of list as unknown[]) {
      if (!isObject(f) || typeof f.value !== 'string' || typeof f.comparison !== 'string') {
        refuse(`filter '${key}' is not a string filter ({comparison, value})`);
      }
      const comparison = String((f as Json).comparison);
      if (!comparisons.has(comparison)) refuse(`comparison ${comparison} is not allowed for '${key}'`);
    }
  }
}

/**
 * A stage execution's status (`StageExecutionStatus`) for the status its approval action ended with: an
 * abandoned action's stage was cancelled (its execution superseded).
 */
function stageStatus(status: string): string {
  return status === 'Abandoned' ? 'Cancelled' : status;
}

const INSPECTOR_REASONS: ReadonlySet<string> = new Set(Object.values(ScanStatusReason));
/** The coverage reasons of an image Inspector has scanned (its coverage names when). */
export const SCANNED_REASONS: ReadonlySet<string> = new Set(['SUCCESSFUL', 'SCAN_FREQUENCY_SCAN_ON_PUSH']);

/** The approval token's pattern in the API model (`ApprovalToken`). */
const APPROVAL_TOKEN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function effectivePageSize(input: Json, cap: number | undefined, fallback = 100): number {
  const asked = Number(input.maxResults ?? fallback) || fallback;
  return cap === undefined ? asked : Math.max(1, Math.min(asked, cap));
}

/** The page a paginated request asks for: 1 without a token (tokens are offsets into the list). */
function pageOf(input: Json, cap: number | undefined): number {
  const token = input.nextToken;
  return typeof token === 'string' ? Math.floor(Number(token) / effectivePageSize(input, cap)) + 1 : 1;
}

function paged<K extends string>(
  all: readonly unknown[],
  input: Json,
  key: K,
  size: number,
): Json & Record<K, unknown[]> {
  const from = typeof input.nextToken === 'string' ? Number(input.nextToken) : 0;
  const to = from + size;
  return {
    [key]: all.slice(from, to),
    ...(to < all.length ? { nextToken: String(to) } : {}),
  } as Json & Record<K, unknown[]>;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

const THROTTLING = new Set(['ThrottlingException', 'TooManyRequestsException']);

/** An error shaped as the SDK throws it: name, message, HTTP status, and the retryable marks. */
export function serviceError(name: string, message: string, status?: number): Error {
  const httpStatusCode =
    status ??
    (THROTTLING.has(name) ? 400 : name === 'AccessDeniedException' ? 403 : name === 'TimeoutError' ? 0 : 500);
  const error = new Error(message) as Error & Json;
  error.name = name;
  error.$fault = httpStatusCode >= 500 ? 'server' : 'client';
  error.$metadata = { httpStatusCode: httpStatusCode || undefined, attempts: 1 };
  if (THROTTLING.has(name)) error.$retryable = { throttling: true };
  if (name === 'TimeoutError') error.code = 'ETIMEDOUT';
  return error;
}

/** The execution's status while its approval action has this one (`Abandoned`: a newer execution took over). */
function executionStatus(action: string): string {
  switch (action) {
    case 'Abandoned':
      return 'Superseded';
    case 'Succeeded':
    case 'Failed':
    case 'InProgress':
      return action;
    default:
      return 'InProgress';
  }
}
