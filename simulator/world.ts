import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import {
  ApprovalAlreadyCompletedException,
  InvalidApprovalTokenException,
  PipelineNotFoundException,
} from '@aws-sdk/client-codepipeline';
import { ImageNotFoundException, ScanNotFoundException } from '@aws-sdk/client-ecr';
import type { ClockPort } from '../shared/gate/ports.js';
import type { LoadedScenario, ScenarioApproval } from './scenario.js';
import { findingsDocument } from './scenario.js';

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
  history: {
    executionId: string;
    status: string;
    actionExecutionId: string;
    customData: string | undefined;
    startedAt: Date;
  }[];
}

interface Coverage {
  repository: string;
  statusCode: 'ACTIVE' | 'INACTIVE';
  reason: string;
  at: Date;
}

export interface InjectedFailure {
  readonly operation: string;
  readonly error: string;
  remaining: number;
  readonly page: number | undefined;
  /** Matching calls to let through before the first failure (to fail, say, only the second PutItem). */
  skip: number;
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
  /** The failure was injected (the service never saw the request), not the service's own answer. */
  injected: boolean;
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
}

export class World {
  private readonly slots: ApprovalSlot[] = [];
  private readonly images = new Map<string, string>();
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
    });
    Object.assign(slot, { ...next, history: slot.history });
    return { previous, next: slot };
  }

  endApproval(pipeline: string, stage: string, action: string, status: 'Failed' | 'Abandoned'): ApprovalSlot {
    const slot = this.findSlot(pipeline, stage, action);
    if (!slot) throw new Error(`the world has no approval ${pipeline}/${stage}/${action}`);
    slot.status = status;
    return slot;
  }

  setScan(digest: string, repository: string, status: string): void {
    const at = this.clock.now();
    if (/COMPLETE$/.test(status) || status === 'ACTIVE') {
      this.coverage.set(digest, { repository, statusCode: 'ACTIVE', reason: 'SUCCESSFUL', at });
    } else if (
      status === 'PENDING_INITIAL_SCAN' ||
      status === 'IN_PROGRESS' ||
      status === 'SCAN_IN_PROGRESS'
    ) {
      this.coverage.set(digest, { repository, statusCode: 'ACTIVE', reason: 'PENDING_INITIAL_SCAN', at });
    } else {
      this.coverage.set(digest, { repository, statusCode: 'INACTIVE', reason: status, at });
    }
    this.ecrScans.set(digest, { status, description: `scan ${status.toLowerCase()}` });
  }

  setFindings(digest: string, source: { file: string } | { findings: unknown[] }, append: boolean): void {
    const doc = 'file' in source ? findingsDocument(this.loaded, source.file) : { findings: source.findings };
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
      caller: invocation.getStore(),
    };
    this.calls.push(record);
    try {
      if (this.options.latencyMs) await new Promise((r) => setTimeout(r, this.options.latencyMs));
      const injected = this.injectedFailure(operation, input);
      if (injected) {
        record.injected = true;
        throw injected;
      }
      return await work();
    } catch (e) {
      record.failed = true;
      throw e;
    } finally {
      record.end = performance.now() - this.epoch;
    }
  }

  /** The error to fail this call with, when an injected failure matches it. */
  private injectedFailure(operation: string, input: Json): Error | undefined {
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
    return serviceError(failure.error, `${operation}: injected ${failure.error}`);
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

  private getPipelineState(name: string): Json {
    const slots = this.pipelineSlots(name);
    const stages = [...new Set(slots.map((s) => s.stage))];
    return {
      pipelineName: name,
      pipelineVersion: 1,
      stageStates: stages.map((stage) => {
        const here = slots.filter((s) => s.stage === stage);
        const first = here[0]!;
        // In PARALLEL mode the state shows no execution of its own: each execution runs apart.
        const parallel = first.executionMode === 'PARALLEL';
        return {
          stageName: stage,
          inboundExecutions: [],
          inboundTransitionState: { enabled: true },
          actionStates: here.map((s) => ({
            actionName: s.action,
            ...(s.status && !parallel
              ? {
                  latestExecution: {
                    actionExecutionId: s.actionExecutionId,
                    status: s.status,
                    lastStatusChange: s.startedAt,
                    ...(s.status === 'InProgress' ? { token: s.token } : {}),
                  },
                }
              : {}),
          })),
          ...(parallel || !first.status
            ? {}
            : {
                latestExecution: {
                  pipelineExecutionId: first.executionId,
                  status: first.status === 'InProgress' ? 'InProgress' : first.status,
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
    const executionId = filter.pipelineExecutionId;
    const details: Json[] = [];
    for (const s of slots) {
      const runs = [
        ...s.history,
        ...(s.status
          ? [
              {
                executionId: s.executionId,
                status: s.status,
                actionExecutionId: s.actionExecutionId,
                customData: s.customData,
                startedAt: s.startedAt,
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
          lastUpdateTime: this.clock.now(),
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
              : {}),
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
    const repository = String(input.repositoryName);
    const ids = Array.isArray(input.imageIds) ? (input.imageIds as Json[]) : [];
    const found = ids.map((id) => ({ id, digest: this.images.get(`${repository}:${String(id.imageTag)}`) }));
    if (found.some((f) => f.digest === undefined)) {
      throw new ImageNotFoundException({
        message: `The image with imageId {imageTag:'${String(ids[0]?.imageTag)}'} does not exist within the repository with name '${repository}'`,
        $metadata: { httpStatusCode: 400 },
      });
    }
    return {
      imageDetails: found.map((f) => ({
        registryId: this.account,
        repositoryName: repository,
        imageDigest: f.digest,
        imageTags: [String(f.id.imageTag)],
        imagePushedAt: this.pushedAt,
      })),
    };
  }

  private describeImageScanFindings(input: Json): Json {
    const imageId = isObject(input.imageId) ? input.imageId : {};
    const digest = String(imageId.imageDigest);
    const scan = this.ecrScans.get(digest);
    if (!scan) {
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

  /** ListCoverage filters by repository, or by resource id (the digest ends each). */
  private listCoverage(input: Json): Json {
    const repository = criterion(input, 'ecrRepositoryName');
    const resourceId = criterion(input, 'resourceId');
    const idOf = (digest: string, repo: string) =>
      `arn:aws:ecr:${this.region}:${this.account}:repository/${repo}/${digest}`;
    const covered = [...this.coverage.entries()].filter(
      ([digest, c]) =>
        (repository === undefined || c.repository === repository) &&
        (resourceId === undefined || idOf(digest, c.repository) === resourceId),
    );
    return paged(
      covered.map(([digest, c]) => ({
        resourceType: 'AWS_ECR_CONTAINER_IMAGE',
        resourceId: idOf(digest, c.repository),
        accountId: this.account,
        scanType: 'PACKAGE',
        scanStatus: { statusCode: c.statusCode, reason: c.reason },
        resourceMetadata: { ecrRepository: { name: c.repository }, ecrImage: { imageTags: [] } },
        lastScannedAt: c.at,
      })),
      input,
      'coveredResources',
      this.pageSize(input, 100),
    );
  }

  private listFindings(input: Json): Json {
    const digest = criterion(input, 'ecrImageHash');
    const severity = criterion(input, 'severity');
    const registry = criterion(input, 'ecrImageRegistry');
    const all = (digest === undefined ? [] : (this.findings.get(digest) ?? [])).filter(
      (f) =>
        (severity === undefined || (isObject(f) && f.severity === severity)) &&
        (registry === undefined || registryOfFinding(f) === registry),
    );
    return paged(all, input, 'findings', this.pageSize(input, 100));
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

/** `resources[0].details.awsEcrContainerImage.registry` of an Inspector finding, as the service filters it. */
function registryOfFinding(finding: unknown): string | undefined {
  const resources = isObject(finding) ? finding.resources : undefined;
  const first: unknown = Array.isArray(resources) ? resources[0] : undefined;
  const details = isObject(first) ? first.details : undefined;
  const image = isObject(details) ? details.awsEcrContainerImage : undefined;
  return isObject(image) && typeof image.registry === 'string' ? image.registry : undefined;
}

function criterion(input: Json, field: string): string | undefined {
  const criteria = isObject(input.filterCriteria) ? input.filterCriteria : {};
  const list = criteria[field];
  if (!Array.isArray(list) || !isObject(list[0])) return undefined;
  return String(list[0].value);
}

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
