import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ApprovalAlreadyCompletedException,
  GetPipelineExecutionCommand,
  GetPipelineStateCommand,
  InvalidApprovalTokenException,
  ListActionExecutionsCommand,
  PipelineExecutionNotFoundException,
  CodePipelineServiceException as PipelineServiceException,
  PutApprovalResultCommand,
} from '@aws-sdk/client-codepipeline';
import { DescribeImagesCommand, ECRServiceException } from '@aws-sdk/client-ecr';
import { InternalException, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import {
  type Finding as InspectorFinding,
  InternalServerException,
  ListCoverageCommand,
  ListFindingsCommand,
  ThrottlingException,
} from '@aws-sdk/client-inspector2';
import { InternalErrorException, PublishCommand } from '@aws-sdk/client-sns';
import { describe, expect, it, vi } from 'vitest';
import { createAwsAdapters } from '../adapters/aws/index.js';
import { attemptMaxMs, DEFAULT_RETRY } from '../adapters/aws/retry.js';
import { vulnIndexWrite } from '../adapters/dynamodb/audit-items.js';
import { createDocumentClient } from '../adapters/dynamodb/store.js';
import { ensureTable } from '../adapters/dynamodb/table.js';
import { approvalStartedHandler } from '../functions/approval-started/handler.js';
import { buildAwsRuntime } from '../functions/common/aws-runtime.js';
import { loadPolicySource } from '../functions/common/policy.js';
import { ChainHeadMovedError } from '../shared/audit/chain.js';
import { FindingTable } from '../shared/findings/table.js';
import { DEFAULT_CONFIG, hashToken } from '../shared/gate/gate.js';
import { CHAIN_ATTEMPTS, SWEEP_STOP_MS } from '../shared/gate/work.js';
import { policyBundle } from '../shared/policy/bundle.js';
import { parsePolicy } from '../shared/policy/load.js';
import {
  ACCOUNT,
  ACTION,
  ACTION_EXECUTION,
  BASELINE_POLICY,
  cleanFindings,
  createHarness,
  DIGEST,
  type EventBridgeEvent,
  EXECUTION,
  ecrBasicFindings,
  exampleFindings,
  FUNCTION_ARN,
  Harness,
  type HarnessOptions,
  KEY,
  laterPage,
  logLines,
  PIPELINE,
  pipelineThrottled,
  REGION,
  REPOSITORY,
  REPOSITORY_ARN,
  STAGE,
  START,
  scanCounts,
  severityOf,
  TOKEN,
  TOLLGATE_IDENTITY,
  TOLLGATE_ROLE,
  useLocalDynamo,
} from './gate-harness.js';

const dynamo = useLocalDynamo();

function setup(options: HarnessOptions = {}): Promise<Harness> {
  return createHarness(dynamo(), options);
}

const SCANNED = { statusCode: 'ACTIVE', reason: 'SUCCESSFUL' } as const;
const NEWER_EXECUTION = '9f8e7d6c-1234-5678-abcd-12345678abcd';
const NEWER_TOKEN = '5e6f7a8b-573f-4ea7-a67e-0123456789ab';
const OTHER_DIGEST = `sha256:${'c'.repeat(64)}`;
const SECOND = 1_000;
const MINUTE = 60_000;

/**
 * A SUPPRESSED CRITICAL of a CVE the image's findings lack, made from its first finding with these times (a
 * time given as undefined is left out): what a suppression rule leaves beside a scan's counted findings.
 */
function suppressedCritical(
  h: Harness,
  times: Partial<Pick<InspectorFinding, 'firstObservedAt' | 'lastObservedAt' | 'updatedAt'>>,
): InspectorFinding {
  const first = h.scanner.findings[0]!;
  const finding: InspectorFinding = {
    ...first,
    findingArn: `${first.findingArn}-suppressed`,
    severity: 'CRITICAL',
    status: 'SUPPRESSED',
    ...times,
    packageVulnerabilityDetails: { ...first.packageVulnerabilityDetails!, vulnerabilityId: 'CVE-2026-99999' },
  };
  for (const [k, v] of Object.entries(times)) if (v === undefined) delete finding[k as keyof typeof times];
  return finding;
}

/** The image's scan event counts with one CRITICAL more than its findings hold (not listed yet). */
function oneCriticalShort(h: Harness): Record<string, number> {
  const base = scanCounts(h.scanner.findings);
  return { ...base, CRITICAL: 1, TOTAL: (base.TOTAL ?? 0) + 1 };
}

/**
 * A gate waiting on a covered image whose scan event (a minute after the start, not yet delivered) counts one
 * CRITICAL more than the findings listed: the shortfall tests' start.
 */
async function oneCriticalShortGate(): Promise<{ h: Harness; event: EventBridgeEvent; eventMs: number }> {
  const h = await setup();
  h.scanner.coverage = SCANNED;
  const counts = oneCriticalShort(h);
  await h.approvalStarted();
  h.clock.advance(MINUTE);
  const event = h.inspectorScanEvent({ counts });
  return { h, event, eventMs: Date.parse(event.time) };
}

/** Five sweeps a minute apart (two reads a sweep apart agree long before): the gate still WAITING, nothing sent. */
async function sweepsStillWaiting(h: Harness, why?: string): Promise<void> {
  for (let i = 0; i < 5; i++) {
    h.clock.advance(MINUTE);
    await h.sweep();
  }
  expect((await h.gate())?.state, why).toBe('WAITING');
  expect(putResults(h), why).toHaveLength(0);
}

/**
 * The stage retried in the gate's execution: the action's new run `run` holds the state, with a new token;
 * the gate's own run ended `earlier`.
 */
function retryStage(h: Harness, run: string, earlier: string): void {
  h.pipeline.stage = {
    executionId: EXECUTION,
    status: 'InProgress',
    token: NEWER_TOKEN,
    actionExecutionId: run,
  };
  h.pipeline.action.actionExecutionId = run;
  h.pipeline.action.earlierRuns = [{ actionExecutionId: ACTION_EXECUTION, status: earlier }];
}

/**
 * A clean image decided at the scan: PutApprovalResult lands but its answer times out, and the retry finds the
 * approval completed. `calls` counts the PutApprovalResult calls made.
 */
async function answerLostThenCompleted(): Promise<{ h: Harness; calls: () => number }> {
  const h = await setup();
  const { stage, action } = h.pipeline;
  let calls = 0;
  h.mocks.codepipeline.on(PutApprovalResultCommand).callsFake(async () => {
    calls++;
    if (calls === 1) {
      action.status = 'Succeeded';
      stage.status = 'Succeeded';
      throw Object.assign(new Error('Connection timed out after 20000 ms'), { name: 'TimeoutError' });
    }
    throw alreadyCompleted();
  });
  await h.approvalStarted();
  await h.scanFinished();
  return { h, calls: () => calls };
}

/** The next sweep publishes the held escalation and records it (ACTED); a sweep past the lease sends nothing more. */
async function escalatedOnceBySweeps(h: Harness): Promise<void> {
  h.clock.advance(MINUTE);
  await h.sweep();
  expect(h.messages).toHaveLength(1);
  expect(await h.gate()).toMatchObject({ state: 'ACTED', notifications: 1 });
  h.clock.advance(DEFAULT_CONFIG.leaseMs + MINUTE);
  await h.sweep();
  expect(h.messages).toHaveLength(1);
}

/** A gate whose policy escalates, decided by the scan event while SNS fails every publish: DECIDED, unsent. */
async function escalationNotPublished(): Promise<Harness> {
  const h = await setup();
  h.scanner.findings = exampleFindings('orders-worker.list-findings.json');
  h.fail(
    'Publish',
    () => new InternalErrorException({ message: 'Internal error', $metadata: { httpStatusCode: 500 } }),
  );
  await h.approvalStarted();
  await expect(h.scanFinished()).rejects.toThrow();
  return h;
}

const putResults = (h: Harness) =>
  h.mocks.codepipeline.commandCalls(PutApprovalResultCommand).map((c) => c.args[0].input);
/** Every metric the harness's functions add from now on, as [name, value]. */
/** SNS refuses every publish (the topic's key disabled): escalations cannot go out. */
function refusePublishes(h: Harness): void {
  h.mocks.sns
    .on(PublishCommand)
    .rejects(Object.assign(new Error('KMS key disabled'), { name: 'KMSDisabledException' }));
}

/** Advances the clock, runs a sweep, and gives the GatesOverdue it reported (`added`: `metricsOf(h)`). */
function overdueAfter(h: Harness, added: [string, number][]) {
  return async (minutes: number): Promise<number | undefined> => {
    h.clock.advance(minutes * MINUTE);
    added.length = 0;
    await h.sweep();
    return added.find(([name]) => name === 'GatesOverdue')?.[1];
  };
}

/** A gate Tollgate escalated (it never answers those), the metrics counted from here on, the store's own write. */
async function escalatedGate() {
  const h = await setup();
  h.scanner.findings = exampleFindings('orders-worker.list-findings.json');
  await h.approvalStarted();
  await h.scanFinished();
  return { h, added: metricsOf(h), update: h.store.updateGate.bind(h.store) };
}

/** The values counted under `name` (`added`: `metricsOf(h)`), in order. */
const valuesOf = (added: readonly [string, number][], name: string): number[] =>
  added.filter(([n]) => n === name).map(([, value]) => value);

function metricsOf(h: Harness): [string, number][] {
  const added: [string, number][] = [];
  vi.spyOn(h.runtime.metrics, 'addMetric').mockImplementation((name, _unit, value) => {
    added.push([name, value]);
    return h.runtime.metrics;
  });
  return added;
}

const publishes = (h: Harness) => h.mocks.sns.commandCalls(PublishCommand).map((c) => c.args[0].input);
const findingsReads = (h: Harness) =>
  h.mocks.inspector.commandCalls(ListFindingsCommand).map((c) => c.args[0].input);

const alreadyCompleted = () =>
  new ApprovalAlreadyCompletedException({
    message: 'The approval action has already been approved or rejected',
    $metadata: { httpStatusCode: 400 },
  });
const inspectorThrottled = () =>
  new ThrottlingException({ message: 'Rate exceeded', $metadata: { httpStatusCode: 429 } });
const inspectorDown = () =>
  new InternalServerException({ message: 'Internal failure', $metadata: { httpStatusCode: 500 } });

/** The SNS message's text body (the `default` of its `MessageStructure: json`). */
function messageText(message: string | undefined): string {
  const parsed: unknown = JSON.parse(message ?? '{}');
  return typeof parsed === 'object' && parsed !== null && 'default' in parsed ? String(parsed.default) : '';
}

describe('a gate end to end, through the handlers', () => {
  it('approves a clean image: one PutApprovalResult (summary ≤ 512), ACTED, then CLOSED when the approval succeeds', async () => {
    const h = await setup();
    expect(await h.approvalStarted()).toMatchObject({ result: { state: 'WAITING' } });
    expect(putResults(h)).toHaveLength(0);

    h.scanner.coverage = SCANNED;
    h.clock.advance(40 * SECOND);
    await h.scanFinished();

    const sent = putResults(h);
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({
      pipelineName: PIPELINE,
      stageName: STAGE,
      actionName: ACTION,
      token: TOKEN,
      result: { status: 'Approved' },
    });
    expect(sent[0]!.result!.summary!.length).toBeLessThanOrEqual(512);
    expect(sent[0]!.result!.summary).toMatch(/^APPROVE/);
    expect(await h.gate()).toMatchObject({
      state: 'ACTED',
      outcome: 'APPROVE',
      approvalResult: { status: 'Approved' },
      notifications: 0,
    });
    const decision = await h.decision();
    expect(decision).toMatchObject({
      trigger: 'scan-finished',
      record: { outcome: 'APPROVE', subject: { repository: REPOSITORY, digest: DIGEST, pipeline: PIPELINE } },
    });
    expect(publishes(h)).toHaveLength(0);
    expect(h.events.map((e) => e.DetailType)).toContain('Tollgate Decision');

    // CloudTrail records Tollgate's own call; then CodePipeline ends the action.
    await h.approvalEnded(h.cloudTrailEvent({ identity: TOLLGATE_IDENTITY }));
    h.clock.advance(2 * SECOND);
    await h.approvalEnded(h.approvalEndedEvent('SUCCEEDED'));
    expect(await h.gate()).toMatchObject({
      state: 'CLOSED',
      outcome: 'APPROVE',
      closure: { state: 'SUCCEEDED' },
      reviewer: { identity: TOLLGATE_IDENTITY, tollgate: true },
    });
    expect(putResults(h)).toHaveLength(1);
    expect(await h.decisionItems()).toHaveLength(1);
  });

  it('rejects an image with a critical finding', async () => {
    const h = await setup();
    h.scanner.findings = exampleFindings('payments-api.list-findings.json');
    await h.approvalStarted();
    h.clock.advance(55 * SECOND);
    await h.scanFinished();

    const sent = putResults(h);
    expect(sent).toHaveLength(1);
    expect(sent[0]!.result?.status).toBe('Rejected');
    expect(sent[0]!.result!.summary!.length).toBeLessThanOrEqual(512);
    expect(sent[0]!.result!.summary).toContain('no-critical');
    expect(await h.gate()).toMatchObject({
      state: 'ACTED',
      outcome: 'REJECT',
      approvalResult: { status: 'Rejected' },
    });
    const record = (await h.decision())!.record;
    expect(record.violations.map((v) => v.rule)).toContain('no-critical');
    expect(record.counts.CRITICAL).toBe(1); // the second CRITICAL of the export is SUPPRESSED
    expect(publishes(h)).toHaveLength(0);
  });

  it("a person whose role name merely contains Tollgate's is recorded as a person, not as Tollgate", async () => {
    const h = await setup();
    h.scanner.findings = exampleFindings('orders-worker.list-findings.json');
    await h.approvalStarted();
    h.clock.advance(MINUTE);
    await h.scanFinished();
    const impostor = `arn:aws:sts::${ACCOUNT}:assumed-role/${TOLLGATE_ROLE}Admin/bob`;
    await h.approvalEnded(h.cloudTrailEvent({ identity: impostor }));
    expect((await h.gate())?.reviewer).toMatchObject({ identity: impostor, tollgate: false });
  });

  it('escalates a fixable HIGH: exactly one SNS message (subject ≤ 100), no PutApprovalResult; CloudTrail names the reviewer', async () => {
    const h = await setup();
    h.scanner.findings = exampleFindings('orders-worker.list-findings.json');
    await h.approvalStarted();
    h.clock.advance(MINUTE);
    await h.scanFinished();

    const messages = publishes(h);
    expect(messages).toHaveLength(1);
    expect(messages[0]!.Subject!.length).toBeLessThanOrEqual(100);
    expect(messages[0]!.MessageStructure).toBe('json');
    const text = messageText(messages[0]!.Message);
    expect(text).toContain(PIPELINE);
    expect(text).toContain('CVE-2024-21538');
    expect(text).toContain(DIGEST);
    expect(putResults(h)).toHaveLength(0);
    expect(await h.gate()).toMatchObject({ state: 'ACTED', outcome: 'ESCALATE', notifications: 1 });
    expect((await h.decision())!.record.violations.map((v) => v.rule)).toContain('fixable-high');

    // The sweep does not escalate a second time.
    h.clock.advance(MINUTE);
    await h.sweep();
    expect(publishes(h)).toHaveLength(1);

    // A security engineer approves in the console: CloudTrail says who, CodePipeline ends the action.
    h.clock.advance(20 * MINUTE);
    h.pipeline.action.status = 'Succeeded';
    h.pipeline.stage.status = 'Succeeded';
    await h.approvalEnded(h.cloudTrailEvent());
    await h.approvalEnded(h.approvalEndedEvent('SUCCEEDED'));
    const closed = await h.gate();
    expect(closed?.approvalResult).toBeUndefined();
    expect(closed).toMatchObject({
      state: 'CLOSED',
      outcome: 'ESCALATE',
      notifications: 1,
      reviewer: {
        identity: 'arn:aws:sts::123456789012:assumed-role/SecurityEngineer/alice',
        type: 'AssumedRole',
        status: 'Approved',
        tollgate: false,
      },
    });
    expect(putResults(h)).toHaveLength(0);
  });
});

describe("the reviewer's source identity", () => {
  it('goes into the gate and its resolution record when the role session has one, the session name aside', async () => {
    const h = await setup();
    h.scanner.findings = exampleFindings('orders-worker.list-findings.json'); // the policy escalates
    await h.approvalStarted();
    h.clock.advance(MINUTE);
    await h.scanFinished();
    h.clock.advance(20 * MINUTE);
    // A shared role whose session name the caller chose ("alice"); the IdP set who it really is.
    const call = h.cloudTrailEvent();
    const who = call.detail.userIdentity as { sessionContext: Record<string, unknown> };
    who.sessionContext.sourceIdentity = 'bob@example.com';
    await h.approvalEnded(call);
    expect((await h.gate())?.reviewer).toMatchObject({
      identity: 'arn:aws:sts::123456789012:assumed-role/SecurityEngineer/alice',
      sourceIdentity: 'bob@example.com',
    });
    const resolution = (await h.items())
      .map((i) => i.record as { type: string; resolution?: Record<string, unknown> } | undefined)
      .find((r) => r?.type === 'resolution');
    expect(resolution?.resolution).toMatchObject({
      reviewer: 'arn:aws:sts::123456789012:assumed-role/SecurityEngineer/alice',
      sourceIdentity: 'bob@example.com',
      byTollgate: false,
    });
  });

  it('is absent, not null, without one: records made before it existed hash as they did', async () => {
    const h = await setup();
    h.scanner.findings = exampleFindings('orders-worker.list-findings.json');
    await h.approvalStarted();
    h.clock.advance(MINUTE);
    await h.scanFinished();
    await h.approvalEnded(h.cloudTrailEvent());
    expect((await h.gate())?.reviewer).not.toHaveProperty('sourceIdentity');
    const resolution = (await h.items())
      .map((i) => i.record as { type: string; resolution?: Record<string, unknown> } | undefined)
      .find((r) => r?.type === 'resolution');
    expect(resolution?.resolution).toBeDefined();
    expect(resolution?.resolution).not.toHaveProperty('sourceIdentity');
  });
});

describe('published events when the approval ends', () => {
  const details = (h: Awaited<ReturnType<typeof setup>>, type: string) =>
    h.events
      .filter((e) => e.DetailType === type)
      .map((e) => JSON.parse(e.Detail!) as Record<string, unknown>);

  it('in the real order (the end event, then CloudTrail minutes later): a state change to CLOSED, and the reviewer goes out in a second Gate Closed', async () => {
    const h = await setup();
    h.scanner.findings = exampleFindings('orders-worker.list-findings.json');
    await h.approvalStarted();
    h.clock.advance(MINUTE);
    await h.scanFinished();
    h.clock.advance(20 * MINUTE);
    h.pipeline.action.status = 'Succeeded';
    h.pipeline.stage.status = 'Succeeded';
    await h.approvalEnded(h.approvalEndedEvent('SUCCEEDED'));
    expect(details(h, 'Tollgate Gate State Change').at(-1)).toMatchObject({
      state: 'CLOSED',
      previousState: 'ACTED',
    });
    const first = details(h, 'Tollgate Gate Closed');
    expect(first).toHaveLength(1);
    expect(first[0]).toMatchObject({ state: 'CLOSED', reviewer: null, outcome: 'ESCALATE' });

    h.clock.advance(3 * MINUTE);
    await h.approvalEnded(h.cloudTrailEvent());
    const closedEvents = details(h, 'Tollgate Gate Closed');
    expect(closedEvents).toHaveLength(2);
    expect(closedEvents[1]).toMatchObject({
      state: 'CLOSED',
      outcome: 'ESCALATE',
      reviewer: { status: 'Approved', tollgate: false },
    });
    expect(closedEvents[1]!.gateVersion as number).toBeGreaterThan(closedEvents[0]!.gateVersion as number);
    // CloudTrail's record delivered again records nothing and sends nothing.
    await h.approvalEnded(h.cloudTrailEvent());
    expect(details(h, 'Tollgate Gate Closed')).toHaveLength(2);
  });

  it('an end before the start: the closed gate is announced as created CLOSED', async () => {
    const h = await setup();
    await h.approvalEnded(h.approvalEndedEvent('ABANDONED'));
    expect(details(h, 'Tollgate Gate State Change')).toEqual([
      expect.objectContaining({ state: 'CLOSED', previousState: null }),
    ]);
    expect(details(h, 'Tollgate Gate Closed')).toEqual([expect.objectContaining({ state: 'CLOSED' })]);
  });
});

describe('each event delivered twice', () => {
  const cases = [
    { mode: 'one after another', concurrent: false, findings: 'clean' },
    { mode: 'at the same time', concurrent: true, findings: 'clean' },
    { mode: 'one after another', concurrent: false, findings: 'orders-worker.list-findings.json' },
    { mode: 'at the same time', concurrent: true, findings: 'orders-worker.list-findings.json' },
  ] as const;

  it.each(cases)('$mode ($findings): one decision item, one result or one notification', async (c) => {
    const h = await setup();
    const escalates = c.findings !== 'clean';
    if (escalates) h.scanner.findings = exampleFindings(c.findings);
    const twice = async (deliver: () => Promise<unknown>): Promise<void> => {
      if (c.concurrent) await Promise.all([deliver(), deliver()]);
      else {
        await deliver();
        await deliver();
      }
    };
    // Each delivery is its own event (EventBridge may repeat a fact under another id).
    await twice(() => h.approvalStarted(h.approvalStartedEvent()));
    h.clock.advance(40 * SECOND);
    await twice(() => h.scanFinished(h.inspectorScanEvent()));

    expect(await h.decisionItems()).toHaveLength(1);
    expect(putResults(h)).toHaveLength(escalates ? 0 : 1);
    expect(publishes(h)).toHaveLength(escalates ? 1 : 0);
    expect(await h.gate()).toMatchObject({
      state: 'ACTED',
      outcome: escalates ? 'ESCALATE' : 'APPROVE',
      notifications: escalates ? 1 : 0,
    });
    const gates = (await h.items()).filter((i) => i.sk === 'GATE');
    expect(gates).toHaveLength(1);
  });
});

describe('a scan of another registry', () => {
  it("another account's repository of the same name and digest (a delegated administrator's event) does not stand in for the gate's image", async () => {
    // CustomData names no registry: the image is in the gate's own account. An event whose repository ARN
    // names another account's copy said nothing of it, yet it was taken as the gate's scan and its findings
    // read (filtered by the other registry) as the gate's.
    const h = await setup();
    await h.approvalStarted();
    const before = (await h.gate())!;
    const other = `arn:aws:ecr:${REGION}:210987654321:repository/${REPOSITORY}`;
    const event = h.inspectorScanEvent({ counts: null });
    event.resources = [other];
    event.detail['repository-name'] = other;
    expect(await h.scanFinished(event)).toEqual({ result: [] });
    expect((await h.gate())!.version).toBe(before.version);

    // The stored status of that copy does not decide the gate either: its own scan is still pending.
    h.clock.advance(MINUTE);
    await h.sweep();
    expect(await h.gate()).toMatchObject({ state: 'WAITING' });
    expect(await h.decisionItems()).toHaveLength(0);
  });
});

describe('events out of order', () => {
  it('a scan event before the approval starts: the stored scan status decides at approval start', async () => {
    const h = await setup();
    // Coverage still says pending: only the stored scan event can tell that the scan finished.
    expect(await h.scanFinished()).toEqual({ result: [] });
    h.clock.advance(6 * MINUTE);
    await h.approvalStarted();

    expect(await h.decision()).toMatchObject({ trigger: 'approval-started', record: { outcome: 'APPROVE' } });
    expect(h.mocks.inspector.commandCalls(ListCoverageCommand)).toHaveLength(0);
    expect(putResults(h)).toHaveLength(1);
    expect(await h.gate()).toMatchObject({ state: 'ACTED' });
  });

  it('an approval that ended before Tollgate saw it start: its events name the pipeline, and its wait is unknown, not 0', async () => {
    const h = await setup();
    await h.approvalEnded(h.approvalEndedEvent('ABANDONED'));
    expect(await h.gate()).toMatchObject({ state: 'CLOSED', account: ACCOUNT, startUnseen: true });
    const events = h.events.filter((e) => e.DetailType?.startsWith('Tollgate Gate'));
    expect(events.map((e) => e.DetailType).sort()).toEqual([
      'Tollgate Gate Closed',
      'Tollgate Gate State Change',
    ]);
    for (const e of events) {
      expect(e.Resources, e.DetailType).toEqual([
        `arn:aws:codepipeline:${REGION}:${ACCOUNT}:${KEY.pipeline}`,
      ]);
    }
    const closed = JSON.parse(events.find((e) => e.DetailType === 'Tollgate Gate Closed')!.Detail!);
    expect(closed.durationMs).toBeNull();
  });

  it.each(['SUCCEEDED', 'ABANDONED'] as const)(
    'the approval %s before Tollgate saw it start: the late STARTED does not decide',
    async (state) => {
      const h = await setup();
      // Everything a decision needs is there (and GetPipelineState still lags, showing the approval waiting).
      h.scanner.coverage = SCANNED;
      await h.scanFinished();
      await h.approvalEnded(h.approvalEndedEvent(state));
      expect(await h.gate()).toMatchObject({ state: 'CLOSED', closure: { state } });

      h.clock.advance(5 * SECOND);
      await h.approvalStarted();
      await h.scanFinished();
      await h.sweep();

      const gate = await h.gate();
      expect(gate).toMatchObject({ state: 'CLOSED', closure: { state } });
      expect(gate?.outcome).toBeUndefined();
      expect(await h.decision()).toBeUndefined();
      expect(putResults(h)).toHaveLength(0);
      expect(publishes(h)).toHaveLength(0);
    },
  );
});

describe('an approval that ends while the gate decides', () => {
  it('the resolution record names the decision the gate shows, never an undecided close', async () => {
    const h = await setup();
    h.scanner.findings = exampleFindings('orders-worker.list-findings.json'); // the policy escalates
    await h.approvalStarted();
    expect((await h.gate())?.state).toBe('WAITING');

    // approval-ended reads the gate and its decision side by side: the decision read answers (none yet),
    // the gate decides and acts, and only then does the gate read answer, showing the decided gate.
    let release!: () => void;
    const latch = new Promise<void>((r) => {
      release = r;
    });
    const getGate = h.store.getGate.bind(h.store);
    vi.spyOn(h.store, 'getGate').mockImplementationOnce(async (key) => {
      await latch;
      return getGate(key);
    });
    const ending = h.approvalEnded(h.approvalEndedEvent('ABANDONED'));
    await vi.waitFor(async () => expect((await h.items()).length).toBeGreaterThan(0));
    await h.scanFinished();
    expect(await h.gate()).toMatchObject({ state: 'ACTED', outcome: 'ESCALATE' });
    release();
    await ending;

    const records = (await h.items())
      .filter((i) => (i.pk as string).startsWith('AUDIT#') && i.record !== undefined)
      .map((i) => i.record as { type: string; outcome: string | null; policy: unknown });
    const resolution = records.find((r) => r.type === 'resolution');
    // Read before the decision landed, it said the approval closed undecided, with no policy.
    expect(resolution).toMatchObject({ outcome: 'ESCALATE' });
    expect(resolution?.policy).not.toBeNull();
  });
});

describe('the sweep', () => {
  it('repairs a lost scan event: coverage says scanned, and two reads a sweep apart agree', async () => {
    const h = await setup();
    await h.approvalStarted();
    expect((await h.gate())?.state).toBe('WAITING');

    h.scanner.coverage = SCANNED; // the scan finished, its event was lost
    h.clock.advance(MINUTE);
    await h.sweep();
    expect(await h.gate()).toMatchObject({ state: 'WAITING', lastRead: { total: 1 } });
    // CustomData names no registry, and the function (as deployed) knows no account but the event's: the
    // image is in the gate's account, so coverage asks for it exactly (one request, not a listing of the
    // repository) and the read leaves other accounts' findings out.
    const coverage = h.mocks.inspector.commandCalls(ListCoverageCommand);
    expect(coverage).toHaveLength(2); // the start's look and the sweep's, one request each
    for (const call of coverage) {
      expect(call.args[0].input.filterCriteria).toMatchObject({
        ecrRepositoryName: [{ comparison: 'EQUALS', value: REPOSITORY }],
        accountId: [{ comparison: 'EQUALS', value: ACCOUNT }],
        resourceId: [{ comparison: 'EQUALS', value: `${REPOSITORY_ARN}/${DIGEST}` }],
      });
    }
    for (const call of h.mocks.inspector.commandCalls(ListFindingsCommand)) {
      expect(call.args[0].input.filterCriteria?.ecrImageRegistry).toEqual([
        { comparison: 'EQUALS', value: ACCOUNT },
      ]);
    }

    // 30 s later: not a sweep apart yet.
    h.clock.advance(30 * SECOND);
    await h.sweep();
    expect((await h.gate())?.state).toBe('WAITING');
    expect(putResults(h)).toHaveLength(0);

    // 50 s after that read, the same read: settled.
    h.clock.advance(50 * SECOND);
    await h.sweep();
    expect(await h.decision()).toMatchObject({ trigger: 'sweep', record: { outcome: 'APPROVE' } });
    expect(putResults(h)).toHaveLength(1);
    expect((await h.gate())?.timeline.map((t) => t.what).join('\n')).toContain(
      'two reads a sweep apart agree',
    );
  });

  it.each([
    ['deleted from ECR', 'INACTIVE', 'RESOURCE_TERMINATED'],
    ['past its re-scan duration', 'INACTIVE', 'SCAN_ELIGIBILITY_EXPIRED'],
    // Active, with a scan time (the scan before the switch): still no longer scanned.
    ['in a repository switched to a manual scan frequency', 'ACTIVE', 'SCAN_FREQUENCY_MANUAL'],
  ])(
    'an image scanned and since %s: its findings closed, coverage says so, and it escalates',
    async (_, statusCode, reason) => {
      const h = await setup();
      h.scanner.findings = exampleFindings('payments-api.list-findings.json');
      // The scan, long before the release: its status (with its counts) is stored.
      await h.scanFinished();
      // Inspector stops scanning the image and closes its findings; its coverage says why.
      h.scanner.findings = h.scanner.findings.map((f) => ({ ...f, status: 'CLOSED' }));
      h.scanner.coverage = { statusCode, reason } as unknown as typeof h.scanner.coverage;
      // Within the day (a status older is checked with coverage anyway): the closed findings ask.
      h.clock.advance(2 * 60 * MINUTE);
      await h.approvalStarted();
      for (let i = 0; i < 3; i++) {
        h.clock.advance(MINUTE);
        await h.sweep();
      }
      // The closed findings explained the counts' shortfall, two reads agreed, and the gate approved.
      expect(putResults(h).map((p) => p.result?.status)).not.toContain('Approved');
      const decided = await h.decision();
      expect(decided?.record.outcome).toBe('ESCALATE');
      expect(JSON.stringify(decided?.record)).toContain(`Inspector no longer scans this image (${reason})`);
    },
  );

  it('a clean image scanned long ago, no longer scanned and its closed findings deleted: coverage is asked, and it escalates', async () => {
    const h = await setup();
    // Clean when scanned, 40 days before the release (a rollback): the stored status counts nothing.
    await h.scanFinished(h.inspectorScanEvent({ counts: { CRITICAL: 0, HIGH: 0, MEDIUM: 0, TOTAL: 0 } }));
    h.scanner.findings = [];
    h.scanner.coverage = {
      statusCode: 'INACTIVE',
      reason: 'SCAN_ELIGIBILITY_EXPIRED',
    } as unknown as typeof h.scanner.coverage;
    h.clock.advance(40 * 24 * 60 * MINUTE);
    await h.approvalStarted();
    // An empty read met the old scan's counts, and the gate approved on a scan Inspector no longer keeps.
    const decided = await h.decision();
    expect(decided?.record.outcome).toBe('ESCALATE');
    expect(JSON.stringify(decided?.record)).toContain('SCAN_ELIGIBILITY_EXPIRED');
    expect(putResults(h).map((r) => r.result?.status)).not.toContain('Approved');
  });

  it('a stored status an hour old is taken as it is; a day-old one still covered decides with coverage asked once', async () => {
    const fresh = await setup();
    await fresh.scanFinished();
    fresh.clock.advance(60 * MINUTE);
    await fresh.approvalStarted();
    expect(await fresh.decision()).toMatchObject({ record: { outcome: 'APPROVE' } });
    expect(fresh.mocks.inspector.commandCalls(ListCoverageCommand)).toHaveLength(0);

    const old = await setup();
    const closedCopies = old.scanner.findings.map((f) => ({
      ...f,
      findingArn: `${f.findingArn}-closed`,
      status: 'CLOSED' as const,
    }));
    old.scanner.findings = [...old.scanner.findings, ...closedCopies];
    await old.scanFinished();
    old.scanner.coverage = SCANNED;
    old.clock.advance(2 * 24 * 60 * MINUTE);
    await old.approvalStarted();
    expect(await old.decision()).toMatchObject({ record: { outcome: 'APPROVE' } });
    // The stale status and the closed findings both want coverage: one request for the one decision.
    expect(old.mocks.inspector.commandCalls(ListCoverageCommand)).toHaveLength(1);
  });

  it('closed findings of an image Inspector still scans (a vulnerability withdrawn) settle as before', async () => {
    const h = await setup();
    h.scanner.findings = exampleFindings('payments-api.list-findings.json');
    await h.scanFinished();
    // Closed since the scan event counted them: their update time says so.
    h.clock.advance(SECOND);
    h.scanner.findings = h.scanner.findings.map((f) => ({
      ...f,
      status: 'CLOSED',
      updatedAt: h.clock.now(),
    }));
    h.scanner.coverage = SCANNED;
    await h.approvalStarted();
    h.clock.advance(MINUTE);
    await h.sweep();
    expect(await h.decision()).toMatchObject({ trigger: 'sweep', record: { outcome: 'APPROVE' } });
    expect(h.mocks.inspector.commandCalls(ListCoverageCommand).length).toBeGreaterThan(0);
  });

  it('a finding the scan event counted and no read lists never settles: the deadline escalates, nothing approves', async () => {
    const h = await setup();
    h.scanner.coverage = SCANNED;
    await h.approvalStarted();
    // The event counts a CRITICAL that ListFindings does not list, in any status (not arrived, or lost).
    h.clock.advance(MINUTE);
    await h.scanFinished(
      h.inspectorScanEvent({ counts: { ...scanCounts(h.scanner.findings), CRITICAL: 1 } }),
    );
    // Two reads a sweep apart agreed on it, and the gate approved.
    await sweepsStillWaiting(h);

    h.clock.advance(30 * MINUTE);
    await h.sweep();
    const decided = await h.decision();
    expect(decided?.record.outcome).not.toBe('APPROVE');
    expect(JSON.stringify(decided?.record)).toContain('not listed in any status');
  });

  it("a same-named repository's scan in another account (a delegated administrator's event) neither replaces this image's status nor settles it", async () => {
    const h = await setup();
    h.scanner.coverage = SCANNED;
    await h.approvalStarted();
    // Our scan counts a CRITICAL that ListFindings does not list yet.
    h.clock.advance(MINUTE);
    await h.scanFinished(
      h.inspectorScanEvent({ counts: { ...scanCounts(h.scanner.findings), CRITICAL: 1 } }),
    );
    // A member account's repository of the same name, the same digest promoted into it: clean, and newer.
    h.clock.advance(10 * SECOND);
    const member = h.inspectorScanEvent({ counts: { CRITICAL: 0, HIGH: 0, MEDIUM: 0, TOTAL: 0 } });
    const memberArn = REPOSITORY_ARN.replace(`:${ACCOUNT}:`, ':210987654321:');
    member.resources = [memberArn];
    member.detail['repository-name'] = memberArn;
    await h.scanFinished(member);
    // Keyed by repository name alone, the member's status replaced ours; the gate, finding it was not its
    // image's, fell back to coverage without counts, and two equal reads approved without the CRITICAL.
    await sweepsStillWaiting(h);
    expect(await h.store.getScan(DIGEST, ACCOUNT, REPOSITORY)).toMatchObject({ counts: { CRITICAL: 1 } });
    expect(await h.store.getScan(DIGEST, '210987654321', REPOSITORY)).toMatchObject({ counts: { TOTAL: 0 } });
  });

  it('a finding suppressed before the scan event (a suppression rule) does not stand in for a counted one not listed yet', async () => {
    const h = await setup();
    h.scanner.coverage = SCANNED;
    // Suppressed as it was made, long before this scan: the event never counted it.
    const suppressed = suppressedCritical(h, { updatedAt: new Date(Date.parse(START) - 24 * 60 * MINUTE) });
    const counts = oneCriticalShort(h);
    h.scanner.findings = [...h.scanner.findings, suppressed];
    await h.approvalStarted();
    h.clock.advance(MINUTE);
    await h.scanFinished(h.inspectorScanEvent({ counts }));
    // Counted as listed, it filled the CRITICAL's gap, and two equal reads approved.
    await sweepsStillWaiting(h);
    h.clock.advance(30 * MINUTE);
    await h.sweep();
    expect((await h.decision())?.record.outcome).not.toBe('APPROVE');
  });

  it('a finding made suppressed after the scan event (a fresh image, a suppression rule), or changed at no time of its own, does not stand in for a counted one', async () => {
    // Offsets from the scan event's time (whole seconds), and what the suppressed CRITICAL of another CVE says.
    const cases = [
      ['made suppressed 0.411 s into the event second', { first: 411, last: 411, updated: 411 }],
      ['made suppressed 5 s after the event', { first: 5 * SECOND, last: 5 * SECOND, updated: 5 * SECOND }],
      // Suppressed a day ago, no updatedAt: the rescan stamped lastObservedAt, which says nothing of its status.
      [
        'suppressed a day ago, re-observed since',
        { first: -24 * 60 * MINUTE, last: 2 * SECOND, updated: undefined },
      ],
    ] as const;
    for (const [why, t] of cases) {
      const { h, event, eventMs } = await oneCriticalShortGate();
      const at = (offset: number | undefined) =>
        offset === undefined ? undefined : new Date(eventMs + offset);
      h.scanner.findings = [
        ...h.scanner.findings,
        suppressedCritical(h, {
          firstObservedAt: at(t.first),
          lastObservedAt: at(t.last),
          updatedAt: at(t.updated),
        }),
      ];
      await h.scanFinished(event);
      // Listed, it filled the gap of the counted CRITICAL not listed yet, and two equal reads approved.
      await sweepsStillWaiting(h, why);
      h.clock.advance(30 * MINUTE);
      await h.sweep();
      expect((await h.decision())?.record.outcome, why).not.toBe('APPROVE');
    }
  });

  it('a finding made before the scan event and suppressed after it explains the shortfall: two reads a sweep apart settle', async () => {
    const { h, event, eventMs } = await oneCriticalShortGate();
    await h.scanFinished(event);
    // Counted ACTIVE by the event, suppressed 30 s later.
    h.scanner.findings = [
      ...h.scanner.findings,
      suppressedCritical(h, {
        firstObservedAt: new Date(eventMs - 10 * MINUTE),
        lastObservedAt: new Date(eventMs),
        updatedAt: new Date(eventMs + 30 * SECOND),
      }),
    ];
    for (let i = 0; i < 3; i++) {
      h.clock.advance(MINUTE);
      await h.sweep();
    }
    expect(await h.decision()).toMatchObject({ trigger: 'sweep', record: { outcome: 'APPROVE' } });
  });

  it('no scan event, coverage SCAN_FREQUENCY_MANUAL with a scan time, no findings left: escalated, never approved', async () => {
    // Scanned on push once, then the repository set to manual: Inspector no longer scans the image and has
    // deleted its closed findings. Read as a finished scan, two empty reads a sweep apart approved it.
    const h = await setup();
    h.scanner.findings = [];
    h.scanner.coverage = {
      statusCode: 'ACTIVE',
      reason: 'SCAN_FREQUENCY_MANUAL',
    } as unknown as typeof h.scanner.coverage;
    await h.approvalStarted();
    for (let i = 0; i < 3; i++) {
      h.clock.advance(MINUTE);
      await h.sweep();
    }
    expect(putResults(h).map((r) => r.result?.status)).not.toContain('Approved');
    const decided = await h.decision();
    expect(decided?.record.outcome).toBe('ESCALATE');
    expect(JSON.stringify(decided?.record)).toContain('SCAN_FREQUENCY_MANUAL');
  });

  it('each sweep reports gates waiting, overdue (past the deadline and a margin) and the oldest wait', async () => {
    const h = await setup();
    const added = metricsOf(h);
    await h.approvalStarted();
    h.clock.advance(10 * MINUTE);
    await h.sweep();
    expect(added).toEqual(
      expect.arrayContaining([
        ['GatesWaiting', 1],
        ['GatesOverdue', 0],
        ['OldestWaitingMinutes', 10],
      ]),
    );
    // 36 minutes: past the 30-minute deadline and the 5-minute margin. The timeout should have decided it by
    // now; the metric (and its alarm) says so before this sweep decides it.
    added.length = 0;
    h.clock.advance(26 * MINUTE);
    await h.sweep();
    expect(added).toEqual(
      expect.arrayContaining([
        ['GatesOverdue', 1],
        ['OldestWaitingMinutes', 36],
      ]),
    );
    expect((await h.gate())?.state).toBe('ACTED');
  });

  it('a decided gate whose escalation keeps failing counts as overdue, once an acting lease past its deadline', async () => {
    // The sweep's own failures are only logged: without this, the gate left WAITING and nothing paged.
    const h = await setup();
    const added = metricsOf(h);
    refusePublishes(h);
    await h.approvalStarted();
    h.clock.advance(31 * MINUTE); // the scan wait ran out: the sweep decides ESCALATE, and the publish fails
    await h.sweep();
    expect((await h.gate())?.state).toBe('DECIDED');
    const overdue = overdueAfter(h, added);
    // Within the deadline, a lease and the margin (30 + 6 + 5): still being retried, not yet overdue.
    expect(await overdue(9)).toBe(0);
    expect((await h.gate())?.state).toBe('DECIDED');
    expect(await overdue(2)).toBe(1);
    // Sent at last: no longer overdue.
    h.mocks.sns.on(PublishCommand).resolves({ MessageId: 'm-1' });
    await overdue(1);
    expect((await h.gate())?.state).toBe('ACTED');
    expect(await overdue(1)).toBe(0);
  });

  it('a gate the sweep decided early whose escalation keeps failing counts as overdue a lease after its decision, not its deadline', async () => {
    // With a week's wait, counted from the deadline, nobody would be paged for a week.
    const h = await setup();
    const added = metricsOf(h);
    h.scanner.findings = exampleFindings('orders-worker.list-findings.json'); // the policy escalates
    h.scanner.coverage = undefined;
    refusePublishes(h);
    await h.approvalStarted();
    h.scanner.coverage = SCANNED; // the scan finished; its event was lost
    h.clock.advance(MINUTE);
    await h.sweep();
    h.clock.advance(MINUTE);
    await h.sweep(); // two reads a sweep apart agree: ESCALATE, and the publish fails
    const decided = await h.gate();
    expect(decided).toMatchObject({ state: 'DECIDED', outcome: 'ESCALATE' });
    expect(decided?.decidedAt).toBe(h.clock.now().toISOString());
    const overdue = overdueAfter(h, added);
    // A lease and the margin after the decision (6 + 5), far inside the 30-minute wait.
    expect(await overdue(10)).toBe(0);
    expect(await overdue(2)).toBe(1);
    expect((await h.gate())?.state).toBe('DECIDED');
  });

  it('escalates with scan-timeout when no scan finished within waitMinutes', async () => {
    const h = await setup();
    await h.approvalStarted();
    h.clock.advance(10 * MINUTE);
    await h.sweep();
    expect((await h.gate())?.state).toBe('WAITING');
    expect(publishes(h)).toHaveLength(0);

    h.clock.advance(21 * MINUTE); // 31 minutes after the start: the policy's 30-minute wait has run out
    await h.sweep();
    const decision = await h.decision();
    expect(decision).toMatchObject({ trigger: 'sweep', record: { outcome: 'ESCALATE' } });
    expect(decision!.record.violations.map((v) => v.rule)).toEqual(['scan-timeout']);
    expect(publishes(h)).toHaveLength(1);
    expect(publishes(h)[0]!.Subject!.length).toBeLessThanOrEqual(100);
    expect(putResults(h)).toHaveLength(0);
    expect(await h.gate()).toMatchObject({ state: 'ACTED', notifications: 1 });
  });
  it("a redeploy changing waitMinutes: the gate times out by its own deadline, and its reason says the gate's wait", async () => {
    const h = await setup();
    await h.approvalStarted();
    const dir = await mkdtemp(join(tmpdir(), 'tollgate-policy-'));
    try {
      const file = join(dir, 'baseline.yaml');
      const text = readFileSync(BASELINE_POLICY, 'utf8');
      await writeFile(file, text.replace('waitMinutes: 30', 'waitMinutes: 60'));
      // The functions redeployed with the new policy, over the same table.
      const redeployed = new Harness(h.doc, h.tableName, { policy: loadPolicySource(file) });
      redeployed.clock.advance(31 * MINUTE);
      await redeployed.sweep();
      const decision = await redeployed.decision();
      expect(decision!.record.violations).toEqual([
        expect.objectContaining({
          rule: 'scan-timeout',
          description: expect.stringMatching(/^no completed scan within 30 minutes/),
        }),
      ]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('AWS failing', () => {
  it('ListCoverage failing past the wait: the sweep still applies scan.onTimeout (a gate never waits forever)', async () => {
    const h = await setup();
    await h.approvalStarted();
    h.fail(
      'ListCoverage',
      () => new InternalServerException({ message: 'down', $metadata: { httpStatusCode: 500 } }),
    );
    h.clock.advance(10 * MINUTE);
    await h.sweep();
    expect((await h.gate())?.state).toBe('WAITING');

    h.clock.advance(21 * MINUTE);
    await h.sweep();
    const decision = await h.decision();
    expect(decision?.record.outcome).toBe('ESCALATE');
    expect(decision?.record.violations.map((v) => v.rule)).toEqual(['error']);
    expect(publishes(h)).toHaveLength(1);
  });

  it('a later ListFindings page fails every attempt: no decision, the handler throws; the sweep decides once the API recovers', async () => {
    const h = await setup();
    h.scanner.findings = [
      ...cleanFindings(),
      ...exampleFindings('billing-api.list-findings.json').filter((f) => f.severity === 'MEDIUM'),
      ...exampleFindings('search-api.late-findings.list-findings.json'),
    ];
    h.scanner.pageSize = 1;
    h.fail('ListFindings', inspectorDown, { when: (i) => laterPage(i) && severityOf(i) === 'MEDIUM' });
    await h.approvalStarted();
    const added = metricsOf(h);
    h.clock.advance(MINUTE);

    await expect(h.scanFinished()).rejects.toThrow(/gate\(s\) failed/);
    // Counted once for the gate's read, not once per page attempt.
    expect(valuesOf(added, 'FindingsReadFailures')).toEqual([1]);
    expect(valuesOf(added, 'TimeToDecision')).toEqual([]);
    const failedPages = findingsReads(h).filter(
      (i) => severityOf(i) === 'MEDIUM' && i.nextToken !== undefined,
    );
    expect(failedPages).toHaveLength(3); // retried, then given up
    expect(await h.decision()).toBeUndefined();
    const waiting = await h.gate();
    expect(waiting?.state).toBe('WAITING');
    expect(waiting?.outcome).toBeUndefined();
    expect(putResults(h)).toHaveLength(0);

    h.heal();
    h.clock.advance(MINUTE);
    await h.sweep();
    expect(valuesOf(added, 'FindingsReadFailures')).toEqual([1]);
    const record = (await h.decision())!.record;
    expect(record.outcome).toBe('REJECT');
    expect(record.counts).toMatchObject({ CRITICAL: 1, MEDIUM: 2 });
    expect(putResults(h).map((r) => r.result?.status)).toEqual(['Rejected']);
  });

  it('throttling, then success, on ListFindings and on PutApprovalResult: decided and acted once', async () => {
    const h = await setup();
    h.fail('ListFindings', inspectorThrottled, { times: 2, when: (i) => severityOf(i) === 'MEDIUM' });
    h.fail('PutApprovalResult', pipelineThrottled, { times: 1 });
    await h.approvalStarted();
    h.clock.advance(MINUTE);
    await h.scanFinished();

    expect(findingsReads(h).filter((i) => severityOf(i) === 'MEDIUM')).toHaveLength(3);
    expect(putResults(h)).toHaveLength(2);
    expect(h.results).toHaveLength(1);
    expect(await h.decisionItems()).toHaveLength(1);
    expect(await h.gate()).toMatchObject({ state: 'ACTED', approvalResult: { status: 'Approved' } });
  });

  it('PutApprovalResult: ApprovalAlreadyCompletedException means someone was faster: ACTED, no error, nothing recorded as sent', async () => {
    const h = await setup();
    h.fail('PutApprovalResult', alreadyCompleted, { times: 1 });
    await h.approvalStarted();
    await expect(h.scanFinished()).resolves.toBeDefined();
    expect(putResults(h)).toHaveLength(1);
    const gate = await h.gate();
    expect(gate).toMatchObject({ state: 'ACTED', outcome: 'APPROVE' });
    expect(gate?.approvalResult).toBeUndefined();
    expect(gate?.timeline.at(-1)?.what).toMatch(/already completed/);
  });

  it('PutApprovalResult whose answer was lost: CloudTrail naming Tollgate makes the sent result the approval’s', async () => {
    // The call lands, its answer times out, the retry finds the approval completed: by this result or by
    // someone else. CloudTrail's record of the call says which; Tollgate's own, it is this result.
    const { h, calls } = await answerLostThenCompleted();
    expect(calls()).toBe(2);
    const acted = await h.gate();
    expect(acted).toMatchObject({ state: 'ACTED', outcome: 'APPROVE' });
    expect(acted?.approvalResult).toBeUndefined();
    expect(acted?.timeline.at(-1)?.what).toMatch(/the answer was lost/);
    // Someone else's call leaves it as it is; Tollgate's own records the result it sent.
    await h.approvalEnded(h.cloudTrailEvent({ identity: TOLLGATE_IDENTITY, status: 'Approved' }));
    expect(await h.gate()).toMatchObject({
      approvalResult: { status: 'Approved' },
      reviewer: { identity: TOLLGATE_IDENTITY, tollgate: true },
    });
  });

  it("an identity that merely spells Tollgate's role inside it is a person's (an IAM user's path may hold any text)", async () => {
    const { h } = await answerLostThenCompleted();
    const added = metricsOf(h);
    // The same result Tollgate would send: read as Tollgate's, it became the gate's sent result, actor tollgate.
    const spoofed = `arn:aws:iam::${ACCOUNT}:user/ops:assumed-role/${TOLLGATE_ROLE}/mallory`;
    await h.approvalEnded(h.cloudTrailEvent({ identity: spoofed, status: 'Approved' }));
    const gate = await h.gate();
    expect(gate?.approvalResult).toBeUndefined();
    expect(gate?.reviewer).toMatchObject({ identity: spoofed, tollgate: false });
    expect(added.map(([name]) => name)).not.toContain('ApprovalResultsUnderTollgateRole');
    // Nor a session of a role whose name only starts like it, nor the role's name as a session's.
    for (const other of [
      `arn:aws:sts::${ACCOUNT}:assumed-role/${TOLLGATE_ROLE}Admin/x`,
      `arn:aws:sts::${ACCOUNT}:assumed-role/SecurityEngineer/${TOLLGATE_ROLE}`,
    ]) {
      const { h: h2 } = await answerLostThenCompleted();
      await h2.approvalEnded(h2.cloudTrailEvent({ identity: other, status: 'Approved' }));
      expect((await h2.gate())?.reviewer, other).toMatchObject({ identity: other, tollgate: false });
    }
  });

  it("a call under Tollgate's role with a status the gate's outcome never sends is not recorded as Tollgate's result", async () => {
    const { h } = await answerLostThenCompleted();
    expect(await h.gate()).toMatchObject({ state: 'ACTED', outcome: 'APPROVE' });
    // Someone borrowing the role rejected: the reviewer is recorded, the gate's sent result is not invented.
    await h.approvalEnded(h.cloudTrailEvent({ identity: TOLLGATE_IDENTITY, status: 'Rejected' }));
    const gate = await h.gate();
    expect(gate?.approvalResult).toBeUndefined();
    expect(gate?.reviewer).toMatchObject({
      identity: TOLLGATE_IDENTITY,
      status: 'Rejected',
      tollgate: false,
    });
  });

  it("an escalation approved under Tollgate's role is a reviewer's approval, never Tollgate's (it never answers those)", async () => {
    const h = await setup();
    h.scanner.findings = exampleFindings('orders-worker.list-findings.json');
    const added = metricsOf(h);
    await h.approvalStarted();
    await h.scanFinished();
    expect(await h.gate()).toMatchObject({ state: 'ACTED', outcome: 'ESCALATE' });
    await h.approvalEnded(h.cloudTrailEvent({ identity: TOLLGATE_IDENTITY, status: 'Approved' }));
    const gate = await h.gate();
    expect(gate?.approvalResult).toBeUndefined();
    expect(gate?.reviewer).toMatchObject({
      identity: TOLLGATE_IDENTITY,
      status: 'Approved',
      tollgate: false,
    });
    expect(added).toContainEqual(['ApprovalResultsUnderTollgateRole', 1]);
    const resolutions = (await h.items())
      .map(
        (i) => i.record as { type: string; actor: string; resolution: { byTollgate: boolean } } | undefined,
      )
      .filter((r) => r?.type === 'resolution');
    expect(resolutions).toHaveLength(1);
    expect(resolutions[0]).toMatchObject({ actor: TOLLGATE_IDENTITY, resolution: { byTollgate: false } });
  });

  it("a call under Tollgate's role recorded by a delivery that then failed is counted by the redelivery", async () => {
    const { h, added, update } = await escalatedGate();
    let lost = true;
    vi.spyOn(h.store, 'updateGate').mockImplementation(async (gate, version, audit) => {
      const written = await update(gate, version, audit);
      // Written, and its answer lost: the invocation fails before it counts (or its metrics are flushed).
      if (lost && gate.reviewer !== undefined) {
        lost = false;
        throw Object.assign(new Error('socket hang up'), { name: 'TimeoutError' });
      }
      return written;
    });
    const event = h.cloudTrailEvent({ identity: TOLLGATE_IDENTITY, status: 'Approved' });
    await expect(h.approvalEnded(event)).rejects.toThrow();
    expect(added.map(([name]) => name)).not.toContain('ApprovalResultsUnderTollgateRole');
    await h.approvalEnded(event);
    expect((await h.gate())?.reviewer).toMatchObject({ identity: TOLLGATE_IDENTITY, tollgate: false });
    expect(added).toContainEqual(['ApprovalResultsUnderTollgateRole', 1]);
  });

  it("a call under Tollgate's role that lost a race to another write of the gate is counted once", async () => {
    const { h, added, update } = await escalatedGate();
    let calls = 0;
    vi.spyOn(h.store, 'updateGate').mockImplementation(async (gate, version, audit) => {
      calls++;
      // The first write loses the gate's version to another (the action's end, say): read again and retried.
      return calls === 1 ? false : update(gate, version, audit);
    });
    await h.approvalEnded(h.cloudTrailEvent({ identity: TOLLGATE_IDENTITY, status: 'Approved' }));
    expect(calls).toBe(2);
    expect((await h.gate())?.reviewer).toMatchObject({ identity: TOLLGATE_IDENTITY, tollgate: false });
    expect(added.filter(([name]) => name === 'ApprovalResultsUnderTollgateRole')).toEqual([
      ['ApprovalResultsUnderTollgateRole', 1],
    ]);
  });

  it("a reviewer's write that lost a race reads the gate again by its key, not through the token's index (which lags)", async () => {
    const { h, update } = await escalatedGate();
    let calls = 0;
    vi.spyOn(h.store, 'updateGate').mockImplementation(async (gate, version, audit) => {
      calls++;
      return calls <= 2 ? false : update(gate, version, audit);
    });
    const byToken = vi.spyOn(h.store, 'gateByTokenHash');
    const byKey = vi.spyOn(h.store, 'getGate');
    await h.approvalEnded(h.cloudTrailEvent({ status: 'Approved' }));
    expect(calls).toBe(3);
    // An index read could answer each retry with the version that just lost: found once, then read by key.
    expect(byToken).toHaveBeenCalledTimes(1);
    expect(byKey.mock.calls.length).toBeGreaterThanOrEqual(2);
    expect((await h.gate())?.reviewer).toMatchObject({ status: 'Approved', tollgate: false });
  });

  it("a call under Tollgate's role that matches no gate pages as a borrowed role; a person's is only unmatched", async () => {
    // Tollgate sends a result only with a token whose gate keeps its hash: under its role and matching no
    // gate (a gate not yet told its token is the easy target), the call is someone else's.
    const h = await setup();
    const added = metricsOf(h);
    const warned = vi.spyOn(h.runtime.logger, 'warn');
    const token = '0f0e0d0c-0b0a-4909-8807-060504030201';
    await h.approvalEnded(h.cloudTrailEvent({ identity: TOLLGATE_IDENTITY, token, status: 'Approved' }));
    expect(added).toContainEqual(['ApprovalResultsUnmatched', 1]);
    expect(added).toContainEqual(['ApprovalResultsUnderTollgateRole', 1]);
    expect(warned).toHaveBeenCalledWith(
      expect.stringContaining('it matches no gate'),
      expect.objectContaining({ identity: TOLLGATE_IDENTITY, pipeline: expect.any(String) }),
    );
    added.length = 0;
    await h.approvalEnded(h.cloudTrailEvent({ token, status: 'Approved' }));
    expect(added).toContainEqual(['ApprovalResultsUnmatched', 1]);
    expect(added.map(([name]) => name)).not.toContain('ApprovalResultsUnderTollgateRole');
  });

  it('recording the action: a write that landed with its answer lost, sent again, is one write and one record', async () => {
    // The SDK's retries reuse one request token; `recording` sends the write again under a new one, which
    // DynamoDB refuses (the gate moved on: to this very write). Taken for a lost race, the action was
    // recorded a second time, twice in the append-only trail.
    const h = await setup();
    const update = h.store.updateGate.bind(h.store);
    let lost = 0;
    vi.spyOn(h.store, 'updateGate').mockImplementation(async (gate, version, audit) => {
      const written = await update(gate, version, audit);
      if (written && gate.state === 'ACTED' && lost++ === 0)
        throw Object.assign(new Error('Socket timed out without establishing a connection'), {
          name: 'TimeoutError',
        });
      return written;
    });
    await h.approvalStarted();
    await h.scanFinished();
    expect(lost).toBe(1);
    const gate = await h.gate();
    expect(gate).toMatchObject({ state: 'ACTED', approvalResult: { status: 'Approved' } });
    expect(gate?.timeline.filter((t) => t.what.startsWith('sent Approved'))).toHaveLength(1);
    const actions = (await h.items()).filter(
      (i) => i.type === 'audit' && (i.record as { type?: string }).type === 'action',
    );
    expect(actions).toHaveLength(1);
    expect(putResults(h)).toHaveLength(1);
  });

  it('a person’s call after a lost answer is the person’s: the gate records no result of its own', async () => {
    const h = await setup();
    h.fail('PutApprovalResult', alreadyCompleted, { times: 1 });
    await h.approvalStarted();
    await h.scanFinished();
    await h.approvalEnded(
      h.cloudTrailEvent({
        identity: `arn:aws:sts::${ACCOUNT}:assumed-role/SecurityEngineer/alice`,
        status: 'Approved',
      }),
    );
    const gate = await h.gate();
    expect(gate?.reviewer).toMatchObject({ tollgate: false });
    expect(gate?.approvalResult).toBeUndefined();
  });

  it('PutApprovalResult: InvalidApprovalTokenException makes the gate STALE', async () => {
    const h = await setup();
    h.fail(
      'PutApprovalResult',
      () =>
        new InvalidApprovalTokenException({
          message: `Approval token '${TOKEN}' either does not exist or is not the correct token for the action or stage.`,
          $metadata: { httpStatusCode: 400 },
        }),
      { times: 1 },
    );
    await h.approvalStarted();
    await h.scanFinished();
    expect(putResults(h)).toHaveLength(1);
    const gate = await h.gate();
    expect(gate?.state).toBe('STALE');
    expect(gate?.approvalResult).toBeUndefined();
    expect(gate?.staleReason).toMatch(/token/);
  });

  it('a result refused while the approval ended: the refusal is recorded all the same, the gate stays CLOSED', async () => {
    const h = await setup();
    h.mocks.codepipeline.on(PutApprovalResultCommand).callsFake(async () => {
      // The approval ends (abandoned) while the result is on its way, and the result is refused.
      h.pipeline.action.status = 'Abandoned';
      await h.approvalEnded(h.approvalEndedEvent('ABANDONED'));
      throw new InvalidApprovalTokenException({
        message: `Approval token '${TOKEN}' either does not exist or is not the correct token for the action or stage.`,
        $metadata: { httpStatusCode: 400 },
      });
    });
    await h.approvalStarted();
    await h.scanFinished();
    const gate = await h.gate();
    expect(gate?.state).toBe('CLOSED');
    expect(gate?.closure?.state).toBe('ABANDONED');
    const records = (await h.items())
      .map((i) => i.record as { type?: string; action?: { answer: string; status: string } } | undefined)
      .filter((r) => r?.type !== undefined);
    expect(records.map((r) => r!.type)).toEqual(['decision', 'resolution', 'action']);
    expect(records[2]!.action).toMatchObject({ status: 'Approved', answer: 'invalid-token' });
  });

  it('an approval answered before Tollgate decided (CloudTrail first): no decision, nobody paged, STALE', async () => {
    const h = await setup();
    h.scanner.findings = exampleFindings('orders-worker.list-findings.json');
    await h.approvalStarted();
    expect((await h.gate())?.state).toBe('WAITING');
    const person = 'arn:aws:sts::123456789012:assumed-role/SecurityEngineer/alice';
    await h.approvalEnded(h.cloudTrailEvent({ identity: person, status: 'Approved' }));
    expect((await h.gate())?.reviewer).toMatchObject({ identity: person, tollgate: false });
    await h.scanFinished();
    const gate = await h.gate();
    expect(gate?.state).toBe('STALE');
    expect(gate?.staleReason).toBe(
      `the approval was answered (Approved) by ${person} before Tollgate decided`,
    );
    expect(await h.decision()).toBeUndefined();
    expect(h.messages).toEqual([]);
    expect(putResults(h)).toEqual([]);
  });

  it('an escalation answered before it was sent (CloudTrail first): nobody is paged again, STALE', async () => {
    const h = await setup();
    h.scanner.findings = exampleFindings('orders-worker.list-findings.json');
    h.fail(
      'Publish',
      () => new InternalErrorException({ message: 'Internal', $metadata: { httpStatusCode: 500 } }),
    );
    await h.approvalStarted();
    h.clock.advance(300);
    await expect(h.scanFinished()).rejects.toThrow();
    expect((await h.gate())?.state).toBe('DECIDED');
    h.heal();
    const person = 'arn:aws:sts::123456789012:assumed-role/SecurityEngineer/alice';
    // CloudTrail's time has whole seconds: the answer, in the decision's second, reads before it by the digits.
    const decidedAt = (await h.gate())!.decidedAt!;
    const answer = h.cloudTrailEvent({ identity: person, status: 'Rejected' });
    answer.detail.eventTime = `${decidedAt.slice(0, 19)}Z`;
    await h.approvalEnded(answer);
    h.clock.advance(60_000);
    await h.sweep();
    const gate = await h.gate();
    expect(gate?.state).toBe('STALE');
    // Its send failed with a 5xx, which may have landed: the reason says so, never "before it went out".
    expect(gate?.staleReason).toBe(
      `the approval was answered (Rejected) by ${person} before the escalation was recorded as sent (one may have gone out unrecorded)`,
    );
    expect(h.messages).toEqual([]);
  });

  it('a failing EventBridge PutEvents never changes the decision', async () => {
    const h = await setup();
    h.fail(
      'PutEvents',
      () => new InternalException({ message: 'Internal error', $metadata: { httpStatusCode: 500 } }),
    );
    await expect(h.approvalStarted()).resolves.toMatchObject({ result: { state: 'WAITING' } });
    await expect(h.scanFinished()).resolves.toBeDefined();

    expect(h.mocks.eventbridge.commandCalls(PutEventsCommand).length).toBeGreaterThanOrEqual(3);
    expect(h.events).toHaveLength(0);
    expect(putResults(h).map((r) => r.result?.status)).toEqual(['Approved']);
    expect(await h.gate()).toMatchObject({ state: 'ACTED', outcome: 'APPROVE' });
    expect(logLines.join('\n')).toContain('publishing Tollgate events failed');
  });

  it("the decision's VULN# items refused (not retried): acted all the same, reported, the marker kept; the sweep writes them", async () => {
    // A store on a client of its own, whose VULN# transactions DynamoDB refuses until told otherwise.
    const doc = createDocumentClient({ endpoint: dynamo().endpoint });
    let refusing = true;
    const vulnTransactions: string[][] = [];
    doc.middlewareStack.add(
      (next, context) => async (args) => {
        const input = args.input as { TransactItems?: { Put?: { Item?: { pk?: unknown } } }[] };
        const keys = (input.TransactItems ?? []).map((t) => String(t.Put?.Item?.pk));
        if (context.commandName === 'TransactWriteItemsCommand' && vulnIndexWrite(input.TransactItems)) {
          vulnTransactions.push(keys);
          if (refusing) {
            throw Object.assign(new Error('One or more parameter values were invalid'), {
              name: 'ValidationException',
              $fault: 'client',
            });
          }
        }
        return next(args);
      },
      { step: 'initialize', name: 'refuseVulnIndex' },
    );
    const tableName = `tollgate-gate-vuln-${process.pid}`;
    await ensureTable(doc, tableName);
    const h = new Harness(doc, tableName);
    const added: string[] = [];
    vi.spyOn(h.runtime.metrics, 'addMetric').mockImplementation((name) => {
      added.push(name);
      return h.runtime.metrics;
    });
    const pendingMarkers = async () =>
      (await h.items()).filter((i) => i.pk === 'AUDIT-PENDING' && i.done === undefined);
    try {
      h.scanner.findings = exampleFindings('payments-api.list-findings.json');
      await h.approvalStarted();
      h.clock.advance(55 * SECOND);
      await h.scanFinished();

      expect(putResults(h)).toHaveLength(1);
      expect(await h.gate()).toMatchObject({ state: 'ACTED', outcome: 'REJECT' });
      const decisionRecord = (await h.items()).find(
        (i) => i.type === 'audit' && (i.record as { type?: string }).type === 'decision',
      );
      const vulnerabilities = (decisionRecord!.record as { vulnerabilities: string[] }).vulnerabilities;
      expect(vulnerabilities.length).toBeGreaterThan(0);
      // One chunk (the decision's ids are fewer than 100), sent once: a validation error is not retried.
      expect(vulnTransactions).toHaveLength(1);
      expect(added).toContain('AuditIndexFailures');
      expect(logLines.join('\n')).toContain("writing the audit record's vulnerability index failed");
      expect(await pendingMarkers()).toHaveLength(1);
      expect((await h.items()).filter((i) => String(i.pk).startsWith('VULN#'))).toEqual([]);

      refusing = false;
      h.clock.advance(MINUTE);
      await h.sweep();
      expect(vulnTransactions).toHaveLength(2);
      expect(await pendingMarkers()).toEqual([]);
      const written = (await h.items()).filter((i) => String(i.pk).startsWith('VULN#')).map((i) => i.pk);
      expect(written.sort()).toEqual([...new Set(vulnerabilities)].map((v) => `VULN#${v}`).sort());
      expect(putResults(h)).toHaveLength(1);
    } finally {
      doc.destroy();
    }
  });

  it('a failing SNS publish leaves the gate DECIDED and gives the lease back; the next sweep publishes exactly once', async () => {
    const h = await escalationNotPublished();
    const failed = await h.gate();
    expect(failed).toMatchObject({ state: 'DECIDED', outcome: 'ESCALATE', notifications: 0 });
    // Nothing in flight any more: no lease to wait out.
    expect(failed?.actingUntil).toBeUndefined();
    expect(h.messages).toHaveLength(0);

    h.heal();
    h.clock.advance(MINUTE);
    await h.sweep();
    expect(h.messages).toHaveLength(1);
    expect(await h.gate()).toMatchObject({ state: 'ACTED', notifications: 1 });

    h.clock.advance(MINUTE);
    await h.sweep();
    expect(h.messages).toHaveLength(1);
    expect(putResults(h)).toHaveLength(0);
  });

  it("the chain head's early read failing after the sweep's escalation went out: read again, recorded, never sent twice", async () => {
    // The sweep reads the head beside the decision, before acting; a failure surfaced only once the escalation
    // was out left the gate DECIDED with nothing recorded, and the next sweep paged the engineers again.
    const h = await escalationNotPublished();
    h.heal();
    const auditHead = h.store.auditHead.bind(h.store);
    let failures = 1;
    h.store.auditHead = (pipeline) =>
      failures-- > 0
        ? Promise.reject(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }))
        : auditHead(pipeline);
    await escalatedOnceBySweeps(h);
    expect(failures).toBe(-1); // the early read failed, and was read again
  });

  it('after the escalation went out, the chain head moving more often than an append tries before it: still recorded, never sent twice', async () => {
    const h = await escalationNotPublished();
    h.heal();
    const updateGate = h.store.updateGate.bind(h.store);
    let moved = CHAIN_ATTEMPTS + 5;
    h.store.updateGate = (gate, version, record) =>
      record !== undefined && gate.state === 'ACTED' && moved-- > 0
        ? Promise.reject(new ChainHeadMovedError(gate.key.pipeline, record.seq))
        : updateGate(gate, version, record);
    const added = metricsOf(h);
    await escalatedOnceBySweeps(h);
    expect(moved).toBe(-1);
    // Each append re-chained on the moved head counts once.
    expect(valuesOf(added, 'AuditChainRetries')).toEqual(Array(CHAIN_ATTEMPTS + 5).fill(1));
  });

  it('the approval ends while Tollgate sends its result: no CLOSED→CLOSED state change; a second Gate Closed carries the result', async () => {
    const h = await setup();
    h.scanner.coverage = SCANNED;
    h.onApprovalResult = async () => {
      h.onApprovalResult = undefined;
      await h.approvalEnded(h.approvalEndedEvent('SUCCEEDED'));
    };
    await h.approvalStarted();
    for (let i = 0; i < 2; i++) {
      h.clock.advance(MINUTE);
      await h.sweep();
    }
    expect(h.results).toHaveLength(1);
    expect(await h.gate()).toMatchObject({ state: 'CLOSED', approvalResult: { status: 'Approved' } });
    const details = (type: string) =>
      h.events
        .filter((e) => e.DetailType === type)
        .map((e) => JSON.parse(e.Detail!) as Record<string, unknown>);
    expect(details('Tollgate Gate State Change').map((d) => [d.previousState, d.state])).not.toContainEqual([
      'CLOSED',
      'CLOSED',
    ]);
    const closed = details('Tollgate Gate Closed');
    expect(closed.map((d) => (d.approvalResult as { status: string } | null)?.status ?? null)).toEqual([
      null,
      'Approved',
    ]);
    expect(Number(closed[1]!.gateVersion)).toBeGreaterThan(Number(closed[0]!.gateVersion));
  });

  it('GatesClosedUndecided counts approvals that ended while the gate waited, not those ended by its own result', async () => {
    const h = await setup();
    const added = metricsOf(h);
    h.onApprovalResult = async () => {
      h.onApprovalResult = undefined;
      await h.approvalEnded(h.approvalEndedEvent('SUCCEEDED'));
    };
    await h.approvalStarted();
    await h.scanFinished();
    expect(await h.gate()).toMatchObject({ state: 'CLOSED', approvalResult: { status: 'Approved' } });
    expect(added.filter(([name]) => name === 'GatesClosedUndecided')).toEqual([]);

    const waiting = await setup();
    const counted = metricsOf(waiting);
    waiting.scanner.coverage = undefined;
    await waiting.approvalStarted();
    await waiting.approvalEnded(waiting.approvalEndedEvent('ABANDONED'));
    expect(counted.filter(([name]) => name === 'GatesClosedUndecided')).toEqual([
      ['GatesClosedUndecided', 1],
    ]);
  });

  it('the approval answered in the console while Tollgate escalates: one Gate Closed, nothing new to say again', async () => {
    const h = await setup();
    h.scanner.findings = exampleFindings('orders-worker.list-findings.json');
    h.onEscalation = async () => {
      h.onEscalation = undefined;
      h.pipeline.action.status = 'Succeeded';
      await h.approvalEnded(h.approvalEndedEvent('SUCCEEDED'));
    };
    await h.approvalStarted();
    await h.scanFinished();
    expect(h.messages).toHaveLength(1);
    expect(await h.gate()).toMatchObject({ state: 'CLOSED', notifications: 1 });
    const types = h.events.map((e) => e.DetailType);
    expect(types.filter((t) => t === 'Tollgate Gate Closed')).toHaveLength(1);
    const changes = h.events
      .filter((e) => e.DetailType === 'Tollgate Gate State Change')
      .map((e) => JSON.parse(e.Detail!) as { previousState: string | null; state: string });
    expect(changes.filter((c) => c.previousState === c.state)).toEqual([]);
  });

  it('a lease held by an invocation that may still be sending keeps the sweep off it until it has run out (past any function’s timeout)', async () => {
    const h = await escalationNotPublished();
    h.heal();
    // As an invocation claims it to act (or one that Lambda ended mid-send left it): held for leaseMs.
    const decided = (await h.gate())!;
    const held = {
      ...decided,
      actingUntil: new Date(h.clock.now().getTime() + DEFAULT_CONFIG.leaseMs).toISOString(),
    };
    expect(await h.store.updateGate({ ...held, version: decided.version + 1 }, decided.version)).toBe(true);
    // Longer than the longest deciding function's timeout (5 minutes): its holder cannot still be sending.
    expect(DEFAULT_CONFIG.leaseMs).toBeGreaterThan(5 * MINUTE);

    h.clock.advance(5 * MINUTE);
    await h.sweep();
    expect(h.messages).toHaveLength(0);
    expect((await h.gate())?.state).toBe('DECIDED');

    h.clock.advance(DEFAULT_CONFIG.leaseMs - 5 * MINUTE + SECOND);
    await h.sweep();
    expect(h.messages).toHaveLength(1);
    expect(await h.gate()).toMatchObject({ state: 'ACTED', notifications: 1 });
  });
});

describe('the approval token and the execution', () => {
  it('a token of a previous execution (the stage runs a newer one): STALE, never decided', async () => {
    const h = await setup();
    h.scanner.coverage = SCANNED;
    await h.scanFinished(); // the scan is in: a gate that ignored the execution id would decide at once
    // A late STARTED event: our run is over (the execution was stopped), and a newer one holds the stage.
    h.pipeline.stage = { executionId: NEWER_EXECUTION, status: 'InProgress', token: NEWER_TOKEN };
    h.pipeline.action.status = 'Abandoned';
    await h.approvalStarted();

    const gate = await h.gate();
    expect(gate?.state).toBe('STALE');
    expect(gate?.staleReason).toBe('the approval is no longer in progress (Abandoned)');
    expect(await h.decision()).toBeUndefined();
    expect(putResults(h)).toHaveLength(0);
  });

  it('an execution CodePipeline no longer has (the pipeline made again under its name): STALE, never escalated at its deadline', async () => {
    // The API answers ListActionExecutions and GetPipelineExecution of a gone execution with
    // PipelineExecutionNotFoundException, not an empty list: read as a failure, every sweep failed on it until
    // the deadline, which then escalated an approval that no longer existed.
    const notFound = () =>
      new PipelineExecutionNotFoundException({
        message: `Pipeline execution with id '${EXECUTION}' not found in pipeline`,
        $metadata: { httpStatusCode: 400 },
      });
    const ofGate = (input: Record<string, unknown>) =>
      (input.filter as { pipelineExecutionId?: string } | undefined)?.pipelineExecutionId === EXECUTION ||
      input.pipelineExecutionId === EXECUTION;
    const h = await setup();
    h.scanner.coverage = undefined; // no scan yet: the gate waits
    await h.approvalStarted();
    expect((await h.gate())?.state).toBe('WAITING');
    // The pipeline is deleted and made again under its name; its first execution runs the stage.
    h.pipeline.stage = { executionId: NEWER_EXECUTION, status: 'InProgress', token: NEWER_TOKEN };
    h.fail('ListActionExecutions', notFound, { when: ofGate });
    h.fail('GetPipelineExecution', notFound, { when: ofGate });
    for (let i = 0; i < 3; i++) {
      h.clock.advance(10 * MINUTE);
      await h.sweep();
    }
    const gate = await h.gate();
    expect(gate?.state).toBe('STALE');
    expect(gate?.staleReason).toContain(`execution ${EXECUTION} of pipeline`);
    expect(await h.decision()).toBeUndefined();
    expect(publishes(h)).toHaveLength(0);
    expect(putResults(h)).toHaveLength(0);

    // A STARTED event of a gone execution (delivered late) opens its gate STALE, not a dead-lettered event.
    const late = await setup();
    late.pipeline.stage = { executionId: NEWER_EXECUTION, status: 'InProgress', token: NEWER_TOKEN };
    late.fail('ListActionExecutions', notFound, { when: ofGate });
    late.fail('GetPipelineExecution', notFound, { when: ofGate });
    await late.approvalStarted();
    expect(await late.gate()).toMatchObject({ state: 'STALE' });
  });

  it.each([
    ['settled findings (APPROVE)', undefined, 'APPROVE'],
    ['a scan that cannot give a verdict (ESCALATE)', 'UNSUPPORTED_OS', 'ESCALATE'],
  ] as const)(
    'a STALE write that loses a race takes the gate up again as what was deciding it, never as "stale (raced)" or a sweep: %s',
    async (_, status, outcome) => {
      const h = await setup();
      h.scanner.coverage = undefined;
      await h.approvalStarted();
      // A moment's lag: the state shows another execution and our run over, so the gate is to go STALE; the
      // write loses to another one, and by then the state shows the approval waiting again.
      const { stage, action } = h.pipeline;
      const saved = { stage: { ...stage }, status: action.status };
      h.pipeline.stage = { executionId: NEWER_EXECUTION, status: 'InProgress', token: NEWER_TOKEN };
      h.pipeline.action.status = 'Abandoned';
      vi.spyOn(h.store, 'updateGate').mockImplementationOnce(async () => {
        h.pipeline.stage = saved.stage;
        h.pipeline.action.status = saved.status;
        return false;
      });
      h.scanner.coverage = SCANNED;
      await h.scanFinished(status === undefined ? undefined : h.inspectorScanEvent({ status }));
      const decided = await h.decision();
      expect(decided?.record.outcome).toBe(outcome);
      expect(decided?.trigger).toBe('scan-finished');
    },
  );

  it('stopped while it waits, a newer execution in the stage: the token re-read before acting says so: STALE, nothing sent', async () => {
    const h = await setup();
    await h.approvalStarted();
    h.pipeline.stage = { executionId: NEWER_EXECUTION, status: 'InProgress', token: NEWER_TOKEN };
    h.pipeline.action.status = 'Abandoned';
    h.clock.advance(MINUTE);
    await h.scanFinished();

    expect((await h.gate())?.state).toBe('STALE');
    expect(putResults(h)).toHaveLength(0);
  });

  it.each([
    ['a scan event, on a clean image (APPROVE)', 'scan', 'clean'],
    ['a scan event, on a fixable HIGH (ESCALATE)', 'scan', 'high'],
    ["the sweep's timeout", 'timeout', 'clean'],
    ['the sweep acting again on an unsent escalation', 'react', 'high'],
    ['a scan that cannot give a verdict (ESCALATE)', 'unsupported', 'clean'],
  ] as const)(
    'abandoned while it waits, its end event lost: %s records no decision for it and pages no one',
    async (_, how, image) => {
      // A decision for an approval that no longer waited told auditors (decisions by outcome) a release was
      // approved that never was, and an escalation paged engineers for an approval gone.
      const h = how === 'react' ? await escalationNotPublished() : await setup();
      if (how !== 'react') {
        if (image === 'high') h.scanner.findings = exampleFindings('orders-worker.list-findings.json');
        await h.approvalStarted();
        expect((await h.gate())?.state).toBe('WAITING');
      }
      const decisionsBefore = (await h.decisionItems()).length;
      const publishedBefore = publishes(h).length;
      h.pipeline.stage = { executionId: EXECUTION, status: 'Abandoned', token: undefined };
      h.pipeline.action.status = 'Abandoned';
      h.heal();
      if (how === 'scan') {
        h.clock.advance(MINUTE);
        h.scanner.coverage = SCANNED;
        await h.scanFinished();
      } else if (how === 'unsupported') {
        h.clock.advance(MINUTE);
        h.scanner.coverage = { statusCode: 'ACTIVE', reason: 'UNSUPPORTED_OS' };
        await h.sweep();
      } else {
        h.clock.advance(how === 'timeout' ? 31 * MINUTE : 7 * MINUTE);
        await h.sweep();
      }

      expect(await h.gate()).toMatchObject({
        state: 'STALE',
        staleReason: 'the approval is no longer in progress (Abandoned)',
      });
      expect(await h.decisionItems()).toHaveLength(decisionsBefore);
      expect(publishes(h)).toHaveLength(publishedBefore);
      expect(putResults(h)).toHaveLength(0);
    },
  );

  it('a state still showing the execution before ours, while our run is in progress: waits, then decides with our token', async () => {
    // Our execution holds the stage (SUPERSEDED and QUEUED modes lock it while the approval waits), so a
    // state naming the previous execution is behind. Taken for a supersession, the gate went STALE: no
    // decision, no escalation, the approval left to no one.
    const h = await setup();
    h.scanner.coverage = SCANNED;
    h.pipeline.stage = { executionId: NEWER_EXECUTION, status: 'Succeeded', token: undefined };
    await h.approvalStarted();
    expect((await h.gate())?.state).toBe('WAITING');
    h.clock.advance(MINUTE);
    await h.sweep();
    expect((await h.gate())?.state).not.toBe('STALE');
    expect(putResults(h)).toHaveLength(0);

    h.pipeline.stage = { executionId: EXECUTION, status: 'InProgress', token: TOKEN };
    h.clock.advance(MINUTE);
    await h.sweep();
    h.clock.advance(MINUTE);
    await h.sweep();
    expect(putResults(h).map((r) => [r.token, r.result?.status])).toEqual([[TOKEN, 'Approved']]);
  });

  it('the state and the run listing both behind at STARTED: no STALE gate, no "no image" escalation; the retry decides', async () => {
    // Taken as final, the gate opened STALE (terminal: a redelivery found "nothing to do", discovery saw the
    // run claimed) and the approval waited 7 days for no one. And with the run unlisted, its CustomData
    // (the image) was unread: the gate escalated "no image" for a release that named one.
    const h = await setup();
    h.scanner.coverage = SCANNED;
    h.pipeline.stage = { executionId: NEWER_EXECUTION, status: 'Succeeded', token: undefined };
    h.pipeline.action.unlisted = true;
    await expect(h.approvalStarted()).rejects.toThrow(/the approval's run is not listed yet/);
    expect(await h.gate()).toBeUndefined();
    expect(publishes(h)).toHaveLength(0);

    // The event's retry, a moment later: the listing and the state have caught up.
    h.pipeline.action.unlisted = false;
    h.pipeline.stage = { executionId: EXECUTION, status: 'InProgress', token: TOKEN };
    h.clock.advance(MINUTE);
    await h.approvalStarted();
    for (let i = 0; i < 2; i++) {
      h.clock.advance(MINUTE);
      await h.sweep();
    }
    expect(putResults(h).map((r) => [r.token, r.result?.status])).toEqual([[TOKEN, 'Approved']]);
  });

  it("a run not listed yet is waited for even when the execution's variables name an image: its CustomData comes first", async () => {
    // The variables are the fallback for a run whose CustomData names no image. Read while the listing
    // lagged, they opened the gate on another image (a pipeline's IMAGE_URI of a base image, say), for good.
    const other = `${ACCOUNT}.dkr.ecr.${REGION}.amazonaws.com/${REPOSITORY}@sha256:${'e'.repeat(64)}`;
    const h = await setup();
    h.scanner.coverage = SCANNED;
    h.pipeline.variables = { IMAGE_URI: other };
    h.pipeline.action.unlisted = true;
    await expect(h.approvalStarted()).rejects.toThrow(/the approval's run is not listed yet/);
    expect(await h.gate()).toBeUndefined();

    h.pipeline.action.unlisted = false;
    h.clock.advance(MINUTE);
    await h.approvalStarted();
    expect((await h.gate())?.image).toMatchObject({
      digest: DIGEST,
      source: expect.stringMatching(/^CustomData/),
    });
  });

  it('a run listed a moment after the STARTED event is read again in the invocation: opened at once, nothing thrown', async () => {
    // Thrown, the event came back a minute later (Lambda's retry) and the function's errors alarm paged.
    const h = await setup();
    h.scanner.coverage = SCANNED;
    h.pipeline.action.unlistedReads = 2;
    await h.approvalStarted();
    expect(h.pipeline.action.unlistedReads).toBe(0);
    expect((await h.gate())?.image).toMatchObject({
      digest: DIGEST,
      source: expect.stringMatching(/^CustomData/),
    });
    // Three reads at most: not listed by then, the event's retry reads it.
    const again = await setup();
    again.pipeline.action.unlistedReads = 3;
    await expect(again.approvalStarted()).rejects.toThrow(/the approval's run is not listed yet/);
  });

  it('a run still not listed past the listing grace: the execution variables name the image', async () => {
    const h = await setup();
    h.scanner.coverage = SCANNED;
    h.pipeline.variables = {
      IMAGE_URI: `${ACCOUNT}.dkr.ecr.${REGION}.amazonaws.com/${REPOSITORY}@${DIGEST}`,
    };
    h.pipeline.action.unlisted = true;
    // The event delivered (or retried) six minutes after the approval started.
    const started = h.approvalStartedEvent();
    h.clock.advance(6 * MINUTE);
    await h.approvalStarted(started);
    expect((await h.gate())?.image).toMatchObject({
      digest: DIGEST,
      source: expect.stringMatching(/^variable IMAGE_URI/),
    });
  });

  it('a STARTED event of an execution CodePipeline does not have: the gate opens STALE at once, nothing sent, nothing thrown', async () => {
    // With the run unlisted the image is read from the execution's variables, and GetPipelineExecution says
    // there is no such execution: an answer, not a lag (the execution began stages before its approval did).
    // Thrown, the event was retried within the listing grace each time, then dead-lettered, and paged for an
    // execution that does not exist (the reliability suite's hostile events found it).
    const h = await setup();
    h.pipeline.stage = { executionId: NEWER_EXECUTION, status: 'InProgress', token: undefined };
    h.pipeline.action.unlisted = true;
    h.mocks.codepipeline.on(GetPipelineExecutionCommand).rejects(
      new PipelineExecutionNotFoundException({
        message: 'Execution not found',
        $metadata: { httpStatusCode: 400 },
      }),
    );
    const result = await h.approvalStarted();
    expect(JSON.stringify(result)).toContain('"opened":true');
    expect(await h.gate()).toMatchObject({
      state: 'STALE',
      staleReason: expect.stringContaining(`execution ${EXECUTION} of pipeline ${PIPELINE} was not found`),
    });
    expect(publishes(h)).toHaveLength(0);
    expect(putResults(h)).toHaveLength(0);
  });

  it('a run never listed while another execution holds the stage: past the listing grace the gate is STALE, nothing sent', async () => {
    // The wait for a lagging listing is for an approval that just started. Without a limit, an approval that
    // is really gone (a pipeline deleted and made again under its name) was decided, and its action retried
    // every sweep for ever, or an escalation sent for it.
    const h = await setup();
    h.scanner.findings = exampleFindings('orders-worker.list-findings.json');
    await h.approvalStarted();
    expect((await h.gate())?.state).toBe('WAITING');
    h.pipeline.stage = { executionId: NEWER_EXECUTION, status: 'InProgress', token: undefined };
    h.pipeline.action.unlisted = true;
    // The scan is pending: each sweep looks at the approval while the gate waits.
    for (let i = 0; i < 4; i++) {
      h.clock.advance(MINUTE);
      await h.sweep();
    }
    expect((await h.gate())?.state).toBe('WAITING'); // within the 5-minute grace a listing may lag by
    for (let i = 0; i < 2; i++) {
      h.clock.advance(MINUTE);
      await h.sweep();
    }
    expect((await h.gate())?.state).toBe('STALE');
    expect(publishes(h)).toHaveLength(0);
    expect(putResults(h)).toHaveLength(0);
  });

  it.each([
    ['in the stage state', 'state'],
    ['in PARALLEL mode (the action execution)', 'parallel'],
  ] as const)(
    'a token showing only after the start (%s) is learned by the sweep: a person answering before the gate decides is recorded',
    async (_, where) => {
      // CloudTrail's record of PutApprovalResult names the token, not the gate. Without the hash, a person
      // approving in the console while the scan was pending went unrecorded: "closed undecided, no reviewer".
      const h = await setup();
      const token = where === 'state' ? TOKEN : '0a1b2c3d-573f-4ea7-a67e-0123456789ab';
      h.pipeline.stage =
        where === 'state'
          ? { ...h.pipeline.stage, token: undefined }
          : { executionId: undefined, status: 'InProgress', token: undefined };
      await h.approvalStarted();
      expect((await h.gate())?.tokenHash).toBeUndefined();

      if (where === 'state') h.pipeline.stage.token = token;
      else h.pipeline.action.externalExecutionId = token;
      h.clock.advance(MINUTE);
      await h.sweep();
      expect(await h.gate()).toMatchObject({ state: 'WAITING', tokenHash: hashToken(token) });

      // The scan is still pending; a security engineer approves in the console.
      h.clock.advance(MINUTE);
      h.pipeline.action.status = 'Succeeded';
      h.pipeline.stage.status = 'Succeeded';
      await h.approvalEnded(h.cloudTrailEvent({ token }));
      await h.approvalEnded(h.approvalEndedEvent('SUCCEEDED'));
      expect(await h.gate()).toMatchObject({
        state: 'CLOSED',
        reviewer: {
          identity: 'arn:aws:sts::123456789012:assumed-role/SecurityEngineer/alice',
          tollgate: false,
        },
      });
      expect(putResults(h)).toHaveLength(0);
    },
  );

  it.each([
    ['the sweep learning the token hash', 'waiting', 'Approved'],
    ['the approval ending', 'ended', undefined],
    ["a person answering (CloudTrail's record, the end event not here yet)", 'answered', undefined],
  ] as const)(
    'a scan event whose decision loses its gate to %s meanwhile: decides again only when nothing but the token was learnt',
    async (_, meanwhile, sent) => {
      // The sweep's write of a learned token hash moves the gate's version. A decision conditioned on the
      // version read before it used to give up as "decided elsewhere", and the release waited a sweep more.
      const h = await setup();
      await h.approvalStarted();
      h.clock.advance(MINUTE);
      h.scanner.coverage = SCANNED;
      const decide = h.store.decide.bind(h.store);
      let raced = 0;
      const spy = vi.spyOn(h.store, 'decide').mockImplementation(async (decision, next, expected, audit) => {
        if (raced++ === 0) {
          const current = (await h.store.getGate(KEY))!;
          const moved =
            meanwhile === 'waiting'
              ? { ...current, version: current.version + 1, tokenHash: hashToken(TOKEN) }
              : meanwhile === 'answered'
                ? {
                    ...current,
                    version: current.version + 1,
                    reviewer: {
                      identity: `arn:aws:sts::${ACCOUNT}:assumed-role/SecurityEngineer/alice`,
                      type: 'AssumedRole',
                      status: 'Rejected',
                      summary: undefined,
                      at: h.clock.now().toISOString(),
                      tollgate: false,
                    },
                  }
                : { ...current, version: current.version + 1, state: 'CLOSED' as const };
          expect(await h.store.updateGate(moved, current.version)).toBe(true);
        }
        return decide(decision, next, expected, audit);
      });
      await h.scanFinished();
      spy.mockRestore();

      expect(raced).toBe(meanwhile === 'waiting' ? 2 : 1);
      expect(putResults(h).map((r) => r.result?.status)).toEqual(sent ? [sent] : []);
      expect(await h.gate()).toMatchObject(
        meanwhile === 'waiting'
          ? { state: 'ACTED', outcome: 'APPROVE', tokenHash: hashToken(TOKEN) }
          : { state: meanwhile === 'answered' ? 'WAITING' : 'CLOSED' },
      );
      expect(await h.decisionItems()).toHaveLength(meanwhile === 'waiting' ? 1 : 0);
    },
  );

  // The token shows only after the start: in the stage's state (SUPERSEDED/QUEUED), or as the action
  // execution's externalExecutionId (PARALLEL). Read when escalating, so CloudTrail's record finds the gate.
  it.each([
    ['no token yet when the approval starts', 'state'],
    ['PARALLEL mode, the token showing only after the start', 'parallel'],
  ] as const)('%s: an escalation still finds the gate by the token CloudTrail names', async (_, where) => {
    const h = await setup();
    const token = where === 'state' ? TOKEN : '0a1b2c3d-573f-4ea7-a67e-0123456789ab';
    h.scanner.findings = exampleFindings('orders-worker.list-findings.json');
    h.pipeline.stage =
      where === 'state'
        ? { ...h.pipeline.stage, token: undefined }
        : { executionId: undefined, status: 'InProgress', token: undefined };
    await h.approvalStarted(); // neither the state nor the action executions show a token yet
    expect((await h.gate())?.tokenHash).toBeUndefined();

    if (where === 'state') h.pipeline.stage.token = token;
    else h.pipeline.action.externalExecutionId = token;
    h.clock.advance(MINUTE);
    await h.scanFinished();
    expect(await h.gate()).toMatchObject({
      state: 'ACTED',
      outcome: 'ESCALATE',
      tokenHash: hashToken(token),
    });

    h.pipeline.action.status = 'Succeeded';
    await h.approvalEnded(h.cloudTrailEvent({ token }));
    expect((await h.gate())?.reviewer).toMatchObject({
      identity: expect.stringContaining('SecurityEngineer/alice'),
    });
  });

  it('an escalation decided before the token shows waits for it (a sweep at most): whoever answers is recorded', async () => {
    // Decided at the start (no image to judge), the escalation went out with no token read: the gate was
    // ACTED without its hash, never looked at again, and the person who answered was not recorded.
    const h = await setup();
    h.pipeline.action.customData = undefined;
    h.pipeline.variables = {};
    h.pipeline.stage = { ...h.pipeline.stage, token: undefined };
    // Held, not failed: no error for Lambda to retry (and the errors alarm to page on), the lease given back.
    expect(await h.approvalStarted()).toMatchObject({
      result: { state: 'DECIDED', note: expect.stringMatching(/^escalation held for the approval token/) },
    });
    expect(await h.gate()).toMatchObject({ state: 'DECIDED', outcome: 'ESCALATE' });
    expect((await h.gate())?.actingUntil).toBeUndefined();
    expect(publishes(h)).toHaveLength(0);

    h.pipeline.stage.token = TOKEN;
    h.clock.advance(MINUTE);
    await h.sweep();
    expect(await h.gate()).toMatchObject({ state: 'ACTED', tokenHash: hashToken(TOKEN) });
    expect(publishes(h)).toHaveLength(1);
    await h.approvalEnded(h.cloudTrailEvent({ token: TOKEN }));
    expect((await h.gate())?.reviewer).toMatchObject({ identity: expect.stringContaining('alice') });
  });

  it('past the listing grace, an escalation with no token to read goes out without it', async () => {
    const h = await setup();
    h.pipeline.stage = { ...h.pipeline.stage, token: undefined };
    await h.approvalStarted();
    h.clock.advance(31 * MINUTE); // the scan never finished: the timeout escalates
    await h.sweep();
    expect(await h.gate()).toMatchObject({ state: 'ACTED', outcome: 'ESCALATE' });
    expect((await h.gate())?.tokenHash).toBeUndefined();
    expect(publishes(h)).toHaveLength(1);
  });

  it.each([
    ['answered by a person', 'answered'],
    ['superseded', 'superseded'],
  ] as const)(
    'a gate waiting on findings that never settle, its token showing late, %s meanwhile: recorded, or STALE',
    async (_, meanwhile) => {
      // The scan counts a CRITICAL no read lists: the gate waits the whole wait. Each sweep read the state on
      // this path and threw it away, so the token was never learnt (the reviewer unrecorded) and a
      // superseded execution was not seen.
      const h = await setup();
      h.pipeline.stage = { ...h.pipeline.stage, token: undefined };
      await h.approvalStarted();
      h.scanner.coverage = SCANNED;
      h.pipeline.stage.token = TOKEN;
      h.clock.advance(MINUTE);
      await h.scanFinished(h.inspectorScanEvent({ counts: { CRITICAL: 1 } }));
      expect(await h.gate()).toMatchObject({ state: 'WAITING', tokenHash: hashToken(TOKEN) });

      if (meanwhile === 'answered') {
        h.clock.advance(MINUTE);
        await h.approvalEnded(h.cloudTrailEvent({ token: TOKEN }));
        expect((await h.gate())?.reviewer).toMatchObject({ identity: expect.stringContaining('alice') });
      } else {
        h.pipeline.stage = { executionId: NEWER_EXECUTION, status: 'InProgress', token: NEWER_TOKEN };
        h.pipeline.action.status = 'Abandoned';
        h.clock.advance(MINUTE);
        await h.sweep();
        expect(await h.gate()).toMatchObject({ state: 'STALE' });
      }
      expect(await h.decisionItems()).toHaveLength(0);
    },
  );

  it('a gate waiting on findings that never settle, its runs unreadable: the read is still recorded, nothing thrown', async () => {
    // The token look on this path is best effort: the action runs failing to list (asked because the state
    // names another execution) must not fail the scan event, which used to record the read and return.
    const h = await setup();
    await h.approvalStarted();
    h.scanner.coverage = SCANNED;
    h.pipeline.stage = { executionId: NEWER_EXECUTION, status: 'InProgress', token: NEWER_TOKEN };
    h.fail('ListActionExecutions', pipelineThrottled);
    h.clock.advance(MINUTE);
    await h.scanFinished(h.inspectorScanEvent({ counts: { CRITICAL: 1 } }));
    expect(await h.gate()).toMatchObject({ state: 'WAITING', lastRead: { total: 1 } });
  });

  it('a PutApprovalResult of no gate Tollgate knows is logged as a warning, not dropped without a word', async () => {
    const h = await setup();
    logLines.length = 0;
    await h.approvalEnded(h.cloudTrailEvent({ token: 'f0000000-0000-4000-8000-000000000000' }));
    const warned = logLines
      .map((l) => JSON.parse(l) as { level: string; message: string; identity?: string })
      .filter((l) => l.level === 'WARN' && /reviewer is not recorded/.test(l.message));
    expect(warned).toEqual([
      expect.objectContaining({ identity: expect.stringContaining('SecurityEngineer/alice') }),
    ]);
  });

  it('PARALLEL mode: no token in GetPipelineState; the action execution externalExecutionId is the token', async () => {
    const h = await setup();
    const parallelToken = '0a1b2c3d-573f-4ea7-a67e-0123456789ab';
    h.pipeline.stage = { executionId: undefined, status: 'InProgress', token: undefined };
    h.pipeline.action.externalExecutionId = parallelToken;
    await h.approvalStarted();
    const added = metricsOf(h);
    h.clock.advance(MINUTE);
    await h.scanFinished();

    // From the approval's start to the decision, a minute later.
    expect(valuesOf(added, 'TimeToDecision')).toEqual([MINUTE]);
    expect(putResults(h).map((r) => r.token)).toEqual([parallelToken]);
    expect(await h.gate()).toMatchObject({
      state: 'ACTED',
      approvalResult: { status: 'Approved' },
      tokenHash: hashToken(parallelToken),
    });
  });

  it.each([
    ['an externalExecutionId that is no approval token', 'sha256:abc'],
    ['an upper-case one (the API model takes lower case only)', '0A1B2C3D-573F-4EA7-A67E-0123456789AB'],
  ])(
    'PARALLEL mode, %s: never sent nor hashed as the token; the result waits, and its failure is counted',
    async (_, odd) => {
      const h = await setup();
      h.pipeline.stage = { executionId: undefined, status: 'InProgress', token: undefined };
      h.pipeline.action.externalExecutionId = odd;
      logLines.length = 0;
      await h.approvalStarted();
      const added = metricsOf(h);
      h.clock.advance(MINUTE);
      // The result cannot be sent: the delivery fails, to be retried (and the sweep tries again, alarmed).
      await expect(h.scanFinished()).rejects.toThrow(/gate\(s\) failed/);
      expect(valuesOf(added, 'ActFailures')).toEqual([1]);
      h.clock.advance(10 * MINUTE);
      // The sweep does not throw for one gate's failure (the next sweep is a minute away): it counts it.
      await expect(h.sweep()).resolves.toBeDefined();
      expect(valuesOf(added, 'ActFailures')).toEqual([1, 1]);

      expect(putResults(h)).toHaveLength(0);
      const gate = await h.gate();
      expect(gate).toMatchObject({ state: 'DECIDED', outcome: 'APPROVE' });
      expect(gate?.tokenHash).toBeUndefined();
      expect(logLines.some((l) => l.includes('is not an approval token'))).toBe(true);
    },
  );
});

describe('identifying the image', () => {
  it('no image in CustomData and no IMAGE_URI or IMAGE_DIGEST variable: escalates, naming the problem', async () => {
    const h = await setup();
    h.pipeline.action.customData = undefined; // variables: the sample's ImageDigest and RepositoryName only
    await h.approvalStarted();

    expect(h.mocks.codepipeline.commandCalls(GetPipelineExecutionCommand)).toHaveLength(1);
    const record = (await h.decision())!.record;
    expect(record.outcome).toBe('ESCALATE');
    expect(record.violations).toHaveLength(1);
    expect(record.violations[0]!.rule).toBe('error');
    expect(record.violations[0]!.description).toMatch(/no CustomData/);
    expect(record.violations[0]!.description).toMatch(/IMAGE_URI/);
    expect(publishes(h)).toHaveLength(1);
    expect(messageText(publishes(h)[0]!.Message)).toMatch(/IMAGE_URI/);
    expect(findingsReads(h)).toHaveLength(0);
    expect(putResults(h)).toHaveLength(0);
  });

  it('a tag in CustomData is resolved once with DescribeImages; the digest is judged even after the tag moves', async () => {
    const h = await setup();
    h.pipeline.action.customData = `${ACCOUNT}.dkr.ecr.${REGION}.amazonaws.com/${REPOSITORY}:ubuntu_latest`;
    h.pipeline.tags.set(`${REPOSITORY}:ubuntu_latest`, DIGEST);
    await h.approvalStarted();
    await h.approvalStarted(); // a duplicate delivery resolves nothing again
    expect(await h.gate()).toMatchObject({
      image: { digest: DIGEST, repository: REPOSITORY, tags: ['ubuntu_latest'] },
    });

    h.pipeline.tags.set(`${REPOSITORY}:ubuntu_latest`, OTHER_DIGEST); // someone pushes the tag elsewhere
    h.clock.advance(MINUTE);
    await h.scanFinished();

    const lookups = h.mocks.ecr.commandCalls(DescribeImagesCommand);
    expect(lookups).toHaveLength(1);
    expect(lookups[0]!.args[0].input).toMatchObject({
      repositoryName: REPOSITORY,
      imageIds: [{ imageTag: 'ubuntu_latest' }],
      registryId: ACCOUNT,
    });
    expect(findingsReads(h).every((i) => i.filterCriteria?.ecrImageHash?.[0]?.value === DIGEST)).toBe(true);
    expect((await h.decision())!.record.subject.digest).toBe(DIGEST);
    expect(putResults(h)).toHaveLength(1);
  });

  it.each([
    ['a PARALLEL-mode execution', { executionMode: 'PARALLEL', executionType: 'STANDARD' }, 'PARALLEL-mode'],
    ['a stage rollback', { executionMode: 'SUPERSEDED', executionType: 'ROLLBACK' }, 'rollback'],
  ] as const)(
    'a tag in %s names whichever build pushed it last: escalated, never resolved and judged',
    async (_, execution, words) => {
      const h = await setup();
      h.pipeline.action.customData = `${ACCOUNT}.dkr.ecr.${REGION}.amazonaws.com/${REPOSITORY}:ubuntu_latest`;
      // Another execution's build pushed the tag before this approval started.
      h.pipeline.tags.set(`${REPOSITORY}:ubuntu_latest`, DIGEST);
      h.mocks.codepipeline.on(GetPipelineExecutionCommand).resolves({
        pipelineExecution: {
          pipelineName: KEY.pipeline,
          pipelineExecutionId: EXECUTION,
          status: 'InProgress',
          variables: [],
          ...execution,
        },
      });
      await h.approvalStarted();
      const gate = await h.gate();
      expect(gate?.image).toBeUndefined();
      expect(gate?.imageProblem).toContain(words);
      expect(gate?.imageProblem).toContain('name the image by digest');
      expect(h.mocks.ecr.commandCalls(DescribeImagesCommand)).toHaveLength(0);
      expect(putResults(h).map((r) => r.result?.status)).not.toContain('Approved');
    },
  );

  it('a tag now pointing at an image pushed after the approval started (the event came late): escalated, not judged', async () => {
    // The spec resolves a tag when the approval starts. A gate opened later (the event retried, or found by
    // the sweep) resolves it later, and a tag moved meanwhile names another build: judged, it approved that.
    const h = await setup();
    h.pipeline.action.customData = `${ACCOUNT}.dkr.ecr.${REGION}.amazonaws.com/${REPOSITORY}:ubuntu_latest`;
    const started = h.approvalStartedEvent(); // the approval starts at START
    h.clock.advance(10 * MINUTE);
    h.pipeline.tags.set(`${REPOSITORY}:ubuntu_latest`, OTHER_DIGEST);
    h.pipeline.pushedAt = new Date(Date.parse(START) + 3 * MINUTE); // the next build pushed the tag
    h.scanner.coverage = SCANNED;
    await h.approvalStarted(started); // its event, retried, comes now

    const gate = await h.gate();
    expect(gate).toMatchObject({ state: 'ACTED', outcome: 'ESCALATE' });
    expect(gate?.image).toBeUndefined();
    const record = (await h.decision())!.record;
    expect(record.violations[0]!.description).toMatch(
      /ubuntu_latest now points at .*, pushed at 2026-11-25T09:03:00.000Z, after this approval started \(2026-11-25T09:00:00.000Z\)/,
    );
    expect(findingsReads(h)).toHaveLength(0);
    expect(putResults(h)).toHaveLength(0);

    // Pushed before the start, or within the start's second (the event's time has no milliseconds), the
    // same late event judges the image.
    const before = await setup();
    before.pipeline.action.customData = h.pipeline.action.customData;
    const event = before.approvalStartedEvent();
    before.clock.advance(10 * MINUTE);
    before.pipeline.tags.set(`${REPOSITORY}:ubuntu_latest`, DIGEST);
    before.pipeline.pushedAt = new Date(Date.parse(START) + 999);
    before.scanner.coverage = SCANNED;
    await before.approvalStarted(event);
    expect(await before.gate()).toMatchObject({ image: { digest: DIGEST } });
  });
});

describe('a retried stage', () => {
  it('runs its approval again: a new gate (attempt 2) decides it; the first attempt keeps its own decision and end', async () => {
    const h = await setup();
    h.scanner.findings = exampleFindings('payments-api.list-findings.json');
    await h.approvalStarted();
    h.clock.advance(MINUTE);
    await h.scanFinished();
    h.clock.advance(SECOND);
    await h.approvalEnded(h.approvalEndedEvent('FAILED'));
    expect(await h.gate()).toMatchObject({
      state: 'CLOSED',
      outcome: 'REJECT',
      closure: { state: 'FAILED' },
    });

    // Someone retries the stage: the same execution id, the next attempt, a new action execution and a new
    // token. The image has not changed, so neither does the verdict; but it is given, not left pending.
    const RETRY_RUN = '5a0e8f1c-0000-4000-8000-00000000abcd';
    retryStage(h, RETRY_RUN, 'Failed');
    h.pipeline.action.status = 'InProgress';
    h.clock.advance(10 * MINUTE);
    const retry = h.approvalStartedEvent();
    retry.detail['pipeline-execution-attempt'] = 2.0;
    retry.detail['action-execution-id'] = RETRY_RUN;
    await h.approvalStarted(retry);
    await h.approvalStarted(retry); // a duplicate of the retry's event changes nothing

    const second = { ...KEY, attempt: 2 };
    expect(await h.gate(second)).toMatchObject({
      state: 'ACTED',
      outcome: 'REJECT',
      tokenHash: hashToken(NEWER_TOKEN),
      actionExecutionId: RETRY_RUN,
    });
    expect(putResults(h).map((r) => [r.token, r.result?.status])).toEqual([
      [TOKEN, 'Rejected'],
      [NEWER_TOKEN, 'Rejected'],
    ]);
    expect(await h.gate()).toMatchObject({ state: 'CLOSED', outcome: 'REJECT' });
    expect((await h.decision())!.record.outcome).toBe('REJECT');
    expect((await h.decision(second))!.record.outcome).toBe('REJECT');
    expect(await h.decisionItems()).toHaveLength(2);

    // The retry's end closes the retry's gate, not the first one.
    const ended = h.approvalEndedEvent('FAILED');
    ended.detail['pipeline-execution-attempt'] = 2.0;
    ended.detail['action-execution-id'] = RETRY_RUN; // the retry's own run, as CodePipeline sends it
    await h.approvalEnded(ended);
    expect(await h.gate(second)).toMatchObject({ state: 'CLOSED', closure: { state: 'FAILED' } });
    expect((await h.gate())!.closure?.at).not.toBe((await h.gate(second))!.closure?.at);
  });
  it("a retry whose own run is not listed yet is never judged on the earlier run's CustomData (its build may have made another image)", async () => {
    const h = await setup();
    await h.approvalStarted();
    await h.scanFinished();
    expect(await h.gate()).toMatchObject({ state: 'ACTED', outcome: 'APPROVE' });

    // The deploy after the approval fails; the stage (build, approval, deploy) is retried with all its
    // actions: the build pushes another image, and the retry's run of the approval names it.
    const RETRY_RUN = '8d3b1c4f-0000-4000-8000-00000000f00d';
    const earlier = h.pipeline.action.customData!;
    retryStage(h, RETRY_RUN, 'Succeeded');
    h.pipeline.action.earlierRuns = [
      { actionExecutionId: ACTION_EXECUTION, status: 'Succeeded', customData: earlier },
    ];
    h.pipeline.action.customData = `${ACCOUNT}.dkr.ecr.${REGION}.amazonaws.com/${REPOSITORY}@${OTHER_DIGEST}`;
    h.pipeline.action.status = 'InProgress';
    h.pipeline.action.latestUnlisted = true; // the listing shows the first run only, for a moment
    h.clock.advance(10 * MINUTE);
    const retry = h.approvalStartedEvent();
    retry.detail['pipeline-execution-attempt'] = 2.0;
    retry.detail['action-execution-id'] = RETRY_RUN;
    await expect(h.approvalStarted(retry)).rejects.toThrow(/not listed yet/);
    const second = { ...KEY, attempt: 2 };
    expect(await h.gate(second)).toBeUndefined();

    h.pipeline.action.latestUnlisted = false;
    await h.approvalStarted(retry);
    expect((await h.gate(second))?.image?.digest).toBe(OTHER_DIGEST);
    expect(putResults(h).filter((r) => r.token === NEWER_TOKEN)).toEqual([]);
  });

  it("an open first attempt never answers the retry's approval: it goes STALE, and the retry's own gate decides it", async () => {
    const h = await setup();
    h.scanner.findings = exampleFindings('payments-api.list-findings.json');
    h.scanner.coverage = undefined; // no scan yet: the first attempt waits
    await h.approvalStarted();
    expect((await h.gate())?.state).toBe('WAITING');

    // A person rejects the first attempt in the console; its end event is lost. The stage is retried.
    const RETRY_RUN = '6b1f9a2d-0000-4000-8000-00000000beef';
    retryStage(h, RETRY_RUN, 'Failed');
    h.clock.advance(MINUTE);
    const retry = h.approvalStartedEvent();
    retry.detail['pipeline-execution-attempt'] = 2.0;
    retry.detail['action-execution-id'] = RETRY_RUN;
    await h.approvalStarted(retry);

    h.scanner.coverage = SCANNED;
    h.clock.advance(MINUTE);
    await h.scanFinished();

    expect(putResults(h).map((r) => r.token)).toEqual([NEWER_TOKEN]);
    expect(await h.gate()).toMatchObject({ state: 'STALE' });
    expect((await h.gate())?.tokenHash).not.toBe(hashToken(NEWER_TOKEN));
    expect(await h.gate({ ...KEY, attempt: 2 })).toMatchObject({
      state: 'ACTED',
      outcome: 'REJECT',
      tokenHash: hashToken(NEWER_TOKEN),
    });
  });
  it('a waiting first attempt whose end event was lost, the stage retried: the next sweep sees it is over (STALE), not its deadline', async () => {
    const h = await setup();
    h.scanner.coverage = undefined; // no scan yet: the first attempt waits
    await h.approvalStarted();
    expect((await h.gate())?.state).toBe('WAITING');

    const RETRY_RUN = '7c2a0b3e-0000-4000-8000-00000000cafe';
    retryStage(h, RETRY_RUN, 'Abandoned');
    h.clock.advance(MINUTE);
    await h.sweep();
    // Counted as waiting (and overdue, at its deadline) for an approval that is gone, it paged no one usefully.
    expect(await h.gate()).toMatchObject({
      state: 'STALE',
      staleReason: 'the approval is no longer in progress (Abandoned)',
    });
    expect(putResults(h)).toHaveLength(0);
    expect(publishes(h)).toHaveLength(0);
  });
});

describe('identifying the image: what a tag or a URI cannot be trusted with', () => {
  it('JSON CustomData with a tag URI and the digest beside it: the digest is judged, the tag is not looked up', async () => {
    const h = await setup();
    const uri = `${ACCOUNT}.dkr.ecr.${REGION}.amazonaws.com/${REPOSITORY}:ubuntu_latest`;
    h.pipeline.action.customData = JSON.stringify({ imageUri: uri, imageDigest: DIGEST });
    h.pipeline.tags.set(`${REPOSITORY}:ubuntu_latest`, OTHER_DIGEST); // the tag moved after the build
    await h.approvalStarted();
    h.clock.advance(MINUTE);
    await h.scanFinished();

    // Only the digest is looked up (an image ECR has, not an index), never the tag.
    expect(h.mocks.ecr.commandCalls(DescribeImagesCommand).map((c) => c.args[0].input.imageIds)).toEqual([
      [{ imageDigest: DIGEST }],
    ]);
    expect(await h.gate()).toMatchObject({
      image: { digest: DIGEST, repository: REPOSITORY, tags: ['ubuntu_latest'] },
    });
    expect(findingsReads(h).length).toBeGreaterThan(0);
    expect(findingsReads(h).every((i) => i.filterCriteria?.ecrImageHash?.[0]?.value === DIGEST)).toBe(true);
    expect((await h.decision())!.record.subject.digest).toBe(DIGEST);
  });

  it.each([
    [
      'an image index (what buildx --push writes, and the digest its metadata reports)',
      'application/vnd.oci.image.index.v1+json',
      /names an image index \(application\/vnd\.oci\.image\.index\.v1\+json\).*name a platform image's digest/,
    ],
    ['a digest ECR does not have in the repository', null, /^ECR has no image inspector2@sha256:/],
  ] as const)(
    'a digest in CustomData naming %s: escalated at once, saying why, not left to wait for a scan',
    async (_, mediaType, why) => {
      const h = await setup();
      h.scanner.coverage = undefined; // never scanned: an index never is
      h.pipeline.action.customData = `${ACCOUNT}.dkr.ecr.${REGION}.amazonaws.com/${REPOSITORY}@${DIGEST}`;
      h.pipeline.digests.set(`${REPOSITORY}@${DIGEST}`, mediaType);
      await h.approvalStarted();
      const gate = await h.gate();
      expect(gate?.image).toBeUndefined();
      expect(gate?.imageProblem).toMatch(why);
      expect(h.mocks.ecr.commandCalls(DescribeImagesCommand).map((c) => c.args[0].input)).toEqual([
        { repositoryName: REPOSITORY, imageIds: [{ imageDigest: DIGEST }], registryId: ACCOUNT },
      ]);
      // Decided now, with the problem: an escalation, not a wait of scan.waitMinutes.
      expect(gate?.outcome).toBe('ESCALATE');
      expect(publishes(h)).toHaveLength(1);
      expect(putResults(h)).toHaveLength(0);
    },
  );

  it('ECR failing on the digest check: the gate opens and judges the digest unchecked, counted; the event is not lost', async () => {
    const h = await setup();
    h.pipeline.action.customData = `${ACCOUNT}.dkr.ecr.${REGION}.amazonaws.com/${REPOSITORY}@${DIGEST}`;
    h.mocks.ecr.on(DescribeImagesCommand).rejects(
      new ECRServiceException({
        name: 'ServerException',
        $fault: 'server',
        $metadata: { httpStatusCode: 500 },
        message: 'internal error',
      }),
    );
    const added = metricsOf(h);
    await h.approvalStarted();
    expect(valuesOf(added, 'DigestChecksFailed')).toEqual([1]);
    expect(await h.gate()).toMatchObject({ state: 'WAITING', image: { digest: DIGEST } });
    expect(logLines.join('\n')).toContain('ECR did not answer for the digest: judged unchecked');
    // Judged as before the check: the scan decides it.
    h.clock.advance(MINUTE);
    await h.scanFinished();
    expect(await h.gate()).toMatchObject({ state: 'ACTED', outcome: 'APPROVE' });
  });

  it('a repository ECR does not have: the gate escalates with the reason at once (no dead letter, no wait)', async () => {
    const h = await setup();
    h.pipeline.action.customData = 'library/nginx:1.25';
    h.mocks.ecr.on(DescribeImagesCommand).rejects(
      new ECRServiceException({
        name: 'RepositoryNotFoundException',
        $fault: 'client',
        $metadata: { httpStatusCode: 400 },
        message: "The repository with name 'library/nginx' does not exist",
      }),
    );
    await h.approvalStarted();

    const record = (await h.decision())!.record;
    expect(record.outcome).toBe('ESCALATE');
    expect(record.violations.map((v) => v.rule)).toEqual(['error']);
    expect(record.violations[0]!.description).toMatch(/no repository library\/nginx/);
    expect(publishes(h)).toHaveLength(1);
    expect(putResults(h)).toHaveLength(0);

    // Another registry's image is said to be one, not looked up in ECR under its host's name.
    const other = await setup();
    other.pipeline.action.customData = 'docker.io/library/nginx:1.25';
    await other.approvalStarted();
    const elsewhere = (await other.decision())!.record;
    expect(elsewhere.outcome).toBe('ESCALATE');
    expect(elsewhere.violations[0]!.description).toMatch(/outside this account's ECR registry/);
    expect(other.mocks.ecr.commandCalls(DescribeImagesCommand)).toHaveLength(0);
  });

  it('an image URI of another region or account: escalates, naming it, without asking ECR', async () => {
    for (const customData of [
      `${ACCOUNT}.dkr.ecr.ap-south-1.amazonaws.com/${REPOSITORY}@${DIGEST}`,
      `210987654321.dkr.ecr.${REGION}.amazonaws.com/${REPOSITORY}:v1`,
    ]) {
      const h = await setup();
      h.pipeline.action.customData = customData;
      await h.approvalStarted();
      const record = (await h.decision())!.record;
      expect(record.outcome).toBe('ESCALATE');
      expect(record.violations[0]!.description).toMatch(/in region ap-south-1|account 210987654321/);
      expect(h.mocks.ecr.commandCalls(DescribeImagesCommand)).toHaveLength(0);
      expect(findingsReads(h)).toHaveLength(0);
    }
  });
});

describe('the invocation deadline', () => {
  it('is Lambda’s: the handler answers when its work ends, never before it with the work still running', async () => {
    // Answered early (middy's default, 5 ms before the deadline), the work would go on in a frozen sandbox
    // and could send a result or an escalation in a later invocation, after its lease passed to the sweep.
    const h = await setup();
    h.scanner.findings = cleanFindings();
    h.remainingMs = 100;
    const started = h.runtime.gate.approvalStarted.bind(h.runtime.gate);
    let finished = false;
    vi.spyOn(h.runtime.gate, 'approvalStarted').mockImplementation(async (e) => {
      await new Promise((resolve) => setTimeout(resolve, 300));
      const report = await started(e);
      finished = true;
      return report;
    });
    const result = await h.approvalStarted();
    expect(finished).toBe(true);
    expect(result.result).toMatchObject({ gate: expect.any(String) });
  });
});

describe('a decision too large for one table item', () => {
  it('is stored with its vulnerability lists cut, saying how many were left out, and acted on', async () => {
    // 3,000 CRITICAL findings under 12 rules: 36,000 ids, over 600 KB of decision, where DynamoDB takes
    // 400 KB an item. Refused, it would be refused on every delivery and sweep: the gate never decided.
    const dir = await mkdtemp(join(tmpdir(), 'tollgate-policy-'));
    try {
      const rules = Array.from(
        { length: 12 },
        (_, i) => `  - { id: critical-${i + 1}, action: reject, when: { severity: [CRITICAL] } }`,
      );
      const file = join(dir, 'policy.yaml');
      await writeFile(file, `version: 1\nname: many-rules\nrules:\n${rules.join('\n')}\n`);
      const h = await setup({ policy: loadPolicySource(file) });
      const template = exampleFindings('payments-api.list-findings.json').find(
        (f) => f.severity === 'CRITICAL' && f.status === 'ACTIVE',
      )!;
      h.scanner.findings = Array.from({ length: 3000 }, (_, i) => ({
        ...structuredClone(template),
        findingArn: `${template.findingArn}-${i}`,
        packageVulnerabilityDetails: {
          ...template.packageVulnerabilityDetails!,
          vulnerabilityId: `CVE-2026-${String(10_000 + i)}`,
        },
      }));
      h.scanner.pageSize = 100;
      await h.approvalStarted();
      h.clock.advance(55 * SECOND);
      await h.scanFinished();

      expect(putResults(h).map((p) => p.result?.status)).toEqual(['Rejected']);
      expect(await h.gate()).toMatchObject({ state: 'ACTED', outcome: 'REJECT' });
      const [item] = await h.decisionItems();
      expect(Buffer.byteLength(JSON.stringify(item), 'utf8')).toBeLessThan(400_000);
      const { violations, counts } = (await h.decision())!.record;
      expect(counts.CRITICAL).toBe(3000);
      expect(violations).toHaveLength(12);
      for (const v of violations) {
        expect(v.count).toBe(3000);
        expect(v.findings.length).toBeGreaterThan(100);
        expect(v.findings.length + v.findingsOmitted!).toBe(3000);
        // The first ids of the sorted list are the ones kept.
        expect(v.findings[0]).toBe('CVE-2026-10000');
      }
      // The decision event counts every id it does not list, the ones the store left out too.
      const event = h.events.find((e) => e.DetailType === 'Tollgate Decision')!;
      const detail = JSON.parse(event.Detail!) as { violations: { moreVulnerabilityIds: number }[] };
      expect(detail.violations.map((v) => v.moreVulnerabilityIds)).toEqual(Array(12).fill(3000 - 20));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('a bad policy at run time', () => {
  it('escalates every gate with the reason, under the broken file’s sha256', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tollgate-policy-'));
    try {
      const text =
        'version: 1\nname: broken\nrules:\n  - { id: no-critical, action: block, when: { severity: [CRITICAL] } }\n';
      const file = join(dir, 'policy.yaml');
      await writeFile(file, text);
      const policy = loadPolicySource(file);
      expect(policy.ok).toBe(false);
      const h = await setup({ policy });
      await h.approvalStarted();

      const record = (await h.decision())!.record;
      expect(record.outcome).toBe('ESCALATE');
      expect(record.policy.sha256).toBe(createHash('sha256').update(text).digest('hex'));
      expect(record.violations.map((v) => v.rule)).toEqual(['error']);
      expect(record.violations[0]!.description).toMatch(/the policy is invalid/);
      expect(record.violations[0]!.description).toMatch(/rules\[0\]\.action/);
      expect(publishes(h)).toHaveLength(1);
      expect(putResults(h)).toHaveLength(0);
      expect(await h.gate()).toMatchObject({ state: 'ACTED', outcome: 'ESCALATE' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('times ahead of the clock', () => {
  it('an approval whose start is dated ahead opens with its deadline from now, and times out', async () => {
    const h = await setup();
    h.scanner.coverage = undefined; // never scanned: only the deadline decides
    const started = h.approvalStartedEvent();
    started.time = '2027-11-25T09:00:00Z'; // a year ahead of the clock
    await h.approvalStarted(started);
    const gate = await h.gate();
    expect(gate?.startedAt).toBe(h.clock.now().toISOString());
    expect(Date.parse(gate!.deadline) - h.clock.now().getTime()).toBe(30 * MINUTE);
    h.clock.advance(31 * MINUTE);
    await h.sweep();
    expect(await h.gate()).toMatchObject({ state: 'ACTED', outcome: 'ESCALATE' });
  });

  it('a scan status dated ahead of the clock is not taken as fresh: coverage is asked, as for an old one', async () => {
    const h = await setup();
    // Stored before the approval starts: a COMPLETE status dated a year ahead.
    const ahead = h.inspectorScanEvent();
    ahead.time = '2027-11-25T09:00:00Z';
    await h.scanFinished(ahead);
    const before = h.mocks.inspector.commandCalls(ListCoverageCommand).length;
    await h.approvalStarted();
    expect(h.mocks.inspector.commandCalls(ListCoverageCommand).length).toBeGreaterThan(before);
  });

  it('an approval ended or answered with a time ahead is recorded at the clock (never an audit record dated ahead)', async () => {
    const h = await setup();
    await h.approvalStarted();
    const answer = h.cloudTrailEvent({
      identity: `arn:aws:sts::${ACCOUNT}:assumed-role/SecurityEngineer/alice`,
      status: 'Approved',
    });
    answer.detail.eventTime = '2027-11-25T09:00:00Z';
    answer.time = '2027-11-25T09:00:00Z';
    await h.approvalEnded(answer);
    const ended = h.approvalEndedEvent('SUCCEEDED');
    ended.time = '2027-11-25T09:00:00Z';
    await h.approvalEnded(ended);
    const gate = await h.gate();
    expect(gate?.reviewer?.at).toBe(h.clock.now().toISOString());
    expect(gate?.closure?.at).toBe(h.clock.now().toISOString());
  });
});

describe('an evaluation that fails', () => {
  it('decides under onError, the record still naming the image and scan it judged, and saying no finding is counted', async () => {
    const h = await setup();
    h.scanner.findings = exampleFindings('payments-api.list-findings.json');
    await h.approvalStarted();
    // Only this spy is undone after: the harness's own (the log capture) stay.
    const row = vi.spyOn(FindingTable.prototype, 'row').mockImplementation(() => {
      throw new Error('a malformed field');
    });
    try {
      await h.scanFinished();
    } finally {
      row.mockRestore();
    }
    const record = (await h.decision())!.record;
    expect(record.outcome).toBe('ESCALATE');
    expect(record.subject).toMatchObject({ repository: REPOSITORY, digest: DIGEST });
    expect(record.violations.map((v) => v.rule)).toEqual(['error']);
    expect(record.violations[0]!.description).toMatch(
      /the evaluation failed \(no finding is counted in this record\): a malformed field/,
    );
  });
});

describe('the scan events as AWS sends them', () => {
  it('Inspector2 Scan without HIGH and LOW counts: a missing severity is 0, and the event decides', async () => {
    const h = await setup();
    h.scanner.findings = exampleFindings('billing-api.list-findings.json'); // 2 LOW, 1 MEDIUM
    await h.approvalStarted();
    h.clock.advance(MINUTE);
    const event = h.inspectorScanEvent({ counts: { CRITICAL: 0, MEDIUM: 1, TOTAL: 3 } });
    await h.scanFinished(event);

    expect(await h.decision()).toMatchObject({ trigger: 'scan-finished', record: { outcome: 'APPROVE' } });
    expect(putResults(h)).toHaveLength(1);
  });

  it('ECR Image Scan (basic scanning, bare repository name, severities left out): decides on DescribeImageScanFindings', async () => {
    const h = await setup({ scanSource: 'ecr' });
    await h.approvalStarted(); // ECR has no scan of the image yet: ScanNotFoundException, the gate waits
    expect((await h.gate())?.state).toBe('WAITING');

    h.scanner.ecr = { status: 'COMPLETE', findings: ecrBasicFindings() }; // 1 MEDIUM
    h.clock.advance(MINUTE);
    await h.scanFinished(h.ecrScanEvent({ counts: { MEDIUM: 1 } }));

    expect(await h.decision()).toMatchObject({ trigger: 'scan-finished', record: { outcome: 'APPROVE' } });
    expect((await h.decision())!.record.counts.MEDIUM).toBe(1);
    expect(putResults(h).map((r) => r.result?.status)).toEqual(['Approved']);
  });

  it("the other scanner's event decides nothing and is not stored: an ECR COMPLETE under Inspector scanning", async () => {
    // Misrouted (a second rule, a replay): ECR basic scanning's verdict says nothing of Inspector's findings,
    // and stored it would have stood for Inspector's scan of the image.
    const h = await setup();
    h.scanner.findings = [];
    await h.approvalStarted();
    const added = metricsOf(h);
    h.clock.advance(MINUTE);
    expect(await h.scanFinished(h.ecrScanEvent({ counts: {} }))).toEqual({ result: [] });
    expect(valuesOf(added, 'ForeignScanEvents')).toEqual([1]);
    expect(await h.store.getScan(DIGEST, ACCOUNT, REPOSITORY)).toBeUndefined();
    expect((await h.gate())?.state).toBe('WAITING');
    expect(await h.decision()).toBeUndefined();
    // Stored anyway (before the source was switched): the gate does not take it as its scan either.
    await h.store.putScan({
      digest: DIGEST,
      repository: REPOSITORY,
      registryId: ACCOUNT,
      source: 'ecr',
      status: 'COMPLETE',
      verdict: 'complete',
      counts: {},
      at: h.clock.now().toISOString(),
    });
    h.clock.advance(MINUTE);
    await h.sweep();
    expect(await h.decision()).toBeUndefined();
  });

  it('the repository ARN in Inspector2 Scan: correlated by digest, the repository name used for ListFindings', async () => {
    const h = await setup();
    await h.approvalStarted();
    const event = h.inspectorScanEvent();
    expect(event.detail['repository-name']).toBe(REPOSITORY_ARN);
    h.clock.advance(MINUTE);
    await h.scanFinished(event);

    const reads = findingsReads(h);
    expect(reads.length).toBeGreaterThan(0);
    for (const read of reads) {
      expect(read.filterCriteria?.ecrImageRepositoryName).toEqual([
        { comparison: 'EQUALS', value: REPOSITORY },
      ]);
      expect(read.filterCriteria?.ecrImageHash).toEqual([{ comparison: 'EQUALS', value: DIGEST }]);
    }
    expect(await h.store.getScan(DIGEST, ACCOUNT, REPOSITORY)).toMatchObject({
      repository: REPOSITORY,
      verdict: 'complete',
    });
    expect(await h.decision()).toMatchObject({ trigger: 'scan-finished', record: { outcome: 'APPROVE' } });
  });

  it('the same digest scanned in another repository decides nothing here: this repository waits for its own scan', async () => {
    // Promotion copies one digest from staging to prod. Staging's scan must not stand for prod's copy, which
    // Inspector has not scanned yet (coverage PENDING_INITIAL_SCAN, nothing listed for it): taken as prod's,
    // its "complete" and counts agreed with prod's empty read, and the release was approved unscanned.
    const h = await setup();
    h.scanner.findings = [];
    await h.approvalStarted();
    const staging = h.inspectorScanEvent({ counts: { CRITICAL: 0, HIGH: 0, MEDIUM: 0, TOTAL: 0 } });
    staging.resources = [`${REPOSITORY_ARN}-staging`];
    staging.detail['repository-name'] = `${REPOSITORY_ARN}-staging`;
    h.clock.advance(MINUTE);
    await h.scanFinished(staging);
    expect(await h.store.getScan(DIGEST, ACCOUNT, `${REPOSITORY}-staging`)).toMatchObject({
      verdict: 'complete',
    });
    expect(await h.store.getScan(DIGEST, ACCOUNT, REPOSITORY)).toBeUndefined();
    for (let i = 0; i < 3; i++) {
      h.clock.advance(MINUTE);
      await h.sweep();
    }
    expect((await h.gate())?.state).toBe('WAITING');
    expect(await h.decision()).toBeUndefined();
    expect(putResults(h)).toHaveLength(0);

    // Its own scan decides it.
    h.scanner.findings = cleanFindings();
    h.scanner.coverage = { statusCode: 'ACTIVE', reason: 'SUCCESSFUL' };
    h.clock.advance(MINUTE);
    await h.scanFinished(h.inspectorScanEvent());
    expect(await h.decision()).toMatchObject({ trigger: 'scan-finished', record: { outcome: 'APPROVE' } });
  });

  it('an Inspector2 Scan of an EC2 instance (no image digest) is ignored: nothing called, nothing stored', async () => {
    const h = await setup();
    const added = metricsOf(h);
    expect(await h.scanFinished(h.ec2ScanEvent())).toEqual({ ignored: 'event of another kind' });
    expect(await h.scanFinished(h.lambdaScanEvent())).toEqual({ ignored: 'event of another kind' });
    expect(valuesOf(added, 'IgnoredEvents')).toEqual([1, 1]);
    expect(valuesOf(added, 'MalformedEvents')).toEqual([]);
    for (const mock of Object.values(h.mocks)) expect(mock.calls()).toHaveLength(0);
    expect(await h.items()).toHaveLength(0);
  });

  it('a malformed event of the kind a function handles is dead-lettered (thrown), not ignored; other kinds are ignored', async () => {
    // The rules deliver only gated Manual approvals: one the schema refuses is a format drift or a bug, and
    // acknowledged it was lost with only its id in a log line. Thrown, Lambda retries it and the failed-events
    // queue keeps the event itself (and pages).
    const h = await setup();
    const added = metricsOf(h);
    let malformed = 0;
    const started = h.approvalStartedEvent() as unknown as { time: string; detail: Record<string, unknown> };
    started.time = 'yesterday';
    await expect(h.approvalStarted(started)).rejects.toMatchObject({
      name: 'MalformedEventError',
      problems: [expect.stringMatching(/^time: /)],
    });
    const ended = h.approvalEndedEvent('SUCCEEDED') as unknown as { detail: Record<string, unknown> };
    delete ended.detail.stage;
    await expect(h.approvalEnded(ended)).rejects.toMatchObject({ name: 'MalformedEventError' });
    const call = h.cloudTrailEvent() as unknown as { detail: Record<string, unknown> };
    call.detail.userIdentity = 'alice';
    await expect(h.approvalEnded(call)).rejects.toMatchObject({ name: 'MalformedEventError' });
    malformed += 3;
    // Names CodePipeline could not give: a key of them could pass a length check and be past DynamoDB's key
    // bytes (100 three-byte characters), and no real event carries one.
    for (const [field, value] of [
      ['pipeline', 'ü'.repeat(100)],
      ['stage', 'Deploy prod'],
      ['execution-id', 'é'.repeat(36)],
    ] as const) {
      const odd = h.approvalStartedEvent() as unknown as { detail: Record<string, unknown> };
      odd.detail[field] = value;
      await expect(h.approvalStarted(odd), field).rejects.toMatchObject({ name: 'MalformedEventError' });
      malformed++;
    }
    expect(valuesOf(added, 'MalformedEvents')).toEqual(Array(malformed).fill(1));
    // Not an approval (another action type), or another state for this function: another kind, ignored.
    const build = h.approvalStartedEvent() as unknown as {
      time: string;
      detail: { type: Record<string, unknown> };
    };
    build.time = 'yesterday';
    build.detail.type = { ...build.detail.type, category: 'Build', provider: 'CodeBuild' };
    expect(await h.approvalStarted(build)).toEqual({ ignored: 'event of another kind' });
    expect(await h.approvalStarted(h.approvalEndedEvent('SUCCEEDED'))).toEqual({
      ignored: 'event of another kind',
    });
    // Malformed and from another account: foreign first, ignored, and said so.
    const foreign = h.approvalStartedEvent() as unknown as { time: string; account: string };
    foreign.time = 'yesterday';
    foreign.account = '210987654321';
    expect(await h.approvalStarted(foreign)).toEqual({ ignored: 'event from account 210987654321' });
    // The kind is the schema's own: CloudTrail's record of another service's call of that name is not ours.
    const other = h.cloudTrailEvent() as unknown as { detail: Record<string, unknown> };
    other.detail.eventSource = 'codebuild.amazonaws.com';
    expect(await h.approvalEnded(other)).toEqual({ ignored: 'event of another kind' });
    // An image scan (it names a digest) the schema refuses, from either scanner: the rules deliver no other
    // scan, so it is malformed; ignored, its gates would wait for the sweep, and nobody would know why.
    for (const [scan, change] of [
      [h.inspectorScanEvent(), (d: Record<string, unknown>) => (d['image-tags'] = null)],
      [
        h.inspectorScanEvent(),
        (d: Record<string, unknown>) => (d['image-digest'] = `sha256:${'A'.repeat(64)}`),
      ],
      [h.ecrScanEvent({ counts: {} }), (d: Record<string, unknown>) => delete d['scan-status']],
      // A name past DynamoDB's key limit failed the scan's write on every retry: refused by its schema now.
      [
        h.ecrScanEvent({ counts: {} }),
        (d: Record<string, unknown>) => (d['repository-name'] = 'r'.repeat(2000)),
      ],
      // Nor within 512 characters: DynamoDB counts a key's bytes, and 512 of these are 1,536 (ECR's are ASCII).
      [
        h.ecrScanEvent({ counts: {} }),
        (d: Record<string, unknown>) => (d['repository-name'] = 'ü'.repeat(512)),
      ],
      [
        h.ecrScanEvent({ counts: {} }),
        (d: Record<string, unknown>) => (d['finding-severity-counts'] = { HIGH: null }),
      ],
      // A repository ARN without its 12-digit account was stored under the event's `account`: a delegated
      // administrator's own registry, not the member's the scan was of.
      ...['', '12345', '1234567890123'].map(
        (account) =>
          [
            h.inspectorScanEvent(),
            (d: Record<string, unknown>) =>
              (d['repository-name'] = `arn:aws:ecr:eu-central-1:${account}:repository/${REPOSITORY}`),
          ] as const,
      ),
    ] as const) {
      change((scan as unknown as { detail: Record<string, unknown> }).detail);
      await expect(h.scanFinished(scan)).rejects.toMatchObject({ name: 'MalformedEventError' });
      malformed++;
    }
    expect(await h.scanFinished(h.ec2ScanEvent())).toEqual({ ignored: 'event of another kind' });
    expect(await h.items()).toHaveLength(0);
    // Each malformed event counted once; the other kinds (a build, an end, another service's call, an EC2
    // scan) as ignored, and the foreign one as foreign only.
    expect(valuesOf(added, 'MalformedEvents')).toEqual(Array(malformed).fill(1));
    expect(valuesOf(added, 'IgnoredEvents')).toEqual([1, 1, 1, 1]);
    expect(valuesOf(added, 'ForeignEvents')).toEqual([1]);
  });

  it('events from another account or region are ignored', async () => {
    const h = await setup();
    const added = metricsOf(h);
    // The Inspector sample exactly as AWS documents it: account 111122223333.
    expect(await h.scanFinished(h.foreignInspectorScanEvent())).toEqual({
      ignored: 'event from account 111122223333',
    });
    const started = h.approvalStartedEvent();
    started.account = '210987654321';
    expect(await h.approvalStarted(started)).toEqual({ ignored: 'event from account 210987654321' });
    const elsewhere = h.approvalStartedEvent();
    elsewhere.region = 'us-east-1';
    expect(await h.approvalStarted(elsewhere)).toEqual({ ignored: 'event from region us-east-1' });
    expect(valuesOf(added, 'ForeignEvents')).toEqual([1, 1, 1]);
    expect(valuesOf(added, 'IgnoredEvents')).toEqual([]);
    for (const mock of Object.values(h.mocks)) expect(mock.calls()).toHaveLength(0);
    expect(await h.items()).toHaveLength(0);
  });
});

describe('the approval token is a credential', () => {
  it('never appears in a stored item, an event, a message or the log, even when an error echoes it', async () => {
    const h = await setup();
    const echoes = () =>
      new PipelineServiceException({
        name: 'InternalFailure',
        $fault: 'server',
        $metadata: { httpStatusCode: 500 },
        message: `Internal failure while processing token ${TOKEN}`,
      });
    h.fail('PutApprovalResult', echoes);
    await h.approvalStarted();
    h.clock.advance(MINUTE);
    await expect(h.scanFinished()).rejects.toThrow();
    expect(await h.gate()).toMatchObject({ state: 'DECIDED' });

    h.heal();
    h.clock.advance(3 * MINUTE);
    await h.sweep();
    expect(h.results.map((r) => r.token)).toEqual([TOKEN]);
    await h.approvalEnded(h.cloudTrailEvent({ identity: TOLLGATE_IDENTITY }));
    await h.approvalEnded(h.approvalEndedEvent('SUCCEEDED'));
    expect(await h.gate()).toMatchObject({ state: 'CLOSED', reviewer: { tollgate: true } });

    const token = TOKEN.toLowerCase();
    const stored = JSON.stringify(await h.items()).toLowerCase();
    expect(stored).toContain(hashToken(TOKEN)); // what is kept instead
    expect(stored).not.toContain(token);
    expect(JSON.stringify(h.events).toLowerCase()).not.toContain(token);
    expect(JSON.stringify(h.messages).toLowerCase()).not.toContain(token);
    const log = logLines.join('\n');
    expect(log).toContain('sending the approval result failed');
    expect(log).toContain('<approval token>');
    expect(log.toLowerCase()).not.toContain(token);
  });
});

describe('the harness', () => {
  it('answers from the samples: the token, the execution and the image of the fixtures', async () => {
    const h = await setup();
    await h.approvalStarted();
    expect(h.mocks.codepipeline.commandCalls(GetPipelineStateCommand)[0]!.args[0].input).toEqual({
      name: PIPELINE,
    });
    expect(h.mocks.codepipeline.commandCalls(ListActionExecutionsCommand)[0]!.args[0].input.filter).toEqual({
      pipelineExecutionId: EXECUTION,
    });
    expect(await h.gate()).toMatchObject({
      state: 'WAITING',
      startedAt: START,
      image: { repository: REPOSITORY, digest: DIGEST },
      tokenHash: hashToken(TOKEN),
    });
    expect(scanCounts(h.scanner.findings)).toEqual({ CRITICAL: 0, HIGH: 0, MEDIUM: 1, TOTAL: 1 });
  });
});

describe('operations: a replay, a manual sweep, a broken deployment', () => {
  /** What Lambda's on-failure destination puts in a failed-events queue: the event, wrapped. */
  const destinationRecord = (event: unknown, functionArn = `${FUNCTION_ARN}:$LATEST`) => ({
    version: '1.0',
    timestamp: '2026-11-25T12:00:00.000Z',
    requestContext: {
      requestId: 'r-1',
      functionArn,
      condition: 'RetriesExhausted',
      approximateInvokeCount: 3,
    },
    requestPayload: event,
    responseContext: { statusCode: 200, executedVersion: '$LATEST', functionError: 'Unhandled' },
    responsePayload: { errorType: 'GateWorkFailed', errorMessage: 'PutApprovalResult failed' },
  });

  it("a failed-events queue message (Lambda's destination record) replayed as it stands is handled as its event", async () => {
    // Ignored as an event of another kind, the replay would be lost with a success answer.
    const h = await setup();
    expect(await h.approvalStarted(destinationRecord(h.approvalStartedEvent()))).toMatchObject({
      result: { state: 'WAITING' },
    });
    expect(await h.gate()).toMatchObject({ state: 'WAITING' });
    // Logged as a replay, with the record's context: why Lambda gave up on it, and which invocation.
    expect(logLines.find((l) => l.includes('approval-started: replaying a failed event'))).toMatch(
      /"requestId": "r-1"[\s\S]*"condition": "RetriesExhausted"/,
    );
    // Still malformed inside: dead-lettered again, not ignored.
    const bad = h.approvalStartedEvent() as unknown as { time: string };
    bad.time = 'yesterday';
    await expect(h.approvalStarted(destinationRecord(bad))).rejects.toMatchObject({
      name: 'MalformedEventError',
    });
    // Another function's message sent here would be another kind, ignored: refused, naming where it goes.
    const other = `arn:aws:lambda:${REGION}:${ACCOUNT}:function:tollgate-sweep`;
    await expect(h.approvalStarted(destinationRecord(h.approvalStartedEvent(), other))).rejects.toThrow(
      `approval-started: a failed event of ${other}: replay it there`,
    );
    // The same name in another account or region is another function.
    const elsewhere = `arn:aws:lambda:${REGION}:210987654321:function:x`;
    await expect(h.approvalStarted(destinationRecord(h.approvalStartedEvent(), elsewhere))).rejects.toThrow(
      `approval-started: a failed event of ${elsewhere}: replay it there`,
    );
    expect(await h.sweep(destinationRecord(h.scheduledEvent()))).toMatchObject({
      result: [expect.objectContaining({ state: 'WAITING' })],
    });
  });

  it('a replay that failed again, dead-lettered wrapped twice, is unwrapped to its event', async () => {
    // An asynchronous replay that fails is wrapped once more: the inner record, ignored as another kind of
    // event, would be the event lost with a success answer.
    const h = await setup();
    const twice = destinationRecord(destinationRecord(h.approvalStartedEvent()));
    expect(await h.approvalStarted(twice)).toMatchObject({ result: { state: 'WAITING' } });
    expect(await h.gate()).toMatchObject({ state: 'WAITING' });
  });

  it("a manual invoke with any object that is no EventBridge event, the console's test event included, runs a sweep", async () => {
    const h = await setup();
    await h.approvalStarted();
    const sweeps = vi.spyOn(h.runtime.gate, 'sweep');
    for (const manual of [{}, { key1: 'value1', key2: 'value2', key3: 'value3' }]) {
      expect(await h.sweep(manual), JSON.stringify(manual)).toMatchObject({
        result: [expect.objectContaining({ state: 'WAITING' })],
      });
    }
    expect(sweeps).toHaveBeenCalledTimes(2);
    // An EventBridge event of another kind, or no object, is still not a sweep's trigger.
    for (const other of [
      { source: 'aws.s3', 'detail-type': 'Object Created', detail: {} },
      [],
      'sweep',
      null,
    ]) {
      expect(await h.sweep(other), JSON.stringify(other)).toEqual({ ignored: 'event of another kind' });
    }
    expect(sweeps).toHaveBeenCalledTimes(2);
  });

  it('the sweep starts no gate with less time left than one stalled AWS call takes with its retries', async () => {
    // Five attempts of a stalled call each (the headers' timeout, then the body's), and the backoff between
    // them (each at most its cap).
    const backoff = Array.from({ length: DEFAULT_RETRY.attempts - 1 }, (_, n) =>
      Math.min(DEFAULT_RETRY.maxDelayMs ?? Number.POSITIVE_INFINITY, DEFAULT_RETRY.baseMs * 2 ** n),
    ).reduce((a, b) => a + b, 0);
    expect(SWEEP_STOP_MS).toBeGreaterThan(DEFAULT_RETRY.attempts * attemptMaxMs() + backoff);
    const h = await setup();
    await h.approvalStarted();
    const added = metricsOf(h);
    // 100 s left: a gate started now could be cut off by the function's timeout in a stalled call's retries.
    h.remainingMs = 100_000;
    const reads = h.mocks.inspector.calls().length;
    await h.sweep();
    expect(added).toContainEqual(['SweepCutShort', 1]);
    expect(h.mocks.inspector.calls()).toHaveLength(reads);
  });

  describe('the deciding functions’ runtime, from the environment', () => {
    let dir: string;
    const env = (more: Record<string, string | undefined>): NodeJS.ProcessEnv => ({
      TOLLGATE_TABLE: 'tollgate-test',
      AWS_REGION: REGION,
      TOLLGATE_SCAN_SOURCE: 'inspector',
      TOLLGATE_POLICY_FILE: join(dir, 'policy.json'),
      ...more,
    });
    const build = (e: NodeJS.ProcessEnv) => buildAwsRuntime(e, (region) => createAwsAdapters({ region }));
    const context = { invokedFunctionArn: FUNCTION_ARN, functionName: 'x', awsRequestId: 'r' } as never;

    it('counts PolicyInvalid on every invocation while the policy cannot be loaded, and not once it can', async () => {
      process.env.POWERTOOLS_METRICS_DISABLED ??= 'true';
      dir = await mkdtemp(join(tmpdir(), 'tollgate-policy-'));
      try {
        const counted = async (file: string) => {
          const runtime = build(env({ TOLLGATE_POLICY_FILE: join(dir, file) }));
          const names: string[] = [];
          vi.spyOn(runtime.metrics, 'addMetric').mockImplementation((name) => {
            names.push(name);
            return runtime.metrics;
          });
          const handler = approvalStartedHandler(runtime);
          // Of another kind: nothing to decide, and still counted (a log line at cold start pages nobody).
          for (let i = 0; i < 2; i++)
            await handler({ source: 'aws.s3', 'detail-type': 'x', detail: {} }, context);
          return names.filter((n) => n === 'PolicyInvalid').length;
        };
        expect(await counted('missing.json')).toBe(2);
        await writeFile(
          join(dir, 'policy.json'),
          JSON.stringify(policyBundle(parsePolicy(readFileSync(BASELINE_POLICY), BASELINE_POLICY))),
        );
        expect(await counted('policy.json')).toBe(0);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });

    it('refuses at cold start a TOLLGATE_SCAN_SOURCE other than inspector or ecr, naming what came', () => {
      dir = tmpdir();
      for (const [value, shown] of [
        ['ECR', '"ECR"'],
        ['basic', '"basic"'],
        ['', '""'],
        [undefined, 'nothing (unset)'],
      ] as const) {
        expect(() => build(env({ TOLLGATE_SCAN_SOURCE: value })), shown).toThrow(
          `TOLLGATE_SCAN_SOURCE: expected inspector or ecr; got ${shown}`,
        );
      }
      for (const source of ['inspector', 'ecr']) {
        const gate = build(env({ TOLLGATE_SCAN_SOURCE: source })).gate as unknown as {
          d: { config: { scanSource: string } };
        };
        expect(gate.d.config.scanSource).toBe(source);
      }
    });
  });
});
