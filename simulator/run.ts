import { randomUUID } from 'node:crypto';
import { CodePipelineClient } from '@aws-sdk/client-codepipeline';
import { ECRClient } from '@aws-sdk/client-ecr';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { Inspector2Client } from '@aws-sdk/client-inspector2';
import { SNSClient } from '@aws-sdk/client-sns';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { Context } from 'aws-lambda';
import { CodePipelineDirectory } from '../adapters/aws/codepipeline.js';
import { type AwsAdapters, type AwsClients, createAwsAdapters } from '../adapters/aws/index.js';
import { DynamoStore } from '../adapters/dynamodb/store.js';
import { approvalEndedHandler } from '../functions/approval-ended/handler.js';
import { approvalStartedHandler } from '../functions/approval-started/handler.js';
import { loadPolicySource } from '../functions/common/policy.js';
import { localObservability, logPort, metricsPort, type Runtime } from '../functions/common/runtime.js';
import { scanFinishedHandler } from '../functions/scan-finished/handler.js';
import { sweepHandler } from '../functions/sweep/handler.js';
import type { DecisionRecord } from '../shared/decision/record.js';
import { ApprovalDiscovery, DEFAULT_DISCOVERY, type DiscoveryConfig } from '../shared/gate/discovery.js';
import { DEFAULT_CONFIG, describeError, GateClosing, GateService } from '../shared/gate/gate.js';
import type {
  ApprovalResult,
  Gate,
  GateKey,
  GateState,
  StoredDecision,
  TimelineEntry,
} from '../shared/gate/model.js';
import { gateId, gateKeyFromFields } from '../shared/gate/model.js';
import type { ClockPort } from '../shared/gate/ports.js';
import type { LoadedScenario, ScenarioExpectation, ScenarioStep } from './scenario.js';
import { offsetMs } from './scenario.js';
import {
  actionEvent,
  type InjectedFailure,
  scanEvent,
  scheduledEvent,
  TOLLGATE_ROLE,
  World,
} from './world.js';

type Json = Record<string, unknown>;
export type FunctionName = 'approval-started' | 'scan-finished' | 'approval-ended' | 'sweep';
export type Invoke = (event: unknown, context: Context) => Promise<{ ignored?: string } | undefined>;

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
  /** At most this many items per page of the world's paginated answers (to exercise later pages). */
  readonly pageSize?: number;
  /** CodePipeline's read lag after an approval starts (simulated milliseconds; `WorldOptions.readLagMs`). */
  readonly readLagMs?: number;
  /**
   * Every delivery of an event goes through this, when given: it may deliver the event once (`deliver`),
   * several times, concurrently (each copy in a Lambda instance of its own: `instance` 0, 1, …), later
   * (hold it and deliver it from a later delivery or `afterSteps`), or not at all. Deliveries made from
   * inside it are not wrapped again.
   */
  readonly deliverVia?: (
    event: Json,
    deliver: (event: Json, instance?: number) => Promise<void>,
    at: DeliveryPoint,
  ) => Promise<void>;
  /** Failures injected right before a step runs (`step` is the index in `steps`), as a `fail` step would. */
  readonly faults?: readonly ScheduledFault[];
  /** Called before each step, with the run's controls (to flush held events before a person acts, …). */
  readonly beforeStep?: (index: number, step: ScenarioStep, control: RunControl) => Promise<void> | void;
  /** Called after the last step, before the gates are read: flush held events, stop faults, sweep. */
  readonly afterSteps?: (control: RunControl) => Promise<void>;
  /**
   * The sweep's discovery of approvals whose STARTED event never came: as the stack runs it (every 5
   * minutes, a 5-minute grace), over the world's own pipeline and action names (literal globs, as a platform
   * engineer gating exactly those would write them), with what is given here over that; `false`: off.
   */
  readonly discovery?: Partial<DiscoveryConfig> | false | undefined;
  /** Replaces the AWS adapters the gate runs with (a deliberately broken one, to prove a check can fail). */
  readonly adapters?: (adapters: AwsAdapters, clients: AwsClients) => AwsAdapters;
}

/** Where a delivery comes from: a step of the scenario, the world (after a result), or the run's controls. */
export interface DeliveryPoint {
  /** The step being run; `steps.length` after the last one. */
  readonly step: number;
  readonly origin: 'step' | 'world' | 'control';
}

export interface ScheduledFault {
  readonly step: number;
  readonly fail: Omit<InjectedFailure, 'remaining' | 'skip' | 'page'> & {
    readonly times: number;
    readonly page?: number | undefined;
    readonly skip?: number | undefined;
  };
}

/** What hooks can do to a run in progress. */
export interface RunControl {
  readonly world: World;
  readonly clock: SimClock;
  /** Delivers an event as EventBridge would (with Lambda's retries), not through `deliverVia`. */
  deliver(event: Json, instance?: number): Promise<void>;
  /** Delivers the events the world caused (CodePipeline's and CloudTrail's after a result). */
  drain(): Promise<void>;
  /** One scheduled sweep, at the clock's time. */
  sweep(): Promise<void>;
  /** Events Lambda gave up on so far (dead-lettered), oldest first. */
  readonly deadLettered: readonly Json[];
  /** Delivers the dead-lettered events again, as a redrive of the dead-letter queue would; empties the list. */
  redrive(): Promise<number>;
  /** Runs sweeps a simulated minute apart until the gates are quiet (see `sweepUntilQuiet`). */
  sweepUntilQuiet(options?: QuietOptions): Promise<QuietResult>;
  /** The gates seen so far, as the store holds them (read without counting or failing calls). */
  gates(): Promise<readonly GateView[]>;
}

export interface QuietOptions {
  /** At most this many sweeps (default 40: the default 30-minute wait and 10 more). */
  readonly maxSweeps?: number;
  /** How far the clock moves before each sweep (default a minute, the schedule's rate). */
  readonly stepMs?: number;
}

export interface QuietResult {
  readonly sweeps: number;
  /** A sweep changed no gate and no gate is WAITING or DECIDED; false when `maxSweeps` ran out first. */
  readonly quiet: boolean;
}

/** Builds what Lambda would run with, over the scenario's world and the given table. */
export function simulationRuntime(
  loaded: LoadedScenario,
  world: World,
  clock: SimClock,
  options: SimulationOptions,
): Runtime {
  return simulationRuntimes(loaded, world, clock, options).deciding;
}

/**
 * The four handlers of one simulated Lambda instance. approval-ended gets a GateClosing, without the policy,
 * the findings or the pipeline, as in Lambda (functions/common/aws-closing.ts).
 */
export function simulationHandlers(
  loaded: LoadedScenario,
  world: World,
  clock: SimClock,
  options: SimulationOptions,
): Record<FunctionName, Invoke> {
  const { deciding, closing } = simulationRuntimes(loaded, world, clock, options);
  return {
    'approval-started': approvalStartedHandler(deciding) as Invoke,
    'scan-finished': scanFinishedHandler(deciding) as Invoke,
    'approval-ended': approvalEndedHandler(closing) as Invoke,
    sweep: sweepHandler(deciding) as Invoke,
  };
}

function simulationRuntimes(
  loaded: LoadedScenario,
  world: World,
  clock: SimClock,
  options: SimulationOptions,
): { deciding: Runtime; closing: Runtime<GateClosing> } {
  const { region, account, scanSource } = loaded.scenario;
  const config = { region, credentials: { accessKeyId: 'local', secretAccessKey: 'local' }, maxAttempts: 1 };
  const clients = {
    codepipeline: answeredBy(new CodePipelineClient(config), world),
    inspector: answeredBy(new Inspector2Client(config), world),
    ecr: answeredBy(new ECRClient(config), world),
    sns: answeredBy(new SNSClient(config), world),
    eventbridge: answeredBy(new EventBridgeClient(config), world),
  };
  // The simulated clock does not wait; neither do the adapters' retries.
  const retry = { attempts: 3, baseMs: 1, maxDelayMs: 5 };
  const built = createAwsAdapters({
    region,
    clients,
    topicArn: `arn:aws:sns:${region}:${account}:tollgate-escalations`,
    retry,
  });
  const adapters = options.adapters ? options.adapters(built, clients) : built;
  countedBy(options.doc, world);
  const { logger, metrics } = localObservability(options.logLevel ?? 'SILENT');
  const store = new DynamoStore(options.doc, options.tableName);
  const log = logPort(logger);
  const counted = metricsPort(metrics);
  const closingConfig = { region, account, ownIdentities: [TOLLGATE_ROLE] };
  const gate = new GateService({
    ...adapters,
    store,
    clock,
    log,
    metrics: counted,
    policy: loadPolicySource(loaded.policyFile),
    config: {
      ...DEFAULT_CONFIG,
      ...closingConfig,
      scanSource,
      // The simulated clock does not wait; neither do the retries of the real ones (as the adapters' above).
      recordBackoffMs: 1,
      // A listing's lag is in simulated time, which a pause in the invocation does not move on.
      listingRereadsMs: [],
    },
  });
  const closing = new GateClosing({
    events: adapters.events,
    store,
    clock,
    log,
    metrics: counted,
    config: closingConfig,
  });
  const names = (field: 'pipeline' | 'action') => [
    ...new Set(loaded.scenario.world.approvals.map((a) => a[field])),
  ];
  const discovery =
    options.discovery !== false
      ? new ApprovalDiscovery({
          approvals: adapters.approvals,
          pipelines: new CodePipelineDirectory(clients.codepipeline, retry),
          store,
          clock,
          log,
          metrics: counted,
          start: (e) => gate.approvalStarted(e),
          config: {
            ...DEFAULT_DISCOVERY,
            pipelines: names('pipeline'),
            actions: names('action'),
            ...options.discovery,
          },
        })
      : undefined;
  return {
    deciding: { gate, logger, metrics, discovery },
    closing: { gate: closing, logger, metrics },
  };
}

/** Replays a scenario through the handlers, in order, and reports each gate as the store holds it. */
export async function runScenario(
  loaded: LoadedScenario,
  options: SimulationOptions,
): Promise<SimulationResult> {
  const { scenario } = loaded;
  const start = Date.parse(scenario.start);
  const clock = new SimClock(start);
  const world = new World(loaded, clock, {
    ...(options.latencyMs === undefined ? {} : { latencyMs: options.latencyMs }),
    ...(options.pageSize === undefined ? {} : { pageSize: options.pageSize }),
    ...(options.readLagMs === undefined ? {} : { readLagMs: options.readLagMs }),
  });
  options.onWorld?.(world);
  // One runtime per simulated Lambda instance: concurrent deliveries run in instances of their own, as in Lambda.
  const instances = new Map<number, Record<FunctionName, Invoke>>();
  const handlersOf = (instance: number): Record<FunctionName, Invoke> => {
    let handlers = instances.get(instance);
    if (!handlers) {
      handlers = simulationHandlers(loaded, world, clock, options);
      instances.set(instance, handlers);
    }
    return handlers;
  };
  handlersOf(0);
  const deliveries: Delivery[] = [];
  const keys = new Map<string, GateKey>();
  const attempts = options.attempts ?? 3;

  const deadLettered: Json[] = [];

  const deliverNow = async (event: Json, instance = 0): Promise<void> => {
    const fn = route(event);
    const detailType = String(event['detail-type'] ?? '');
    const at = clock.now().toISOString();
    const key = eventGateKey(event);
    if (key) keys.set(gateId(key), key);
    if (!fn) {
      deliveries.push({ at, function: undefined, detailType, attempts: 0, outcome: 'unmatched' });
      return;
    }
    let lastError = '';
    for (let attempt = 1; attempt <= attempts; attempt++) {
      try {
        const result = await world.invoking(fn, () =>
          handlersOf(instance)[fn](event, lambdaContext(fn, scenario.region, scenario.account)),
        );
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
    deadLettered.push(event);
  };

  let stepIndex = 0;
  const via =
    (origin: DeliveryPoint['origin']) =>
    async (event: Json): Promise<void> => {
      if (!options.deliverVia) return deliverNow(event);
      // The gate is the scenario's even when the wrapper drops its only event: the report then shows it absent.
      const key = eventGateKey(event);
      if (key) keys.set(gateId(key), key);
      return options.deliverVia(event, deliverNow, { step: stepIndex, origin });
    };
  const deliver = via('step');
  const deliverWorld = via('world');

  const drain = async (): Promise<void> => {
    for (let guard = 0; world.outbox.length > 0 && guard < 1000; guard++) {
      await deliverWorld(world.outbox.shift()!);
    }
  };

  const views = (): Promise<GateView[]> =>
    world.unobserved(() => Promise.all([...keys.values()].map((key) => viewOf(options, key))));

  const control: RunControl = {
    world,
    clock,
    deliver: deliverNow,
    drain: async () => {
      for (let guard = 0; world.outbox.length > 0 && guard < 1000; guard++) {
        await deliverNow(world.outbox.shift()!);
      }
    },
    sweep: async () => {
      await deliverNow(scheduledEvent(world));
      await control.drain();
    },
    deadLettered,
    redrive: async () => {
      const events = deadLettered.splice(0);
      for (const event of events) {
        await deliverNow(event);
        await control.drain();
      }
      return events.length;
    },
    sweepUntilQuiet: (quiet) => sweepUntilQuiet(control, quiet),
    gates: views,
  };

  for (const [index, step] of scenario.steps.entries()) {
    stepIndex = index;
    await options.beforeStep?.(index, step, control);
    for (const f of options.faults ?? []) {
      if (f.step === index) world.fail({ ...f.fail, page: f.fail.page, skip: f.fail.skip ?? 0 });
    }
    const offset = offsetMs(step.at);
    if (offset !== undefined) clock.set(start + offset);
    if (step.approvalStarted) {
      const slot = world.startApproval(step.approvalStarted);
      const started = actionEvent(world, slot, 'STARTED');
      if (step.approvalStarted.event) await deliver(started);
      else {
        // Lost on the way: the report still shows the gate (absent, unless the sweep finds the approval).
        const key = eventGateKey(started);
        if (key) keys.set(gateId(key), key);
      }
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
      const run = world.endApproval(e, e.state === 'FAILED' ? 'Failed' : 'Abandoned');
      await deliver(actionEvent(world, run, e.state));
    } else if (step.event) {
      await deliver(step.event);
    }
    await drain();
  }
  stepIndex = scenario.steps.length;
  await options.afterSteps?.(control);

  const gates = await views();
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

/**
 * Sweeps, the clock a minute further each time, until the gates are quiet: a sweep changed no gate (its
 * version) and none is WAITING or DECIDED (a waiting gate is swept until its wait runs out). Bounded by
 * `maxSweeps`: the wait of the policy plus a margin is enough for every gate to be decided and acted on.
 */
export async function sweepUntilQuiet(control: RunControl, options: QuietOptions = {}): Promise<QuietResult> {
  const maxSweeps = options.maxSweeps ?? 40;
  const stepMs = options.stepMs ?? 60_000;
  const versions = async (): Promise<string> =>
    JSON.stringify((await control.gates()).map((g) => [g.state, g.notifications, g.timeline.at(-1)]));
  let before = await versions();
  for (let sweeps = 1; sweeps <= maxSweeps; sweeps++) {
    control.clock.set(control.clock.now().getTime() + stepMs);
    await control.sweep();
    const after = await versions();
    const open = (await control.gates()).some((g) => g.state === 'WAITING' || g.state === 'DECIDED');
    if (after === before && !open) return { sweeps, quiet: true };
    before = after;
  }
  return { sweeps: maxSweeps, quiet: false };
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

/** The gate an action event is about; undefined for other events. */
function eventGateKey(event: Json): GateKey | undefined {
  if (event['detail-type'] !== 'CodePipeline Action Execution State Change') return undefined;
  const d = (event.detail ?? {}) as Json;
  return gateKeyFromFields(d.pipeline, d['execution-id'], d.stage, d.action, d['pipeline-execution-attempt']);
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
    const matching = gates.filter(
      (g) =>
        g.executionId === x.executionId &&
        (x.stage === undefined || g.stage === x.stage) &&
        (x.action === undefined || g.action === x.action),
    );
    const name = `${x.executionId}${x.stage ? `/${x.stage}` : ''}${x.action ? `/${x.action}` : ''}`;
    if (matching.length > 1) {
      // Judging the first would pass or fail by the order the gates were seen in.
      problems.push(
        `${name}: expected one gate; ${matching.length} match (${matching.map((g) => `${g.stage}/${g.action}`).join(', ')}): name its stage and action`,
      );
      continue;
    }
    // A view whose state is null is a key an event named and no handler stored: no gate.
    const gate = matching[0] && matching[0].state !== null ? matching[0] : undefined;
    if (x.state === null) {
      if (gate) problems.push(`${name}: expected no gate; got one, ${gate.state}`);
    } else if (!gate) {
      problems.push(
        `${name}: expected a gate; ${matching.length ? 'its approval was seen, but the store has no gate for it' : 'none was seen'}`,
      );
      continue;
    }
    const check = (field: string, want: unknown, got: unknown): void => {
      if (want !== undefined && want !== got)
        problems.push(`${name}: expected ${field} ${String(want)}; got ${String(got)}`);
    };
    if (x.state !== null) check('state', x.state, gate?.state ?? null);
    check('outcome', x.outcome, gate?.outcome ?? null);
    check('notifications', x.notifications, gate?.notifications ?? 0);
    check('approvalResult', x.approvalResult, gate?.approvalResult?.status ?? null);
    if (x.reviewer !== undefined && !(gate?.reviewer?.identity ?? '').includes(x.reviewer)) {
      problems.push(`${name}: expected reviewer ${x.reviewer}; got ${gate?.reviewer?.identity ?? 'none'}`);
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
      world.around(
        (context.commandName ?? 'DynamoDB').replace(/Command$/, ''),
        () => next(args),
        (args.input ?? {}) as Json,
      ),
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
    // A fresh invocation of the longest timeout (the sweep's 5 minutes): the replay never runs short of time.
    getRemainingTimeInMillis: () => 300_000,
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}
