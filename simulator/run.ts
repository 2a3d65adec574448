import { randomUUID } from 'node:crypto';
import { CodePipelineClient } from '@aws-sdk/client-codepipeline';
import { ECRClient } from '@aws-sdk/client-ecr';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { Inspector2Client } from '@aws-sdk/client-inspector2';
import { SNSClient } from '@aws-sdk/client-sns';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { Context } from 'aws-lambda';
import { createAwsAdapters } from '../adapters/aws/index.js';
import { DynamoStore } from '../adapters/dynamodb/store.js';
import { approvalEndedHandler } from '../functions/approval-ended/handler.js';
import { approvalStartedHandler } from '../functions/approval-started/handler.js';
import { loadPolicySource } from '../functions/common/policy.js';
import { localObservability, logPort, metricsPort, type Runtime } from '../functions/common/runtime.js';
import { scanFinishedHandler } from '../functions/scan-finished/handler.js';
import { sweepHandler } from '../functions/sweep/handler.js';
import type { DecisionRecord } from '../shared/decision/record.js';
import { DEFAULT_CONFIG, describeError, GateService } from '../shared/gate/gate.js';
import type {
  ApprovalResult,
  Gate,
  GateKey,
  GateState,
  StoredDecision,
  TimelineEntry,
} from '../shared/gate/model.js';
import { gateId } from '../shared/gate/model.js';
import type { ClockPort } from '../shared/gate/ports.js';
import type { LoadedScenario, ScenarioExpectation } from './scenario.js';
import { offsetMs } from './scenario.js';
import { actionEvent, scanEvent, scheduledEvent, TOLLGATE_ROLE, World } from './world.js';

type Json = Record<string, unknown>;
type FunctionName = 'approval-started' | 'scan-finished' | 'approval-ended' | 'sweep';

/** The simulated clock: the scenario's time, moved by its steps. */
export class SimClock implements ClockPort {
  constructor(private current: number) {}
  now(): Date {
    return new Date(this.current);
  }
  set(ms: number): void {
    // Time never runs backwards, whatever a step says.
    this.current = Math.max(this.current, ms);
  }
}

export interface Delivery {
  readonly at: string;
  readonly function: FunctionName | undefined;
  readonly detailType: string;
  readonly attempts: number;
  /** `ok`, `ignored` (the handler took it for another kind), `unmatched` (no rule), `dead-lettered`. */
  readonly outcome: 'ok' | 'ignored' | 'unmatched' | 'dead-lettered';
  readonly error?: string;
}

export interface GateView {
  readonly pipeline: string;
  readonly executionId: string;
  readonly stage: string;
  readonly action: string;
  readonly state: GateState | null;
  readonly outcome: DecisionRecord['outcome'] | null;
  readonly approvalResult: ApprovalResult | null;
  readonly notifications: number;
  readonly image: Gate['image'] | null;
  readonly reviewer: Gate['reviewer'] | null;
  readonly closure: Gate['closure'] | null;
  readonly staleReason: string | null;
  readonly decision: DecisionRecord | null;
  readonly decidedBy: Pick<StoredDecision, 'trigger' | 'decidedAt' | 'latencyMs'> | null;
  readonly timeline: readonly TimelineEntry[];
}

export interface SimulationResult {
  readonly scenario: string;
  readonly file: string;
  readonly gates: readonly GateView[];
  readonly deliveries: readonly Delivery[];
  readonly messages: World['messages'];
  readonly events: readonly Json[];
  readonly calls: Readonly<Record<string, number>>;
  readonly mismatches: readonly string[];
}

export interface SimulationOptions {
  readonly doc: DynamoDBDocumentClient;
  readonly tableName: string;
  /** Lambda's asynchronous invocation retries an event twice after a failure, then dead-letters it. */
  readonly attempts?: number;
  readonly latencyMs?: number;
  readonly logLevel?: 'DEBUG' | 'INFO' | 'WARN' | 'ERROR' | 'SILENT';
  /** Hooks for tests and the benchmark: see every delivery, or wrap it (duplicates, reordering). */
  readonly onWorld?: (world: World) => void;
}

/** Builds what Lambda would run with, over the scenario's world and the given table. */
export function simulationRuntime(
  loaded: LoadedScenario,
  world: World,
  clock: SimClock,
  options: SimulationOptions,
): Runtime {
  const { region, account, scanSource } = loaded.scenario;
  const config = { region, credentials: { accessKeyId: 'local', secretAccessKey: 'local' }, maxAttempts: 1 };
  const clients = {
    codepipeline: answeredBy(new CodePipelineClient(config), world),
    inspector: answeredBy(new Inspector2Client(config), world),
    ecr: answeredBy(new ECRClient(config), world),
    sns: answeredBy(new SNSClient(config), world),
    eventbridge: answeredBy(new EventBridgeClient(config), world),
  };
  const adapters = createAwsAdapters({
    region,
    clients,
    topicArn: `arn:aws:sns:${region}:${account}:tollgate-escalations`,
    retry: { attempts: 3, baseMs: 1, maxDelayMs: 5 },
  });
  countedBy(options.doc, world);
  const { logger, metrics } = localObservability(options.logLevel ?? 'SILENT');
  const gate = new GateService({
    ...adapters,
    store: new DynamoStore(options.doc, options.tableName),
    clock,
    log: logPort(logger),
    metrics: metricsPort(metrics),
    policy: loadPolicySource(loaded.policyFile),
    config: { ...DEFAULT_CONFIG, region, account, scanSource, ownIdentities: [TOLLGATE_ROLE] },
  });
  return { gate, logger, metrics };
}

/** Replays a scenario through the handlers, in order, and reports each gate as the store holds it. */
export async function runScenario(
  loaded: LoadedScenario,
  options: SimulationOptions,
): Promise<SimulationResult> {
  const { scenario } = loaded;
  const start = Date.parse(scenario.start);
  const clock = new SimClock(start);
  const world = new World(
    loaded,
    clock,
    options.latencyMs === undefined ? {} : { latencyMs: options.latencyMs },
  );
  options.onWorld?.(world);
  const runtime = simulationRuntime(loaded, world, clock, options);
  type Invoke = (event: unknown, context: Context) => Promise<{ ignored?: string } | undefined>;
  const handlers: Record<FunctionName, Invoke> = {
    'approval-started': approvalStartedHandler(runtime) as Invoke,
    'scan-finished': scanFinishedHandler(runtime) as Invoke,
    'approval-ended': approvalEndedHandler(runtime) as Invoke,
    sweep: sweepHandler(runtime) as Invoke,
  };
  const deliveries: Delivery[] = [];
  const keys = new Map<string, GateKey>();
  const attempts = options.attempts ?? 3;

  const deliver = async (event: Json): Promise<void> => {
    const fn = route(event);
    const detailType = String(event['detail-type'] ?? '');
    const at = clock.now().toISOString();
    const key = gateKeyOf(event);
    if (key) keys.set(gateId(key), key);
    if (!fn) {
      deliveries.push({ at, function: undefined, detailType, attempts: 0, outcome: 'unmatched' });
      return;
    }
    let lastError = '';
    for (let attempt = 1; attempt <= attempts; attempt++) {
      try {
        const result = await handlers[fn](event, lambdaContext(fn, scenario.region, scenario.account));
        deliveries.push({
          at,
          function: fn,
          detailType,
          attempts: attempt,
          outcome: result?.ignored ? 'ignored' : 'ok',
        });
        return;
      } catch (e) {
        lastError = describeError(e);
      }
    }
    deliveries.push({ at, function: fn, detailType, attempts, outcome: 'dead-lettered', error: lastError });
  };

  const drain = async (): Promise<void> => {
    for (let guard = 0; world.outbox.length > 0 && guard < 1000; guard++) {
      await deliver(world.outbox.shift()!);
    }
  };

  for (const step of scenario.steps) {
    const offset = offsetMs(step.at);
    if (offset !== undefined) clock.set(start + offset);
    if (step.approvalStarted) {
      const slot = world.startApproval(step.approvalStarted);
      await deliver(actionEvent(world, slot, 'STARTED'));
    } else if (step.supersede) {
      world.supersede(step.supersede);
    } else if (step.scan) {
      world.setScan(step.scan.digest, step.scan.repository, step.scan.status);
      if (step.scan.event) {
        const tags = scenario.world.images.find((i) => i.digest === step.scan?.digest)?.tags ?? [];
        await deliver(scanEvent(world, scenario.scanSource, step.scan, tags));
      }
    } else if (step.findings) {
      const source =
        'file' in step.findings ? { file: step.findings.file } : { findings: step.findings.findings };
      world.setFindings(step.findings.digest, source, step.findings.append);
    } else if (step.sweep) {
      await deliver(scheduledEvent(world));
    } else if (step.fail) {
      world.fail({ ...step.fail, page: step.fail.page });
    } else if (step.review) {
      const r = step.review;
      const slot = world.findSlot(r.pipeline, r.stage, r.action);
      try {
        world.putApprovalResult(
          {
            pipelineName: r.pipeline,
            stageName: r.stage,
            actionName: r.action,
            token: slot?.token,
            result: { status: r.status, summary: r.summary },
          },
          r.identity,
        );
      } catch (e) {
        deliveries.push({
          at: clock.now().toISOString(),
          function: undefined,
          detailType: 'review refused',
          attempts: 0,
          outcome: 'unmatched',
          error: describeError(e),
        });
      }
    } else if (step.approvalEnded) {
      const e = step.approvalEnded;
      const slot = world.endApproval(
        e.pipeline,
        e.stage,
        e.action,
        e.state === 'FAILED' ? 'Failed' : 'Abandoned',
      );
      await deliver(actionEvent(world, { ...slot, executionId: e.executionId }, e.state));
    } else if (step.event) {
      await deliver(step.event);
    }
    await drain();
  }

  const gates = await Promise.all([...keys.values()].map((key) => viewOf(options, key)));
  return {
    scenario: scenario.name,
    file: loaded.file,
    gates,
    deliveries,
    messages: world.messages,
    events: world.published,
    calls: countCalls(world),
    mismatches: checkExpectations(scenario.expect, gates),
  };
}

/** Which function's rule matches an event, as the stack's EventBridge rules would decide. */
export function route(event: Json): FunctionName | undefined {
  const source = event.source;
  const type = event['detail-type'];
  const detail = (typeof event.detail === 'object' && event.detail !== null ? event.detail : {}) as Json;
  if (source === 'aws.codepipeline' && type === 'CodePipeline Action Execution State Change') {
    const t = (detail.type ?? {}) as Json;
    if (t.category !== 'Approval' || t.provider !== 'Manual') return undefined;
    if (detail.state === 'STARTED') return 'approval-started';
    if (['SUCCEEDED', 'FAILED', 'ABANDONED', 'CANCELED'].includes(String(detail.state)))
      return 'approval-ended';
    return undefined;
  }
  if (source === 'aws.codepipeline' && type === 'AWS API Call via CloudTrail') {
    return detail.eventName === 'PutApprovalResult' ? 'approval-ended' : undefined;
  }
  if (source === 'aws.inspector2' && type === 'Inspector2 Scan') {
    // The rule matches only ECR image scans: EC2 and Lambda scans carry no image digest.
    return typeof detail['image-digest'] === 'string' ? 'scan-finished' : undefined;
  }
  if (source === 'aws.ecr' && type === 'ECR Image Scan') return 'scan-finished';
  if ((source === 'aws.events' || source === 'aws.scheduler') && type === 'Scheduled Event') return 'sweep';
  return undefined;
}

function gateKeyOf(event: Json): GateKey | undefined {
  if (event['detail-type'] !== 'CodePipeline Action Execution State Change') return undefined;
  const d = (event.detail ?? {}) as Json;
  const [pipeline, executionId, stage, action] = [d.pipeline, d['execution-id'], d.stage, d.action];
  if (
    typeof pipeline !== 'string' ||
    typeof executionId !== 'string' ||
    typeof stage !== 'string' ||
    typeof action !== 'string'
  ) {
    return undefined;
  }
  return { pipeline, executionId, stage, action };
}

async function viewOf(options: SimulationOptions, key: GateKey): Promise<GateView> {
  const store = new DynamoStore(options.doc, options.tableName);
  const [gate, decision] = await Promise.all([store.getGate(key), store.getDecision(key)]);
  return {
    ...key,
    state: gate?.state ?? null,
    outcome: gate?.outcome ?? null,
    approvalResult: gate?.approvalResult ?? null,
    notifications: gate?.notifications ?? 0,
    image: gate?.image ?? null,
    reviewer: gate?.reviewer ?? null,
    closure: gate?.closure ?? null,
    staleReason: gate?.staleReason ?? null,
    decision: decision?.record ?? null,
    decidedBy: decision
      ? { trigger: decision.trigger, decidedAt: decision.decidedAt, latencyMs: decision.latencyMs }
      : null,
    timeline: gate?.timeline ?? [],
  };
}

function checkExpectations(
  expectations: readonly ScenarioExpectation[],
  gates: readonly GateView[],
): string[] {
  const problems: string[] = [];
  for (const x of expectations) {
    const gate = gates.find(
      (g) =>
        g.executionId === x.executionId &&
        (x.stage === undefined || g.stage === x.stage) &&
        (x.action === undefined || g.action === x.action),
    );
    const name = `${x.executionId}${x.stage ? `/${x.stage}` : ''}${x.action ? `/${x.action}` : ''}`;
    if (!gate) {
      problems.push(`${name}: expected a gate; none was seen`);
      continue;
    }
    const check = (field: string, want: unknown, got: unknown): void => {
      if (want !== undefined && want !== got)
        problems.push(`${name}: expected ${field} ${String(want)}; got ${String(got)}`);
    };
    check('state', x.state, gate.state);
    check('outcome', x.outcome, gate.outcome);
    check('notifications', x.notifications, gate.notifications);
    check('approvalResult', x.approvalResult, gate.approvalResult?.status ?? null);
    if (x.reviewer !== undefined && !(gate.reviewer?.identity ?? '').includes(x.reviewer)) {
      problems.push(`${name}: expected reviewer ${x.reviewer}; got ${gate.reviewer?.identity ?? 'none'}`);
    }
  }
  return problems;
}

function countCalls(world: World): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const c of world.calls) counts[c.operation] = (counts[c.operation] ?? 0) + 1;
  return counts;
}

/** The part of an SDK client (or the DynamoDB document client) the simulator hooks into. */
export interface MiddlewareClient {
  middlewareStack: {
    add(
      middleware: (
        next: (args: { input: unknown }) => Promise<unknown>,
        context: { commandName?: string },
      ) => (args: { input: unknown }) => Promise<unknown>,
      options: { step: 'initialize'; name: string; override?: boolean; priority?: 'high' | 'normal' | 'low' },
    ): void;
  };
}

/** Answers every command of `client` from the world, in place of the HTTP call (no network, no credentials). */
export function answeredBy<C>(client: C, world: World): C {
  (client as unknown as MiddlewareClient).middlewareStack.add(
    (_next, context) => async (args) => ({
      output: await world.answer(context.commandName ?? 'Unknown', (args.input ?? {}) as Json),
      response: {},
    }),
    { step: 'initialize', name: 'tollgateSimulatedWorld', override: true },
  );
  return client;
}

/** Lets the world count (and delay, and fail) the store's DynamoDB calls, which dynalite answers. */
function countedBy(doc: DynamoDBDocumentClient, world: World): void {
  (doc as unknown as MiddlewareClient).middlewareStack.add(
    (next, context) => (args) =>
      world.around((context.commandName ?? 'DynamoDB').replace(/Command$/, ''), () => next(args)),
    { step: 'initialize', name: 'tollgateCountedStore', override: true },
  );
}

/** The Lambda context a function gets; its ARN tells the handler which account and region are its own. */
export function lambdaContext(fn: string, region: string, account: string): Context {
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName: `tollgate-${fn}`,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:${region}:${account}:function:tollgate-${fn}`,
    memoryLimitInMB: '256',
    awsRequestId: randomUUID(),
    logGroupName: `/aws/lambda/tollgate-${fn}`,
    logStreamName: 'local',
    getRemainingTimeInMillis: () => 30_000,
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}
