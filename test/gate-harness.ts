import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  ApprovalAlreadyCompletedException,
  CodePipelineClient,
  CodePipelineServiceException,
  GetPipelineExecutionCommand,
  type GetPipelineExecutionCommandInput,
  type GetPipelineExecutionCommandOutput,
  GetPipelineStateCommand,
  type GetPipelineStateCommandInput,
  type GetPipelineStateCommandOutput,
  InvalidApprovalTokenException,
  ListActionExecutionsCommand,
  type ListActionExecutionsCommandInput,
  type ListActionExecutionsCommandOutput,
  ListPipelineExecutionsCommand,
  type ListPipelineExecutionsCommandInput,
  ListPipelinesCommand,
  type ListPipelinesCommandInput,
  type PipelineExecutionSummary,
  PipelineNotFoundException,
  PutApprovalResultCommand,
  type PutApprovalResultCommandInput,
} from '@aws-sdk/client-codepipeline';
import {
  DescribeImageScanFindingsCommand,
  type DescribeImageScanFindingsCommandInput,
  type DescribeImageScanFindingsCommandOutput,
  DescribeImagesCommand,
  type DescribeImagesCommandInput,
  ECRClient,
  type FindingSeverity,
  ImageNotFoundException,
  type ImageScanFinding,
  ScanNotFoundException,
} from '@aws-sdk/client-ecr';
import {
  EventBridgeClient,
  PutEventsCommand,
  type PutEventsCommandInput,
  type PutEventsRequestEntry,
} from '@aws-sdk/client-eventbridge';
import {
  type CoveredResource,
  Inspector2Client,
  type Finding as InspectorFinding,
  ListCoverageCommand,
  type ListCoverageCommandInput,
  ListFindingsCommand,
  type ListFindingsCommandInput,
} from '@aws-sdk/client-inspector2';
import { PublishCommand, type PublishCommandInput, SNSClient } from '@aws-sdk/client-sns';
import { type DynamoDBDocumentClient, paginateScan } from '@aws-sdk/lib-dynamodb';
import type { Context } from 'aws-lambda';
import { type AwsClientStub, mockClient } from 'aws-sdk-client-mock';
import { afterAll, afterEach, beforeAll, vi } from 'vitest';
import { CodePipelineDirectory } from '../adapters/aws/codepipeline.js';
import { createAwsAdapters } from '../adapters/aws/index.js';
import { type LocalDynamo, startLocalDynamo } from '../adapters/dynamodb/local.js';
import { DynamoStore } from '../adapters/dynamodb/store.js';
import { ensureTable } from '../adapters/dynamodb/table.js';
import { approvalEndedHandler } from '../functions/approval-ended/handler.js';
import { approvalStartedHandler } from '../functions/approval-started/handler.js';
import type { HandlerResult } from '../functions/common/handler.js';
import { loadPolicySource } from '../functions/common/policy.js';
import { localObservability, logPort, metricsPort, type Runtime } from '../functions/common/runtime.js';
import { scanFinishedHandler } from '../functions/scan-finished/handler.js';
import { sweepHandler } from '../functions/sweep/handler.js';
import { ApprovalDiscovery, DEFAULT_DISCOVERY, type DiscoveryConfig } from '../shared/gate/discovery.js';
import { DEFAULT_CONFIG, GateClosing, GateService, type PolicySource } from '../shared/gate/gate.js';
import type { Gate, GateKey, StoredDecision } from '../shared/gate/model.js';
import type { ClockPort } from '../shared/gate/ports.js';
import { fixture, ROOT } from './helpers.js';

/*
 * A harness for the gate's behaviour tests: the real handlers (middy, Powertools parser, logger and
 * metrics), the real AWS adapters over aws-sdk-client-mock stubs of each client instance, and the real
 * DynamoDB store over a dynalite table. The stubs answer from a small model of the account (the
 * pipeline's state, the scanner's coverage and findings) that each test changes, built from the AWS
 * sample payloads in fixtures/aws/, so that what the adapters read is shaped as the services send it.
 */

// Powertools Logger writes to the global console in dev mode, where the tests can capture it (the token must
// never be logged); metrics are computed but not printed.
process.env.POWERTOOLS_DEV = 'true';
process.env.POWERTOOLS_METRICS_DISABLED = 'true';

// ── the account the samples describe ────────────────────────────────────────────────────────────────

export const ACCOUNT = '123456789012';
export const REGION = 'eu-central-1';
export const FUNCTION_ARN = `arn:aws:lambda:${REGION}:${ACCOUNT}:function:x`;
// From codepipeline/synthesized/*, api/get-pipeline-state.* and api/list-action-executions.*.
export const PIPELINE = 'myPipeline';
export const STAGE = 'SecurityGate';
export const ACTION = 'ImageVulnerabilityApproval';
export const EXECUTION = '12345678-1234-5678-abcd-12345678abcd';
export const ACTION_EXECUTION = '47f821c5-a902-44b2-ae61-b878d31ecd21';
export const TOKEN = '1a2b3c4d-573f-4ea7-a67e-0123456789ab';
export const REPOSITORY = 'inspector2';
export const DIGEST = 'sha256:84f507df33c6864d49c296fb734192696e4cb6f78166ac51ac8b9b118181085d';
export const REPOSITORY_ARN = `arn:aws:ecr:${REGION}:${ACCOUNT}:repository/${REPOSITORY}`;
export const KEY: GateKey = { pipeline: PIPELINE, executionId: EXECUTION, stage: STAGE, action: ACTION };
export const TOLLGATE_ROLE = 'TollgateGateRole';
export const TOLLGATE_IDENTITY = `arn:aws:sts::${ACCOUNT}:assumed-role/${TOLLGATE_ROLE}/tollgate-approval-started`;
export const START = '2026-11-25T09:00:00.000Z';
export const BASELINE_POLICY = `${ROOT}examples/policies/baseline.yaml`;

type Json = Record<string, unknown>;

export interface EventBridgeEvent {
  version: string;
  id: string;
  'detail-type': string;
  source: string;
  account: string;
  time: string;
  region: string;
  resources: string[];
  detail: Json;
}

// The SDK v3 turns the API's epoch-second timestamps into Date objects; the samples hold epoch seconds.
const TIMESTAMPS = new Set([
  'created',
  'updated',
  'lastStatusChange',
  'startTime',
  'lastUpdateTime',
  'firstObservedAt',
  'lastObservedAt',
  'updatedAt',
  'vendorCreatedAt',
  'vendorUpdatedAt',
  'pushedAt',
  'imageScanCompletedAt',
  'vulnerabilitySourceUpdatedAt',
  'approvedAt',
  'lastScannedAt',
]);

function asSdk(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(asSdk);
  if (typeof value !== 'object' || value === null) return value;
  const out: Json = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] = TIMESTAMPS.has(k) && typeof v === 'number' ? new Date(v * 1000) : asSdk(v);
  }
  return out;
}

/** An API sample as the SDK would return it. */
/** CodePipeline's throttling, as the SDK throws it (a modelled service exception of that name). */
export const pipelineThrottled = (): Error =>
  new CodePipelineServiceException({
    name: 'ThrottlingException',
    $fault: 'client',
    $metadata: { httpStatusCode: 400 },
    message: 'Rate exceeded',
  });

export function sample<T>(path: string): T {
  return asSdk(JSON.parse(fixture(`aws/${path}`))) as T;
}

function isJson(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function findingsIn(doc: unknown): unknown[] {
  if (Array.isArray(doc)) return doc;
  return isJson(doc) && Array.isArray(doc.findings) ? doc.findings : [];
}

let findingSerial = 0;

/**
 * Inspector findings as ListFindings returns them, re-pointed at the test image (digest, repository,
 * account, region, resource id) and given their own finding ARNs.
 */
export function inspectorFindings(
  doc: unknown,
  digest = DIGEST,
  repository = REPOSITORY,
): InspectorFinding[] {
  return findingsIn(doc).map((raw) => {
    const f = asSdk(structuredClone(raw)) as Json;
    findingSerial++;
    f.awsAccountId = ACCOUNT;
    f.findingArn = `arn:aws:inspector2:${REGION}:${ACCOUNT}:finding/${String(findingSerial).padStart(32, '0')}`;
    const resources = Array.isArray(f.resources) ? f.resources : [];
    for (const r of resources) {
      if (!isJson(r)) continue;
      r.id = `arn:aws:ecr:${REGION}:${ACCOUNT}:repository/${repository}/${digest}`;
      r.region = REGION;
      const details = isJson(r.details) ? r.details : {};
      const image = isJson(details.awsEcrContainerImage) ? details.awsEcrContainerImage : {};
      Object.assign(image, { imageHash: digest, repositoryName: repository, registry: ACCOUNT });
    }
    return f as unknown as InspectorFinding;
  });
}

/** The one MEDIUM finding of `list-findings-response.ecr.derived-from-aws-docs-event.json`: approved by baseline. */
export function cleanFindings(): InspectorFinding[] {
  return inspectorFindings(
    JSON.parse(fixture('aws/list-findings-response.ecr.derived-from-aws-docs-event.json')),
  );
}

/** The findings of the ECR basic-scanning sample (`describe-image-scan-findings.basic.awscli-example.json`). */
export function ecrBasicFindings(): ImageScanFinding[] {
  return (
    sample<DescribeImageScanFindingsCommandOutput>('describe-image-scan-findings.basic.awscli-example.json')
      .imageScanFindings?.findings ?? []
  );
}

/** Findings of one of `examples/findings/*.json`, re-pointed at the test image. */
export function exampleFindings(file: string): InspectorFinding[] {
  return inspectorFindings(JSON.parse(readFileSync(`${ROOT}examples/findings/${file}`, 'utf8')));
}

/** The severity counts an `Inspector2 Scan` event reports for these findings (LOW is not counted). */
export function scanCounts(findings: readonly InspectorFinding[]): Record<string, number> {
  const active = findings.filter((f) => f.status === 'ACTIVE');
  const count = (s: string) => active.filter((f) => f.severity === s).length;
  return { CRITICAL: count('CRITICAL'), HIGH: count('HIGH'), MEDIUM: count('MEDIUM'), TOTAL: active.length };
}

// ── the clock ───────────────────────────────────────────────────────────────────────────────────────

export class TestClock implements ClockPort {
  private current: number;
  constructor(start: string) {
    this.current = Date.parse(start);
  }
  now(): Date {
    return new Date(this.current);
  }
  advance(ms: number): void {
    this.current += ms;
  }
  /** Milliseconds since the start of the test. */
  at(offsetMs: number): void {
    this.current = Date.parse(START) + offsetMs;
  }
}

// ── the log ─────────────────────────────────────────────────────────────────────────────────────────

/** Everything written to the console while a test runs (Powertools Logger writes there in dev mode). */
export const logLines: string[] = [];

function text(value: unknown): string {
  if (typeof value === 'string') return value;
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

// ── dynalite, once per file ─────────────────────────────────────────────────────────────────────────

/** Starts dynalite before the file's tests and stops it after; captures the console for each test. */
export function useLocalDynamo(): () => LocalDynamo {
  let dynamo: LocalDynamo | undefined;
  beforeAll(async () => {
    dynamo = await startLocalDynamo();
    for (const method of ['debug', 'info', 'warn', 'error', 'log'] as const) {
      vi.spyOn(console, method).mockImplementation((...args: unknown[]) => {
        logLines.push(args.map(text).join(' '));
      });
    }
  });
  afterEach(() => {
    logLines.length = 0;
  });
  afterAll(async () => {
    vi.restoreAllMocks();
    await dynamo?.close();
  });
  return () => {
    if (!dynamo) throw new Error('dynalite is not running: call useLocalDynamo() at the top of the file');
    return dynamo;
  };
}

// ── the account model the stubs answer from ─────────────────────────────────────────────────────────

export interface PipelineModel {
  /**
   * What GetPipelineState shows for the gated stage: its latest execution and the action's latest run
   * (`actionExecutionId`: the sample's run unless a retry started another).
   */
  stage: {
    executionId: string | undefined;
    status: string;
    token: string | undefined;
    /** null: the state names no run (older API answers). */
    actionExecutionId?: string | null;
    /** The action run's `lastStatusChange`; the clock's time when not set. */
    since?: Date;
  };
  /**
   * What ListActionExecutions shows for the gate's own execution (filtered by the event's execution id): the
   * gated action's latest run (`actionExecutionId` as for the stage), and the runs before it, if any.
   */
  action: {
    status: string;
    customData: string | undefined;
    externalExecutionId: string | undefined;
    actionExecutionId?: string;
    /** Runs before the latest, each with the latest's CustomData unless it has its own. */
    earlierRuns?: { actionExecutionId: string; status: string; customData?: string }[];
    /** The latest run's `startTime`; the sample's (2024) when not set. */
    startedAt?: Date;
    /** True: the listing has not caught up with the run yet (it lags the STARTED event a moment). */
    unlisted?: boolean;
    /** The next this many listings do not show the run yet; then it is listed (`unlisted` set to false). */
    unlistedReads?: number;
    /** True: the listing shows the earlier runs only, not the latest yet (a retried stage's new run lags). */
    latestUnlisted?: boolean;
    /** The latest run's `input.actionTypeId`; the sample's (a Manual approval) when not set. */
    actionTypeId?: { category: string; owner: string; provider: string; version: string };
    /** The latest run's `updatedBy`, `lastUpdateTime` and `externalExecutionSummary`, once it ended. */
    updatedBy?: string;
    updatedAt?: Date;
    summary?: string;
  };
  /**
   * ListPipelineExecutions, newest first, a page each (to read every page); by default the gate's own
   * execution, in progress since START.
   */
  /** `executionMode`: the execution's own (one left from before a switch of the pipeline's mode). */
  executions?: {
    executionId: string;
    status: string;
    startTime: Date;
    executionMode?: 'PARALLEL' | 'SUPERSEDED' | 'QUEUED';
  }[];
  /**
   * The pipeline's execution mode, as ListPipelines and ListPipelineExecutions give it. By default PARALLEL
   * while the state names no execution of the stage, SUPERSEDED otherwise; `null`: the pipeline's summary
   * gives none. PARALLEL with a stage execution set: a pipeline switched to PARALLEL, whose state still
   * shows an execution from before.
   */
  executionMode?: 'SUPERSEDED' | 'QUEUED' | 'PARALLEL' | null;
  /** GetPipelineExecution's variables (name → resolved value). */
  variables: Record<string, string>;
  /** ECR DescribeImages: `repository:tag` → digest. */
  tags: Map<string, string>;
  /** DescribeImages' `imagePushedAt` of every tag's image; by default 5 minutes before START (the build). */
  pushedAt?: Date;
  /**
   * ECR DescribeImages by digest: `repository@digest` → the manifest's media type, for digests that are not
   * an image manifest (an index), or `null` for one ECR does not have. Any other digest is an image.
   */
  digests: Map<string, string | null>;
}

export interface ScannerModel {
  /** Inspector's coverage of the test image; undefined: not covered (yet). */
  coverage: { statusCode: 'ACTIVE' | 'INACTIVE'; reason: string } | undefined;
  /** Inspector findings of the test image. */
  findings: InspectorFinding[];
  /** Findings per ListFindings page (the service may return fewer than `maxResults`). */
  pageSize: number;
  /**
   * ECR basic scanning of the test image: DescribeImageScanFindings, `pageSize` findings a page (ECR's most,
   * 1000, by default; fewer when the request asks for fewer). Its `findingSeverityCounts` are the findings'.
   */
  ecr: { status: string; findings: ImageScanFinding[]; pageSize?: number } | undefined;
}

interface InjectedFailure {
  readonly operation: string;
  readonly error: () => Error;
  remaining: number;
  readonly when: ((input: Json) => boolean) | undefined;
}

export interface HarnessOptions {
  readonly scanSource?: 'inspector' | 'ecr';
  readonly policy?: PolicySource;
  /** The sweep's discovery of approvals no STARTED event announced, as the stack configures it. */
  readonly discovery?: Partial<DiscoveryConfig>;
}

type Invoke = (event: unknown, context: Context) => Promise<HandlerResult>;

export interface Mocks {
  readonly codepipeline: AwsClientStub<CodePipelineClient>;
  readonly inspector: AwsClientStub<Inspector2Client>;
  readonly ecr: AwsClientStub<ECRClient>;
  readonly sns: AwsClientStub<SNSClient>;
  readonly eventbridge: AwsClientStub<EventBridgeClient>;
}

let tableSerial = 0;

export class Harness {
  readonly clock = new TestClock(START);
  readonly pipeline: PipelineModel = {
    stage: { executionId: EXECUTION, status: 'InProgress', token: TOKEN },
    action: {
      status: 'InProgress',
      // The sample's resolved CustomData: {"repositoryName":"inspector2","imageDigest":"sha256:84f5…"}.
      customData: sample<ListActionExecutionsCommandOutput>(
        'list-action-executions.approval-in-progress.model-derived.json',
      ).actionExecutionDetails?.[0]?.input?.resolvedConfiguration?.CustomData,
      externalExecutionId: undefined,
    },
    variables: { ImageDigest: DIGEST, RepositoryName: REPOSITORY },
    tags: new Map(),
    digests: new Map(),
  };
  readonly scanner: ScannerModel = {
    coverage: { statusCode: 'ACTIVE', reason: 'PENDING_INITIAL_SCAN' },
    findings: cleanFindings(),
    pageSize: 100,
    ecr: undefined,
  };
  /** The account's pipelines, as ListPipelines lists them (a page per name, to read every page). */
  readonly pipelineNames: string[] = ['billing-api', PIPELINE];
  /** PutApprovalResult calls CodePipeline accepted. */
  readonly results: PutApprovalResultCommandInput[] = [];
  /** SNS messages published. */
  readonly messages: PublishCommandInput[] = [];
  /** Tollgate events EventBridge accepted. */
  readonly events: PutEventsRequestEntry[] = [];
  readonly mocks: Mocks;
  readonly runtime: Runtime;
  /** What the Lambda context says is left of the invocation's time. */
  remainingMs = 300_000;
  /** Runs after PutApprovalResult took effect, before its answer returns (the approval's end arriving meanwhile). */
  onApprovalResult: (() => Promise<void>) | undefined;
  /** Runs after an escalation was published, before its answer returns. */
  onEscalation: (() => Promise<void>) | undefined;
  readonly store: DynamoStore;
  private readonly failures: InjectedFailure[] = [];
  private readonly handlers: {
    readonly started: Invoke;
    readonly scan: Invoke;
    readonly ended: Invoke;
    readonly sweep: Invoke;
  };

  constructor(
    readonly doc: DynamoDBDocumentClient,
    readonly tableName: string,
    options: HarnessOptions = {},
  ) {
    const config = {
      region: REGION,
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
      maxAttempts: 1,
    };
    const clients = {
      codepipeline: new CodePipelineClient(config),
      inspector: new Inspector2Client(config),
      ecr: new ECRClient(config),
      sns: new SNSClient(config),
      eventbridge: new EventBridgeClient(config),
    };
    // Stubs on the client instances, not the classes: nothing leaks into another test's clients.
    this.mocks = {
      codepipeline: mockClient(clients.codepipeline),
      inspector: mockClient(clients.inspector),
      ecr: mockClient(clients.ecr),
      sns: mockClient(clients.sns),
      eventbridge: mockClient(clients.eventbridge),
    };
    this.answer();
    const adapters = createAwsAdapters({
      region: REGION,
      clients,
      topicArn: `arn:aws:sns:${REGION}:${ACCOUNT}:tollgate-escalations`,
      retry: { attempts: 3, baseMs: 1, maxDelayMs: 2 },
    });
    const { logger, metrics } = localObservability('DEBUG');
    this.store = new DynamoStore(doc, tableName);
    const gate = new GateService({
      ...adapters,
      store: this.store,
      clock: this.clock,
      log: logPort(logger),
      metrics: metricsPort(metrics),
      policy: options.policy ?? loadPolicySource(BASELINE_POLICY),
      config: {
        ...DEFAULT_CONFIG,
        region: REGION,
        account: undefined,
        scanSource: options.scanSource ?? 'inspector',
        ownIdentities: [TOLLGATE_ROLE],
        // Read again as in Lambda, without the real pauses.
        listingRereadsMs: DEFAULT_CONFIG.listingRereadsMs.map(() => 1),
      },
    });
    const discovery = options.discovery
      ? new ApprovalDiscovery({
          approvals: adapters.approvals,
          pipelines: new CodePipelineDirectory(clients.codepipeline, {
            attempts: 3,
            baseMs: 1,
            maxDelayMs: 2,
          }),
          store: this.store,
          clock: this.clock,
          log: logPort(logger),
          metrics: metricsPort(metrics),
          start: (e) => gate.approvalStarted(e),
          config: { ...DEFAULT_DISCOVERY, pipelines: ['*'], actions: ['*'], ...options.discovery },
        })
      : undefined;
    this.runtime = { gate, logger, metrics, discovery };
    // approval-ended runs as in Lambda (functions/common/aws-closing.ts): a GateClosing, without the policy,
    // the findings or the pipeline, over the same store, clock and events.
    const closing = new GateClosing({
      events: adapters.events,
      store: this.store,
      clock: this.clock,
      log: logPort(logger),
      metrics: metricsPort(metrics),
      config: { region: REGION, account: undefined, ownIdentities: [TOLLGATE_ROLE] },
    });
    this.handlers = {
      started: approvalStartedHandler(this.runtime) as Invoke,
      scan: scanFinishedHandler(this.runtime) as Invoke,
      ended: approvalEndedHandler({ gate: closing, logger, metrics }) as Invoke,
      sweep: sweepHandler(this.runtime) as Invoke,
    };
  }

  // ── the handlers, as Lambda invokes them ──────────────────────────────────────────────────────────

  approvalStarted(event: unknown = this.approvalStartedEvent()): Promise<HandlerResult> {
    return this.handlers.started(
      event,
      lambdaContext(() => this.remainingMs),
    );
  }

  scanFinished(event: unknown = this.inspectorScanEvent()): Promise<HandlerResult> {
    return this.handlers.scan(
      event,
      lambdaContext(() => this.remainingMs),
    );
  }

  approvalEnded(event: unknown): Promise<HandlerResult> {
    return this.handlers.ended(
      event,
      lambdaContext(() => this.remainingMs),
    );
  }

  sweep(event: unknown = this.scheduledEvent()): Promise<HandlerResult> {
    return this.handlers.sweep(
      event,
      lambdaContext(() => this.remainingMs),
    );
  }

  // ── real-shaped events, from the samples, stamped with the clock's time ─────────────────────────────

  private event(path: string): EventBridgeEvent {
    const e = JSON.parse(fixture(`aws/${path}`)) as EventBridgeEvent;
    e.id = randomUUID();
    e.time = `${this.clock.now().toISOString().slice(0, 19)}Z`;
    return e;
  }

  /** `codepipeline/synthesized/action-execution-state-change.approval-started.synthesized.json`. */
  approvalStartedEvent(): EventBridgeEvent {
    return this.event('action-execution-state-change.approval-started.synthesized.json');
  }

  /** The synthesized SUCCEEDED sample, with another end state when asked. */
  approvalEndedEvent(
    state: 'SUCCEEDED' | 'FAILED' | 'ABANDONED' | 'CANCELED' = 'SUCCEEDED',
  ): EventBridgeEvent {
    const e = this.event('action-execution-state-change.approval-succeeded.synthesized.json');
    e.detail.state = state;
    return e;
  }

  /**
   * `inspector2/inspector2-scan-ecr-initial-scan.aws-docs.json`, re-pointed at the test image and account.
   * `repository-name` stays an ARN, as Inspector sends it. `counts: null` leaves the counts out.
   */
  inspectorScanEvent(
    options: { counts?: Record<string, number> | null; status?: string; digest?: string } = {},
  ): EventBridgeEvent {
    const e = this.event('inspector2-scan-ecr-initial-scan.aws-docs.json');
    e.account = ACCOUNT;
    e.region = REGION;
    e.resources = [REPOSITORY_ARN];
    e.detail['repository-name'] = REPOSITORY_ARN;
    e.detail['image-digest'] = options.digest ?? DIGEST;
    e.detail['image-tags'] = ['ubuntu_latest'];
    e.detail['scan-status'] = options.status ?? 'INITIAL_SCAN_COMPLETE';
    if (options.counts === null) delete e.detail['finding-severity-counts'];
    else e.detail['finding-severity-counts'] = options.counts ?? scanCounts(this.scanner.findings);
    return e;
  }

  /** The Inspector sample exactly as AWS documents it (another account, region and image). */
  foreignInspectorScanEvent(): EventBridgeEvent {
    return this.event('inspector2-scan-ecr-initial-scan.aws-docs.json');
  }

  /** `inspector2/inspector2-scan-ec2-initial-scan.aws-docs.json`: no image digest. In our account and region. */
  ec2ScanEvent(): EventBridgeEvent {
    return this.ownScanEvent('inspector2-scan-ec2-initial-scan.aws-docs.json');
  }

  /** `inspector2/inspector2-scan-lambda-initial-scan.aws-docs.json`: a function, no image. Ours. */
  lambdaScanEvent(): EventBridgeEvent {
    return this.ownScanEvent('inspector2-scan-lambda-initial-scan.aws-docs.json');
  }

  private ownScanEvent(sample: string): EventBridgeEvent {
    const e = this.event(sample);
    e.account = ACCOUNT;
    e.region = REGION;
    return e;
  }

  /** `ecr/ecr-image-scan.aws-docs.json` (basic scanning: bare repository name), re-pointed at the test image. */
  ecrScanEvent(options: { counts: Record<string, number>; status?: string }): EventBridgeEvent {
    const e = this.event('ecr-image-scan.aws-docs.json');
    e.account = ACCOUNT;
    e.region = REGION;
    e.resources = [REPOSITORY_ARN];
    e.detail['repository-name'] = REPOSITORY;
    e.detail['image-digest'] = DIGEST;
    e.detail['scan-status'] = options.status ?? 'COMPLETE';
    e.detail['finding-severity-counts'] = options.counts;
    return e;
  }

  /** `cloudtrail-put-approval-result.derived.json`: who called PutApprovalResult (a person, unless told). */
  cloudTrailEvent(
    options: { identity?: string; token?: string; status?: 'Approved' | 'Rejected' } = {},
  ): EventBridgeEvent {
    const e = this.event('cloudtrail-put-approval-result.derived.json');
    const at = e.time;
    const identity = e.detail.userIdentity as Json;
    if (options.identity !== undefined) {
      identity.arn = options.identity;
      identity.principalId = `AROAEXAMPLEID123456789:${options.identity.split('/').pop() ?? 'x'}`;
    }
    const request = e.detail.requestParameters as Json;
    if (options.token !== undefined) request.token = options.token;
    if (options.status !== undefined) (request.result as Json).status = options.status;
    e.detail.eventTime = at;
    return e;
  }

  /** An EventBridge scheduled rule's event. */
  scheduledEvent(): EventBridgeEvent {
    return {
      version: '0',
      id: randomUUID(),
      'detail-type': 'Scheduled Event',
      source: 'aws.events',
      account: ACCOUNT,
      time: `${this.clock.now().toISOString().slice(0, 19)}Z`,
      region: REGION,
      resources: [`arn:aws:events:${REGION}:${ACCOUNT}:rule/tollgate-sweep`],
      detail: {},
    };
  }

  // ── failures ────────────────────────────────────────────────────────────────────────────────────────

  /** From now on, `operation` fails with `error()` (`times` calls, every call by default; `when` picks calls). */
  fail(
    operation: string,
    error: () => Error,
    options: { times?: number; when?: (input: Json) => boolean } = {},
  ): void {
    this.failures.push({
      operation,
      error,
      remaining: options.times ?? Number.POSITIVE_INFINITY,
      when: options.when,
    });
  }

  /** The service recovers: injected failures of `operation` (of every operation by default) end. */
  heal(operation?: string): void {
    for (const f of this.failures) if (operation === undefined || f.operation === operation) f.remaining = 0;
  }

  private check(operation: string, input: object): void {
    const failure = this.failures.find(
      (f) => f.operation === operation && f.remaining > 0 && (f.when === undefined || f.when(input as Json)),
    );
    if (!failure) return;
    failure.remaining--;
    throw failure.error();
  }

  // ── what the store holds ──────────────────────────────────────────────────────────────────────────

  async gate(key: GateKey = KEY): Promise<Gate | undefined> {
    return this.store.getGate(key);
  }

  async decision(key: GateKey = KEY): Promise<StoredDecision | undefined> {
    return this.store.getDecision(key);
  }

  /** Every item of the table (a Scan: tests only). */
  async items(): Promise<Json[]> {
    const items: Json[] = [];
    for await (const page of paginateScan({ client: this.doc }, { TableName: this.tableName })) {
      items.push(...(page.Items ?? []));
    }
    return items;
  }

  async decisionItems(): Promise<Json[]> {
    return (await this.items()).filter((i) => i.sk === 'DECISION');
  }

  // ── the stubs' answers ────────────────────────────────────────────────────────────────────────────

  private answer(): void {
    const { codepipeline, inspector, ecr, sns, eventbridge } = this.mocks;

    codepipeline.on(GetPipelineStateCommand).callsFake(async (input: GetPipelineStateCommandInput) => {
      this.check('GetPipelineState', input);
      this.knownPipeline(input.name);
      const out = sample<GetPipelineStateCommandOutput>(
        'get-pipeline-state.approval-in-progress.model-derived.json',
      );
      const stage = this.pipeline.stage;
      for (const s of out.stageStates ?? []) {
        if (stage.executionId === undefined) {
          // PARALLEL execution mode: the state shows no execution of the stage, and no token.
          delete s.latestExecution;
          if (s.stageName === STAGE) for (const a of s.actionStates ?? []) delete a.latestExecution;
          continue;
        }
        if (s.latestExecution) s.latestExecution.pipelineExecutionId = stage.executionId;
        if (s.stageName !== STAGE) continue;
        if (s.latestExecution)
          s.latestExecution.status = stage.status === 'InProgress' ? 'InProgress' : 'Succeeded';
        for (const a of s.actionStates ?? []) {
          a.latestExecution = {
            ...(stage.actionExecutionId === null
              ? {}
              : { actionExecutionId: stage.actionExecutionId ?? ACTION_EXECUTION }),
            status: stage.status as 'InProgress',
            lastStatusChange: stage.since ?? this.clock.now(),
            ...(stage.token !== undefined && stage.status === 'InProgress' ? { token: stage.token } : {}),
          };
        }
      }
      return out;
    });

    codepipeline.on(ListPipelinesCommand).callsFake(async (input: ListPipelinesCommandInput) => {
      this.check('ListPipelines', input);
      const offset = input.nextToken === undefined ? 0 : pageStart(input.nextToken);
      const name = this.pipelineNames[offset];
      return {
        pipelines:
          name === undefined
            ? []
            : [
                {
                  name,
                  version: 3,
                  pipelineType: 'V2',
                  // Only the gated pipeline's mode is modelled; the other one is never read.
                  ...(name === PIPELINE && this.executionMode() === undefined
                    ? {}
                    : { executionMode: name === PIPELINE ? this.executionMode() : 'SUPERSEDED' }),
                  created: new Date(START),
                  updated: new Date(START),
                },
              ],
        ...(offset + 1 < this.pipelineNames.length ? { nextToken: pageToken(offset + 1) } : {}),
      };
    });

    codepipeline
      .on(ListPipelineExecutionsCommand)
      .callsFake(async (input: ListPipelineExecutionsCommandInput) => {
        this.check('ListPipelineExecutions', input);
        this.knownPipeline(input.pipelineName);
        const all = this.pipeline.executions ?? [
          { executionId: EXECUTION, status: 'InProgress', startTime: new Date(START) },
        ];
        const offset = input.nextToken === undefined ? 0 : pageStart(input.nextToken);
        const page: PipelineExecutionSummary[] = all.slice(offset, offset + 1).map((x) => ({
          pipelineExecutionId: x.executionId,
          status: x.status as 'InProgress',
          startTime: x.startTime,
          lastUpdateTime: x.startTime,
          executionMode: x.executionMode ?? this.executionMode() ?? 'PARALLEL',
          executionType: 'STANDARD',
        }));
        return {
          pipelineExecutionSummaries: page,
          ...(offset + 1 < all.length ? { nextToken: pageToken(offset + 1) } : {}),
        };
      });

    codepipeline
      .on(ListActionExecutionsCommand)
      .callsFake(async (input: ListActionExecutionsCommandInput) => {
        this.check('ListActionExecutions', input);
        this.knownPipeline(input.pipelineName);
        const out = sample<ListActionExecutionsCommandOutput>(
          'list-action-executions.approval-in-progress.model-derived.json',
        );
        const wanted = input.filter?.pipelineExecutionId;
        const action = this.pipeline.action;
        out.actionExecutionDetails = (out.actionExecutionDetails ?? []).filter(
          (d) => wanted === undefined || d.pipelineExecutionId === wanted,
        );
        for (const d of [...out.actionExecutionDetails]) {
          if (d.actionName !== ACTION) continue;
          for (const earlier of action.earlierRuns ?? []) {
            const run = structuredClone(d);
            if (earlier.customData !== undefined && run.input?.resolvedConfiguration)
              run.input.resolvedConfiguration.CustomData = earlier.customData;
            out.actionExecutionDetails.push({
              ...run,
              actionExecutionId: earlier.actionExecutionId,
              status: earlier.status as 'Failed',
            });
          }
          if (action.actionExecutionId !== undefined) d.actionExecutionId = action.actionExecutionId;
          if (action.startedAt !== undefined) d.startTime = action.startedAt;
          if (action.actionTypeId !== undefined && d.input)
            d.input.actionTypeId = action.actionTypeId as NonNullable<typeof d.input.actionTypeId>;
          d.status = action.status as 'InProgress';
          const configuration = d.input?.configuration ?? {};
          const resolved = d.input?.resolvedConfiguration ?? {};
          if (action.customData === undefined) {
            delete configuration.CustomData;
            delete resolved.CustomData;
          } else resolved.CustomData = action.customData;
          if (action.externalExecutionId !== undefined && d.output) {
            d.output.executionResult = { externalExecutionId: action.externalExecutionId };
          }
          if (action.updatedBy !== undefined) d.updatedBy = action.updatedBy;
          if (action.updatedAt !== undefined) d.lastUpdateTime = action.updatedAt;
          if (action.summary !== undefined && d.output) {
            d.output.executionResult = {
              ...d.output.executionResult,
              externalExecutionSummary: action.summary,
            };
          }
        }
        if (action.unlistedReads !== undefined) {
          action.unlisted = action.unlistedReads > 0;
          action.unlistedReads = Math.max(0, action.unlistedReads - 1);
        }
        if (action.unlisted) {
          out.actionExecutionDetails = out.actionExecutionDetails.filter((d) => d.actionName !== ACTION);
        }
        if (action.latestUnlisted) {
          const earlier = new Set((action.earlierRuns ?? []).map((r) => r.actionExecutionId));
          out.actionExecutionDetails = out.actionExecutionDetails.filter(
            (d) => d.actionName !== ACTION || earlier.has(d.actionExecutionId ?? ''),
          );
        }
        return out;
      });

    codepipeline
      .on(GetPipelineExecutionCommand)
      .callsFake(async (input: GetPipelineExecutionCommandInput) => {
        this.check('GetPipelineExecution', input);
        this.knownPipeline(input.pipelineName);
        const out = sample<GetPipelineExecutionCommandOutput>(
          'get-pipeline-execution.v2-variables.model-derived.json',
        );
        if (out.pipelineExecution) {
          out.pipelineExecution.pipelineExecutionId = input.pipelineExecutionId;
          out.pipelineExecution.variables = Object.entries(this.pipeline.variables).map(
            ([name, resolvedValue]) => ({
              name,
              resolvedValue,
            }),
          );
        }
        return out;
      });

    codepipeline.on(PutApprovalResultCommand).callsFake(async (input: PutApprovalResultCommandInput) => {
      this.check('PutApprovalResult', input);
      this.knownPipeline(input.pipelineName);
      const { stage, action } = this.pipeline;
      const byState = stage.token !== undefined && input.token === stage.token;
      const byExecution =
        action.externalExecutionId !== undefined && input.token === action.externalExecutionId;
      if (!byState && !byExecution) {
        throw new InvalidApprovalTokenException({
          message: `Approval token '${input.token}' either does not exist or is not the correct token for the action or stage.`,
          $metadata: { httpStatusCode: 400 },
        });
      }
      if (action.status !== 'InProgress') {
        throw new ApprovalAlreadyCompletedException({
          message: 'The approval action has already been approved or rejected',
          $metadata: { httpStatusCode: 400 },
        });
      }
      const status = input.result?.status === 'Approved' ? 'Succeeded' : 'Failed';
      action.status = status;
      if (byState) stage.status = status;
      this.results.push(input);
      await this.onApprovalResult?.();
      return { approvedAt: this.clock.now() };
    });

    ecr.on(DescribeImagesCommand).callsFake(async (input: DescribeImagesCommandInput) => {
      this.check('DescribeImages', input);
      const repository = String(input.repositoryName);
      const tag = input.imageIds?.[0]?.imageTag;
      const asked = input.imageIds?.[0]?.imageDigest;
      // By digest: any is an image unless `digests` says otherwise; by tag: the tags' map.
      const digest = asked ?? this.pipeline.tags.get(`${repository}:${tag}`);
      const mediaType = asked === undefined ? undefined : this.pipeline.digests.get(`${repository}@${asked}`);
      if (digest === undefined || mediaType === null) {
        const id = asked === undefined ? `imageTag:'${tag}'` : `imageDigest:'${asked}'`;
        throw new ImageNotFoundException({
          message: `The image with imageId {${id}} does not exist within the repository with name '${repository}'`,
          $metadata: { httpStatusCode: 400 },
        });
      }
      const tags =
        asked === undefined
          ? [tag]
          : [...this.pipeline.tags]
              .filter(([ref, d]) => d === asked && ref.startsWith(`${repository}:`))
              .map(([ref]) => ref.slice(repository.length + 1));
      return {
        imageDetails: [
          {
            registryId: input.registryId ?? ACCOUNT,
            repositoryName: repository,
            imageDigest: digest,
            imageTags: tags,
            imageSizeInBytes: 29_453_211,
            imagePushedAt: this.pipeline.pushedAt ?? new Date(Date.parse(START) - 5 * 60_000),
            imageManifestMediaType: mediaType ?? 'application/vnd.oci.image.manifest.v1+json',
          },
        ],
      };
    });

    ecr
      .on(DescribeImageScanFindingsCommand)
      .callsFake(async (input: DescribeImageScanFindingsCommandInput) => {
        this.check('DescribeImageScanFindings', input);
        const scan = this.scanner.ecr;
        if (!scan || input.imageId?.imageDigest !== DIGEST || input.repositoryName !== REPOSITORY) {
          throw new ScanNotFoundException({
            message: `Image scan does not exist for the image with '{imageDigest:'${input.imageId?.imageDigest}'}'`,
            $metadata: { httpStatusCode: 400 },
          });
        }
        const out = sample<DescribeImageScanFindingsCommandOutput>(
          'describe-image-scan-findings.basic.awscli-example.json',
        );
        out.registryId = ACCOUNT;
        out.repositoryName = REPOSITORY;
        out.imageId = { imageDigest: DIGEST, imageTag: 'ubuntu_latest' };
        out.imageScanStatus = { status: scan.status as 'COMPLETE', description: `scan ${scan.status}` };
        const all = scan.status === 'COMPLETE' ? scan.findings : [];
        // ECR counts every finding of the scan on every page, by its own severity (UNDEFINED when it has none),
        // whatever part of the list the page holds.
        const counts: Partial<Record<FindingSeverity, number>> = {};
        for (const f of all) {
          const severity = f.severity ?? 'UNDEFINED';
          counts[severity] = (counts[severity] ?? 0) + 1;
        }
        const from = input.nextToken === undefined ? 0 : pageStart(input.nextToken);
        const to = from + Math.min(scan.pageSize ?? 1000, input.maxResults ?? 100);
        if (out.imageScanFindings) {
          out.imageScanFindings.findings = structuredClone(all.slice(from, to));
          out.imageScanFindings.findingSeverityCounts = counts;
        }
        return { ...out, ...(to < all.length ? { nextToken: pageToken(to) } : {}) };
      });

    inspector.on(ListCoverageCommand).callsFake(async (input: ListCoverageCommandInput) => {
      this.check('ListCoverage', input);
      const repository = input.filterCriteria?.ecrRepositoryName?.[0]?.value;
      const resource = (
        repo: string,
        digest: string,
        reason: string,
        statusCode = 'ACTIVE',
      ): CoveredResource => ({
        resourceType: 'AWS_ECR_CONTAINER_IMAGE',
        resourceId: `arn:aws:ecr:${REGION}:${ACCOUNT}:repository/${repo}/${digest}`,
        accountId: ACCOUNT,
        scanType: 'PACKAGE',
        scanMode: 'EC2_AGENTLESS',
        scanStatus: { statusCode: statusCode as 'ACTIVE', reason: reason as 'SUCCESSFUL' },
        resourceMetadata: {
          ecrRepository: { name: repo, scanFrequency: 'SCAN_ON_PUSH' },
          ecrImage: { tags: [] },
        },
        lastScannedAt: this.clock.now(),
      });
      // The same image pushed to another repository (still pending there), and another image of ours: the
      // adapter must filter by repository and match the digest at the end of the resource id.
      const all = [
        resource(`${REPOSITORY}-mirror`, DIGEST, 'PENDING_INITIAL_SCAN'),
        resource(REPOSITORY, `sha256:${'0'.repeat(64)}`, 'SUCCESSFUL'),
      ];
      const mine = this.scanner.coverage;
      if (mine) all.push(resource(REPOSITORY, DIGEST, mine.reason, mine.statusCode));
      const resourceId = input.filterCriteria?.resourceId?.[0]?.value;
      return {
        coveredResources: all.filter(
          (r) =>
            (repository === undefined || r.resourceMetadata?.ecrRepository?.name === repository) &&
            (resourceId === undefined || r.resourceId === resourceId),
        ),
      };
    });

    inspector.on(ListFindingsCommand).callsFake(async (input: ListFindingsCommandInput) => {
      this.check('ListFindings', input);
      const criteria = input.filterCriteria ?? {};
      const digest = criteria.ecrImageHash?.[0]?.value;
      const repository = criteria.ecrImageRepositoryName?.[0]?.value;
      const severity = criteria.severity?.[0]?.value;
      const registry = criteria.ecrImageRegistry?.[0]?.value;
      const all = this.scanner.findings.filter((f) => {
        const image = f.resources?.[0]?.details?.awsEcrContainerImage;
        return (
          image?.imageHash === digest &&
          (repository === undefined || image?.repositoryName === repository) &&
          (registry === undefined || image?.registry === registry) &&
          (severity === undefined || f.severity === severity)
        );
      });
      const from = input.nextToken === undefined ? 0 : pageStart(input.nextToken);
      const to = from + Math.min(this.scanner.pageSize, input.maxResults ?? 100);
      return {
        findings: structuredClone(all.slice(from, to)),
        ...(to < all.length ? { nextToken: pageToken(to) } : {}),
      };
    });

    sns.on(PublishCommand).callsFake(async (input: PublishCommandInput) => {
      this.check('Publish', input);
      this.messages.push(input);
      await this.onEscalation?.();
      return { MessageId: randomUUID() };
    });

    eventbridge.on(PutEventsCommand).callsFake(async (input: PutEventsCommandInput) => {
      this.check('PutEvents', input);
      const entries = input.Entries ?? [];
      this.events.push(...entries);
      return { FailedEntryCount: 0, Entries: entries.map(() => ({ EventId: randomUUID() })) };
    });
  }

  /** `PipelineModel.executionMode`, its default filled in; undefined: the summary gives none. */
  private executionMode(): 'SUPERSEDED' | 'QUEUED' | 'PARALLEL' | undefined {
    const mode = this.pipeline.executionMode;
    if (mode === null) return undefined;
    return mode ?? (this.pipeline.stage.executionId === undefined ? 'PARALLEL' : 'SUPERSEDED');
  }

  private knownPipeline(name: string | undefined): void {
    if (name !== PIPELINE) {
      throw new PipelineNotFoundException({
        message: `Account '${ACCOUNT}' does not have a pipeline with name '${name}'`,
        $metadata: { httpStatusCode: 400 },
      });
    }
  }
}

/** Opaque-looking page tokens, as the services send them. */
function pageToken(offset: number): string {
  return Buffer.from(JSON.stringify({ offset, nonce: 'e3b0c442' })).toString('base64');
}

function pageStart(token: string): number {
  const parsed: unknown = JSON.parse(Buffer.from(token, 'base64').toString('utf8'));
  return isJson(parsed) && typeof parsed.offset === 'number' ? parsed.offset : 0;
}

/** Whether a ListFindings request asks for a later page (it carries a nextToken). */
export function laterPage(input: object): boolean {
  return typeof (input as Json).nextToken === 'string';
}

/** The severity a ListFindings request's chain reads. */
export function severityOf(input: object): string | undefined {
  const filter = (input as Json).filterCriteria;
  const criteria = isJson(filter) ? filter : {};
  const list = criteria.severity;
  return Array.isArray(list) && isJson(list[0]) ? String(list[0].value) : undefined;
}

/** A fresh table in the file's dynalite, and a harness over it. */
export async function createHarness(dynamo: LocalDynamo, options: HarnessOptions = {}): Promise<Harness> {
  tableSerial++;
  const tableName = `tollgate-gate-${process.pid}-${tableSerial}`;
  await ensureTable(dynamo.client, tableName);
  return new Harness(dynamo.client, tableName, options);
}

/** `remainingMs` is read at each call: a test can let the invocation's time run short while it works. */
function lambdaContext(remainingMs: () => number): Context {
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName: 'x',
    functionVersion: '$LATEST',
    invokedFunctionArn: FUNCTION_ARN,
    memoryLimitInMB: '256',
    awsRequestId: randomUUID(),
    logGroupName: '/aws/lambda/x',
    logStreamName: '2026/11/25/[$LATEST]0123456789abcdef0123456789abcdef',
    getRemainingTimeInMillis: remainingMs,
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}
