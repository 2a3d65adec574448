import { join } from 'node:path';
import {
  GetPipelineStateCommand,
  ListActionExecutionsCommand,
  ListPipelineExecutionsCommand,
  ListPipelinesCommand,
} from '@aws-sdk/client-codepipeline';
import { describe, expect, it, vi } from 'vitest';
import { EXECUTION_PAGES_MAX } from '../adapters/aws/codepipeline.js';
import { ensureTable } from '../adapters/dynamodb/table.js';
import { type DiscoveryConfig, PARALLEL_LOOKBACK_MS } from '../shared/gate/discovery.js';
import { type Gate, type GateKey, gateId } from '../shared/gate/model.js';
import { hashToken } from '../shared/gate/work.js';
import {
  type RunControl,
  runScenario,
  type SimulationOptions,
  type SimulationResult,
} from '../simulator/run.js';
import { loadScenario } from '../simulator/scenario.js';
import {
  ACCOUNT,
  ACTION,
  ACTION_EXECUTION,
  createHarness,
  EXECUTION,
  type Harness,
  KEY,
  PIPELINE,
  pipelineThrottled,
  REGION,
  START,
  TOKEN,
  useLocalDynamo,
} from './gate-harness.js';
import { ROOT } from './helpers.js';

/*
 * The repair of a lost approval STARTED event, end to end: the example scenarios replayed through the real
 * handlers, the simulated account and a dynalite table, with the STARTED event dropped (or held back) and the
 * sweep's discovery on, as the stack runs it.
 */

const dynamo = useLocalDynamo();
const DIR = join(ROOT, 'examples', 'scenarios');
const MINUTE = 60_000;
let tables = 0;

type Json = Record<string, unknown>;

const isStarted = (event: Json): boolean =>
  event['detail-type'] === 'CodePipeline Action Execution State Change' &&
  (event.detail as Json | undefined)?.state === 'STARTED';

/** Sweeps a minute apart for `minutes`, as the schedule runs them whether or not a gate is open. */
function sweepFor(minutes: number) {
  return async (control: RunControl): Promise<void> => {
    for (let i = 0; i < minutes; i++) {
      control.clock.set(control.clock.now().getTime() + MINUTE);
      await control.sweep();
    }
  };
}

async function replay(file: string, options: Partial<SimulationOptions> = {}): Promise<SimulationResult> {
  const { client } = dynamo();
  tables++;
  const tableName = `tollgate-discovery-${process.pid}-${tables}`;
  await ensureTable(client, tableName);
  return runScenario(loadScenario(join(DIR, file)), { doc: client, tableName, ...options });
}

const dropStarted: SimulationOptions['deliverVia'] = async (event, deliver) => {
  if (!isStarted(event)) await deliver(event);
};

describe('a lost approval STARTED event', () => {
  it('without discovery, no gate exists and the approval waits for a person', async () => {
    const r = await replay('01-clean-image-approved.json', {
      deliverVia: dropStarted,
      discovery: false,
      afterSteps: sweepFor(12),
    });
    expect(r.gates[0]?.state).toBeNull();
    expect(r.calls.PutApprovalResult ?? 0).toBe(0);
  });

  it('the sweep finds the approval after the grace period, opens its gate and decides as the event would have', async () => {
    const clean = await replay('01-clean-image-approved.json');
    const r = await replay('01-clean-image-approved.json', {
      deliverVia: dropStarted,
      discovery: { everyMinutes: 1 },
      afterSteps: sweepFor(12),
    });
    const gate = r.gates[0]!;
    expect(gate.state).toBe('CLOSED');
    expect(gate.outcome).toBe(clean.gates[0]!.outcome);
    expect(gate.approvalResult?.status).toBe('Approved');
    expect(gate.timeline[0]?.what).toMatch(
      /^approval found in progress by the sweep \(no STARTED event came\)/,
    );
    expect(gate.decidedBy?.trigger).toBe('sweep (approval found)');
    // Not before the grace period: the event may still be on its way. The scenario starts at minute 0.
    const start = Date.parse(loadScenario(join(DIR, '01-clean-image-approved.json')).scenario.start);
    expect(Date.parse(gate.decidedBy!.decidedAt) - start).toBeGreaterThanOrEqual(5 * MINUTE);
    // The wait counts from the approval's start as the state shows it, not from when it was found.
    expect(r.calls.PutApprovalResult).toBe(1);
  });

  it('an escalation found this way says so, and a person can still answer it', async () => {
    const r = await replay('03-fixable-high-escalated-then-approved.json', {
      deliverVia: dropStarted,
      discovery: { everyMinutes: 1, graceMs: 0 },
    });
    const gate = r.gates[0]!;
    expect(gate.outcome).toBe('ESCALATE');
    expect(gate.notifications).toBe(1);
    const text = String(
      (r.messages[0]?.message as Json | undefined)?.default ?? JSON.stringify(r.messages[0]),
    );
    expect(text).toContain('which found the approval (its start event never came)');
  });

  it('when the event does come, discovery opens nothing: one gate, one decision, one result', async () => {
    const clean = await replay('01-clean-image-approved.json', { afterSteps: sweepFor(12) });
    const r = await replay('01-clean-image-approved.json', {
      discovery: { everyMinutes: 1, graceMs: 0 },
      afterSteps: sweepFor(12),
    });
    expect(r.gates).toHaveLength(1);
    expect(r.gates[0]!.timeline.some((t) => t.what.includes('found in progress'))).toBe(false);
    expect(r.calls.PutApprovalResult).toBe(1);
    expect(r.gates[0]!.outcome).toBe(clean.gates[0]!.outcome);
  });

  it('a STARTED event held back until after discovery opened the gate changes nothing: one gate, one result', async () => {
    let held: Json | undefined;
    const r = await replay('01-clean-image-approved.json', {
      deliverVia: async (event, deliver) => {
        if (isStarted(event) && held === undefined) {
          held = event;
          return;
        }
        await deliver(event);
      },
      discovery: { everyMinutes: 1, graceMs: 0 },
      afterSteps: async (control) => {
        control.clock.set(control.clock.now().getTime() + MINUTE);
        await control.sweep();
        expect((await control.gates())[0]?.state).toBe('CLOSED');
        await control.deliver(held!);
        await control.drain();
        await control.sweepUntilQuiet();
      },
    });
    expect(r.gates).toHaveLength(1);
    const gate = r.gates[0]!;
    expect(
      gate.timeline.filter((t) => /^approval (started|found)/.test(t.what)).map((t) => t.what.split(';')[0]),
    ).toEqual(['approval found in progress by the sweep (no STARTED event came)']);
    expect(r.calls.PutApprovalResult).toBe(1);
    expect(r.deliveries.filter((d) => d.outcome === 'dead-lettered')).toEqual([]);
  });

  it('a PARALLEL-mode pipeline whose state still names an execution from before the switch: found by its mode, not its state', async () => {
    const r = await replay('10-parallel-mode-approval-started-event-lost.json', {
      // A wildcard: ListPipelines names the pipeline with its mode.
      discovery: { pipelines: ['*'] },
      onWorld: (world) =>
        world.showFormerExecution('fulfilment-api', 'Release', '00000010-5c4d-4e6f-8a9b-0c1d2e3f4a5b'),
    });
    expect(r.calls.ListPipelines).toBeGreaterThan(0);
    expect(r.gates[0]).toMatchObject({
      state: 'CLOSED',
      outcome: 'APPROVE',
      approvalResult: { status: 'Approved' },
    });
    expect(r.gates[0]!.timeline[0]?.what).toMatch(/^approval found in progress by the sweep/);
  });
});

// ── the discovery's rules, through the real sweep handler, adapters and store (test/gate-harness.ts) ────

const SCANNED = { statusCode: 'ACTIVE', reason: 'SUCCESSFUL' } as const;
const RETRY_RUN = '5a0e8f1c-0000-4000-8000-00000000abcd';
const RETRY_TOKEN = '5e6f7a8b-573f-4ea7-a67e-0123456789ab';

/**
 * The harness with the scan done, the approval in progress since START, and the clock `minutes` later. The
 * scan is known from Inspector's coverage, without an event's counts: a gate decides on the second of two
 * reads a sweep apart (the settle rule), so `settled` sweeps once more.
 */
async function waiting(discovery: Partial<DiscoveryConfig>, minutes = 6): Promise<Harness> {
  const h = await createHarness(dynamo(), { discovery: { everyMinutes: 1, ...discovery } });
  h.scanner.coverage = SCANNED;
  h.pipeline.stage.since = new Date(START);
  h.clock.advance(minutes * MINUTE);
  return h;
}

async function settled(h: Harness): Promise<void> {
  h.clock.advance(MINUTE);
  await h.sweep();
}

/** The pipeline now runs the action a second time (RETRY_RUN), in progress since START, after `earlier`. */
function useRetryRun(h: Harness, token: string | undefined, earlier = ACTION_EXECUTION): void {
  h.pipeline.stage = {
    executionId: KEY.executionId,
    status: 'InProgress',
    token,
    actionExecutionId: RETRY_RUN,
    since: new Date(START),
  };
  h.pipeline.action.status = 'InProgress';
  h.pipeline.action.actionExecutionId = RETRY_RUN;
  h.pipeline.action.earlierRuns = [{ actionExecutionId: earlier, status: 'Failed' }];
}

/** The ids of the gates that name this run. */
async function gatesOfRun(h: Harness, run: string): Promise<string[]> {
  return (await h.items())
    .filter((i) => i.type === 'GATE' && (i.gate as { actionExecutionId?: string }).actionExecutionId === run)
    .map((i) => gateId((i.gate as { key: GateKey }).key))
    .sort();
}

const FIRST_RUN = '0b9e6a1c-0000-4000-8000-0000000000a1';

/**
 * Run 1 of the action ran at attempt 2 (the first attempt failed before it) and was rejected by a person:
 * its gate, CLOSED, holds number 2. The harness then still shows that run; the caller moves on to a retry.
 */
async function firstRunClosedAtAttempt2(h: Harness): Promise<Gate | undefined> {
  h.pipeline.stage = { ...h.pipeline.stage, actionExecutionId: FIRST_RUN };
  h.pipeline.action.actionExecutionId = FIRST_RUN;
  const first = h.approvalStartedEvent();
  first.detail['pipeline-execution-attempt'] = 2.0;
  first.detail['action-execution-id'] = FIRST_RUN;
  const coverage = h.scanner.coverage;
  h.scanner.coverage = undefined;
  await h.approvalStarted(first);
  const ended = h.approvalEndedEvent('FAILED');
  ended.detail['pipeline-execution-attempt'] = 2.0;
  ended.detail['action-execution-id'] = FIRST_RUN;
  await h.approvalEnded(ended);
  h.scanner.coverage = coverage;
  return h.gate({ ...KEY, attempt: 2 });
}

const listed = (h: Harness) => h.mocks.codepipeline.commandCalls(ListPipelinesCommand).length;

describe("the sweep's time", () => {
  it('with little of the invocation left, starts no gate and no look: counted, and discovery fails saying why', async () => {
    const h = await waiting({});
    // Opened by discovery once: a waiting gate for the sweep to take up.
    await h.sweep();
    const opened = await h.gate();
    expect(opened?.state).toBe('WAITING');
    const added = metricsAdded(h);
    h.clock.advance(MINUTE);
    h.remainingMs = 59_000;
    await expect(h.sweep()).rejects.toThrow(
      /the first: stopped short of the function's timeout: \d+ pipeline\(s\), execution\(s\) or approval\(s\) left for the next look$/,
    );
    expect(await h.gate()).toEqual(opened);
    expect(added).toContainEqual(['SweepCutShort', 1]);
    expect(added).toContainEqual(['DiscoveryFailures', 1]);
    // The next sweep, with its time, takes it up.
    h.remainingMs = 300_000;
    await h.sweep();
    expect((await h.gate())?.version).toBeGreaterThan(opened!.version);
  });
});

describe('discovery', () => {
  it('reads every page of ListPipelines, opens the gate the lost event would have, and approves', async () => {
    const h = await waiting({});
    await h.sweep();
    expect(listed(h)).toBe(2);
    expect((await h.gate())?.timeline[0]?.what).toMatch(/^approval found in progress by the sweep/);
    await settled(h);
    expect(await h.gate()).toMatchObject({
      state: 'ACTED',
      outcome: 'APPROVE',
      startedAt: START,
      actionExecutionId: ACTION_EXECUTION,
      tokenHash: hashToken(TOKEN),
    });
    expect(h.results.map((r) => r.result?.status)).toEqual(['Approved']);
    // The same approval, swept again, is not opened twice.
    h.clock.advance(MINUTE);
    await h.sweep();
    expect(h.results).toHaveLength(1);
  });

  it('leaves an approval younger than the grace period to its event', async () => {
    const h = await waiting({}, 2);
    await h.sweep();
    expect(await h.gate()).toBeUndefined();
    h.clock.advance(4 * MINUTE);
    await h.sweep();
    expect((await h.gate())?.state).toBe('WAITING');
  });

  it('runs on whole multiples of its minutes, and on a manual invoke', async () => {
    // 09:06, then 09:09: not multiples of 5.
    const h = await waiting({ everyMinutes: 5 }, 6);
    await h.sweep();
    h.clock.advance(3 * MINUTE);
    await h.sweep();
    expect(listed(h)).toBe(0);
    expect(await h.gate()).toBeUndefined();
    // 09:10: the schedule's discovery.
    h.clock.advance(MINUTE);
    await h.sweep();
    expect(listed(h)).toBe(2);
    expect((await h.gate())?.state).toBe('WAITING');
    // A manual invoke looks whatever the minute.
    const manual = await waiting({ everyMinutes: 5 }, 6);
    const discover = vi.spyOn(manual.runtime.discovery!, 'discover');
    await manual.sweep({});
    expect(listed(manual)).toBe(2);
    expect((await manual.gate())?.state).toBe('WAITING');
    // Its event names no account or region: the function's own, from its ARN, so that the gates it opens
    // are checked against the registry's account like the schedule's.
    expect(discover).toHaveBeenCalledWith(
      { account: ACCOUNT, region: REGION },
      { timeLeftMs: expect.any(Function) },
    );
  });

  it('lists the pipelines for their modes when the globs are literal too, and keeps to the action globs', async () => {
    const other = await waiting({ pipelines: [PIPELINE], actions: ['Deploy*'] });
    await other.sweep();
    expect(listed(other)).toBeGreaterThan(0);
    expect(await other.gate()).toBeUndefined();
    const h = await waiting({ pipelines: [PIPELINE], actions: ['Image*Approval'] });
    await h.sweep();
    expect(listed(h)).toBeGreaterThan(0);
    expect((await h.gate())?.state).toBe('WAITING');
  });

  it('still looks at a pipeline named literally that the list lacks (just created), its mode unknown', async () => {
    const h = await waiting({ pipelines: [PIPELINE] });
    h.pipelineNames.splice(0, h.pipelineNames.length, 'billing-api');
    await h.sweep();
    expect(listed(h)).toBeGreaterThan(0);
    expect((await h.gate())?.state).toBe('WAITING');
  });

  it('opens no gate for an approval whose state names no run (nothing could claim it), and fails so a person is paged', async () => {
    const h = await waiting({});
    h.pipeline.stage.actionExecutionId = null;
    const notOpened = {
      causes: [
        expect.objectContaining({
          message: expect.stringMatching(
            /^discovery: approval .+ is in progress with no gate, and its state names no run for one to claim: not opened, left to a person$/,
          ),
        }),
      ],
    };
    await expect(h.sweep()).rejects.toMatchObject(notOpened);
    expect((await h.items()).filter((i) => i.type === 'GATE')).toEqual([]);

    // Its STARTED event came after all (no image: escalated, the approval left waiting for a person): the
    // gate knows it, and nothing fails.
    h.pipeline.action.customData = undefined;
    h.pipeline.variables = {};
    await h.approvalStarted();
    expect(await h.gate()).toMatchObject({ state: 'ACTED', outcome: 'ESCALATE' });
    h.clock.advance(MINUTE);
    await expect(h.sweep()).resolves.toBeDefined();

    // A retry of the approval (a new token), again with no run named and its STARTED event lost: the gate
    // under the first key is the earlier run's (another token), so it does not cover this one.
    h.pipeline.stage.token = '2b3c4d5e-573f-4ea7-a67e-0123456789ab';
    h.clock.advance(MINUTE);
    await expect(h.sweep()).rejects.toMatchObject(notOpened);
    expect((await h.items()).filter((i) => i.type === 'GATE')).toHaveLength(1);
  });

  it('a state it cannot read fails the sweep after the gates were swept, so it is retried and alarmed on', async () => {
    const h = await waiting({});
    h.fail('GetPipelineState', pipelineThrottled, { when: (input) => input.name === PIPELINE });
    await expect(h.sweep()).rejects.toThrow(
      /^discovery: 1 failure\(s\), so not every lost approval could be looked for or opened; the first: .*Rate exceeded/,
    );
    expect(await h.gate()).toBeUndefined();
    h.heal('GetPipelineState');
    h.clock.advance(MINUTE);
    await h.sweep();
    expect((await h.gate())?.state).toBe('WAITING');
    expect(h.mocks.codepipeline.commandCalls(GetPipelineStateCommand).length).toBeGreaterThan(3);
  });

  it('a list of pipelines it cannot read fails the sweep too, never passing for "no approval waits"', async () => {
    const h = await waiting({});
    h.fail('ListPipelines', pipelineThrottled);
    await expect(h.sweep()).rejects.toThrow(/Rate exceeded/);
    expect(await h.gate()).toBeUndefined();
  });

  it('a list it cannot read still leaves the pipelines named literally looked at, and fails the sweep', async () => {
    const h = await waiting({ pipelines: [PIPELINE] });
    h.fail('ListPipelines', pipelineThrottled);
    await expect(h.sweep()).rejects.toThrow(/Rate exceeded/);
    expect((await h.gate())?.timeline[0]?.what).toMatch(/^approval found in progress by the sweep/);
  });

  it('a retried run whose event came and whose gate has no token yet is known by its run id', async () => {
    const h = await waiting({});
    h.scanner.coverage = undefined; // no scan: the event's gate waits
    h.pipeline.stage = {
      executionId: KEY.executionId,
      status: 'InProgress',
      token: undefined,
      actionExecutionId: RETRY_RUN,
    };
    h.pipeline.action.actionExecutionId = RETRY_RUN;
    h.pipeline.action.earlierRuns = [{ actionExecutionId: ACTION_EXECUTION, status: 'Failed' }];
    const retry = h.approvalStartedEvent();
    // The third attempt of the execution; an attempt in between retried only the failed actions after it.
    retry.detail['pipeline-execution-attempt'] = 3.0;
    retry.detail['action-execution-id'] = RETRY_RUN;
    await h.approvalStarted(retry);
    const open = await h.gate({ ...KEY, attempt: 3 });
    expect(open?.state).toBe('WAITING');
    expect(open?.tokenHash).toBeUndefined();
    h.pipeline.stage = { ...h.pipeline.stage, token: RETRY_TOKEN, since: new Date(START) };
    await h.sweep();
    expect(await h.gate({ ...KEY, attempt: 2 })).toBeUndefined();
  });

  it('a retried run found first, then its late event under another attempt number: one gate, one result', async () => {
    const h = await waiting({});
    h.pipeline.stage = {
      executionId: KEY.executionId,
      status: 'InProgress',
      token: RETRY_TOKEN,
      actionExecutionId: RETRY_RUN,
      since: new Date(START),
    };
    h.pipeline.action.actionExecutionId = RETRY_RUN;
    h.pipeline.action.earlierRuns = [{ actionExecutionId: ACTION_EXECUTION, status: 'Failed' }];
    await h.sweep();
    await settled(h);
    // Two runs of the action in the execution: the found gate is attempt 2.
    const found = { ...KEY, attempt: 2 };
    expect(await h.gate(found)).toMatchObject({ state: 'ACTED', outcome: 'APPROVE' });
    const late = h.approvalStartedEvent();
    late.detail['pipeline-execution-attempt'] = 3.0;
    late.detail['action-execution-id'] = RETRY_RUN;
    const result = await h.approvalStarted(late);
    expect(result.result).toMatchObject({ gate: gateId(found) });
    expect(await h.gate({ ...KEY, attempt: 3 })).toBeUndefined();
    expect(h.results.map((r) => r.token)).toEqual([RETRY_TOKEN]);
  });

  it('an escalated retry decided before its token showed, numbered otherwise: its run is claimed, no second gate or escalation', async () => {
    const h = await waiting({});
    // The third attempt runs the approval a second time; its image cannot be known: it decides ESCALATE at
    // once, before CodePipeline shows the token. The escalation is held for the token (the next sweep sends
    // it), so that whoever answers it is recorded.
    h.pipeline.action.customData = undefined;
    h.pipeline.variables = {};
    useRetryRun(h, undefined);
    const retry = h.approvalStartedEvent();
    retry.detail['pipeline-execution-attempt'] = 3.0;
    retry.detail['action-execution-id'] = RETRY_RUN;
    expect(await h.approvalStarted(retry)).toMatchObject({
      result: { state: 'DECIDED', note: expect.stringMatching(/^escalation held for the approval token/) },
    });
    expect(await h.gate({ ...KEY, attempt: 3 })).toMatchObject({ state: 'DECIDED', outcome: 'ESCALATE' });
    expect(h.messages).toHaveLength(0);
    // Now the token shows; the sweep counts two runs (attempt 2) and finds no gate by that key, opens none,
    // and sends the escalation with the token's hash kept.
    useRetryRun(h, RETRY_TOKEN);
    await h.sweep();
    expect(await gatesOfRun(h, RETRY_RUN)).toEqual([gateId({ ...KEY, attempt: 3 })]);
    expect(h.messages).toHaveLength(1);
    expect(await h.gate({ ...KEY, attempt: 3 })).toMatchObject({
      state: 'ACTED',
      tokenHash: hashToken(RETRY_TOKEN),
    });
  });

  it("moves past a number an earlier run's gate holds: the lost run gets a gate of its own", async () => {
    const h = await waiting({});
    const held = await firstRunClosedAtAttempt2(h);
    expect(held).toMatchObject({ state: 'CLOSED' });
    // Attempt 3 runs it again; that STARTED event is lost. Two runs listed: number 2 is the first run's.
    h.scanner.coverage = SCANNED;
    useRetryRun(h, RETRY_TOKEN, FIRST_RUN);
    await h.sweep();
    expect(await h.gate({ ...KEY, attempt: 3 })).toMatchObject({
      state: 'WAITING',
      actionExecutionId: RETRY_RUN,
    });
    expect(await gatesOfRun(h, RETRY_RUN)).toEqual([gateId({ ...KEY, attempt: 3 })]);
  });

  it("fails, so a person is paged, when every gate key it may use is another run's", async () => {
    const h = await waiting({});
    const held = await firstRunClosedAtAttempt2(h);
    expect(held).toMatchObject({ state: 'CLOSED', actionExecutionId: FIRST_RUN });
    // Every number from the runs' count on is held by that run's gate (the event's attempts ran far ahead).
    const getGate = h.store.getGate.bind(h.store);
    h.store.getGate = async (key) => ((key.attempt ?? 1) >= 2 ? held : getGate(key));
    h.scanner.coverage = SCANNED;
    useRetryRun(h, RETRY_TOKEN, FIRST_RUN);
    await expect(h.sweep()).rejects.toMatchObject({
      causes: [
        expect.objectContaining({
          message: expect.stringMatching(
            /is in progress with no gate, and the 9 gate keys tried are other runs': not opened, left to a person$/,
          ),
        }),
      ],
    });
    expect(await gatesOfRun(h, RETRY_RUN)).toEqual([]);
  });

  it('a late retry event opening its gate while the discovery opens another: the run claim keeps one', async () => {
    const h = await waiting({});
    useRetryRun(h, RETRY_TOKEN);
    const late = h.approvalStartedEvent();
    late.detail['pipeline-execution-attempt'] = 3.0;
    late.detail['action-execution-id'] = RETRY_RUN;
    // The event lands between the discovery's checks and its write: deterministic, not left to timing.
    const create = h.store.createGate.bind(h.store);
    let raced = false;
    h.store.createGate = async (gate, audit) => {
      if (!raced && gate.key.attempt === 2) {
        raced = true;
        await h.approvalStarted(late);
      }
      return create(gate, audit);
    };
    await h.sweep();
    expect(raced).toBe(true);
    expect(await gatesOfRun(h, RETRY_RUN)).toEqual([gateId({ ...KEY, attempt: 3 })]);
    await settled(h);
    expect(h.results.map((r) => r.token)).toEqual([RETRY_TOKEN]);
  });

  it("the end event of a found retry, under the execution's attempt number, closes the found gate", async () => {
    const h = await waiting({});
    useRetryRun(h, RETRY_TOKEN);
    h.scanner.coverage = undefined; // no scan: the found gate waits
    await h.sweep();
    const found = { ...KEY, attempt: 2 };
    expect((await h.gate(found))?.state).toBe('WAITING');
    const ended = h.approvalEndedEvent('ABANDONED');
    ended.detail['pipeline-execution-attempt'] = 3.0;
    ended.detail['action-execution-id'] = RETRY_RUN;
    await h.approvalEnded(ended);
    expect(await h.gate(found)).toMatchObject({ state: 'CLOSED', closure: { state: 'ABANDONED' } });
    expect(await h.gate({ ...KEY, attempt: 3 })).toBeUndefined();
  });

  it("a late STARTED or end event of one run never touches another run's gate that holds its number", async () => {
    const h = await waiting({});
    h.scanner.coverage = undefined; // no scan: the found gates wait
    // Run 1 (the execution's attempt 2) lost its STARTED event; the sweep found it as the first run.
    h.pipeline.stage = { ...h.pipeline.stage, actionExecutionId: FIRST_RUN };
    h.pipeline.action.actionExecutionId = FIRST_RUN;
    await h.sweep();
    expect(await h.gate()).toMatchObject({ state: 'WAITING', actionExecutionId: FIRST_RUN });
    // It ended (its end event held back), run 2 started at attempt 3 and was lost too: found as number 2.
    h.pipeline.action.status = 'Failed';
    useRetryRun(h, RETRY_TOKEN, FIRST_RUN);
    h.clock.advance(MINUTE);
    await h.sweep();
    const second = { ...KEY, attempt: 2 };
    expect(await h.gate(second)).toMatchObject({ state: 'WAITING', actionExecutionId: RETRY_RUN });
    // Run 1's STARTED event, late, numbered by the execution (attempt 2): run 1's gate, not run 2's.
    const late = h.approvalStartedEvent();
    late.detail['pipeline-execution-attempt'] = 2.0;
    late.detail['action-execution-id'] = FIRST_RUN;
    expect((await h.approvalStarted(late)).result).toMatchObject({ gate: gateId(KEY) });
    expect((await h.items()).filter((i) => i.type === 'GATE')).toHaveLength(2);
    // Run 1's end, numbered the same way, closes run 1's gate, not run 2's.
    const ended = h.approvalEndedEvent('FAILED');
    ended.detail['pipeline-execution-attempt'] = 2.0;
    ended.detail['action-execution-id'] = FIRST_RUN;
    await h.approvalEnded(ended);
    const untouched = await h.gate(second);
    expect(untouched?.state).toBe('WAITING');
    expect(untouched?.closure).toBeUndefined();
    expect(await h.gate()).toMatchObject({ closure: { state: 'FAILED' } });
  });

  it('a gate whose event named no run, still open, is not opened again under another number', async () => {
    const h = await waiting({});
    h.scanner.coverage = undefined;
    h.pipeline.stage.token = undefined; // the token not shown yet either: the gate knows neither
    const started = h.approvalStartedEvent();
    delete started.detail['action-execution-id'];
    await h.approvalStarted(started);
    const gate = await h.gate();
    expect(gate?.state).toBe('WAITING');
    expect(gate?.actionExecutionId).toBeUndefined();
    h.pipeline.stage.token = TOKEN;
    await h.sweep();
    const gates = (await h.items()).filter((i) => i.type === 'GATE');
    expect(gates).toHaveLength(1);
  });

  it("a stale gate that names no run, under the number tried, is an earlier run's: the run in progress gets the next number", async () => {
    const h = await waiting({});
    h.scanner.coverage = undefined; // no scan: the gates wait
    // An earlier run's event named no run (nor had its token shown); its gate gave up when that run's
    // execution moved on.
    h.pipeline.stage.token = undefined;
    const started = h.approvalStartedEvent();
    delete started.detail['action-execution-id'];
    await h.approvalStarted(started);
    const earlier = (await h.gate())!;
    expect(earlier.state).toBe('WAITING');
    expect([earlier.actionExecutionId, earlier.tokenHash]).toEqual([undefined, undefined]);
    const stale: Gate = {
      ...earlier,
      state: 'STALE',
      staleReason: 'the execution moved on',
      version: earlier.version + 1,
    };
    expect(await h.store.updateGate(stale, earlier.version)).toBe(true);
    // The run in progress now, its STARTED event lost: taken for the stale gate's, it was skipped at every
    // discovery with nothing said.
    h.pipeline.stage.token = TOKEN;
    await h.sweep();
    expect(await h.gate({ ...KEY, attempt: 2 })).toMatchObject({
      state: 'WAITING',
      actionExecutionId: ACTION_EXECUTION,
    });
    expect((await h.gate())?.state).toBe('STALE');
    expect(await gatesOfRun(h, ACTION_EXECUTION)).toEqual([gateId({ ...KEY, attempt: 2 })]);
  });

  it("a live gate that names no run but holds another token, under the number tried, is another run's: the next number", async () => {
    const h = await waiting({});
    // An earlier run's event named no run; no image to judge: escalated at once with that run's token,
    // left to a person (ACTED: not among the open gates the sweep reads).
    h.pipeline.action.customData = undefined;
    h.pipeline.variables = {};
    h.pipeline.stage.token = RETRY_TOKEN;
    h.pipeline.stage.actionExecutionId = null; // nor did the state (older API answers)
    const started = h.approvalStartedEvent();
    delete started.detail['action-execution-id'];
    await h.approvalStarted(started);
    const earlier = await h.gate();
    expect(earlier).toMatchObject({ state: 'ACTED', tokenHash: hashToken(RETRY_TOKEN) });
    expect(earlier?.actionExecutionId).toBeUndefined();
    // The run in progress now, named, shows another token, its STARTED event lost.
    delete h.pipeline.stage.actionExecutionId;
    h.pipeline.stage.token = TOKEN;
    h.clock.advance(MINUTE);
    await h.sweep();
    expect(await gatesOfRun(h, ACTION_EXECUTION)).toEqual([gateId({ ...KEY, attempt: 2 })]);
  });

  it('an approval in progress whose run is never listed: skipped quietly while the listing may lag, then a failure naming gate and run', async () => {
    // Skipped at every look with an info line, however old, it waited its 7 days with no gate, no metric
    // and no alarm. Discovery's grace (5 minutes) plus the listing's (5 minutes), floored at 15 minutes.
    const h = await waiting({});
    h.pipeline.action.unlisted = true;
    const added = metricsAdded(h);
    for (const minutes of [6, 10, 14]) {
      h.clock.at(minutes * MINUTE);
      await expect(h.sweep()).resolves.toBeDefined();
    }
    expect(added.filter(([name]) => name === 'DiscoveryFailures')).toEqual([]);
    h.clock.at(15 * MINUTE);
    await expect(h.sweep()).rejects.toMatchObject({
      causes: [
        expect.objectContaining({
          message: `discovery: approval ${gateId(KEY)} (run ${ACTION_EXECUTION}) has been in progress since ${START} with no gate, and its execution's ListActionExecutions does not list that run: not opened, left to a person`,
        }),
      ],
    });
    expect(added.filter(([name]) => name === 'DiscoveryFailures')).toEqual([['DiscoveryFailures', 1]]);
    expect(await h.gate()).toBeUndefined();
    // Listed at last: the gate is opened, and nothing fails.
    h.pipeline.action.unlisted = false;
    h.clock.advance(MINUTE);
    await expect(h.sweep()).resolves.toBeDefined();
    expect((await h.gate())?.timeline[0]?.what).toMatch(/^approval found in progress by the sweep/);
  });

  it('an escalation waiting for a person costs discovery two table reads, no CodePipeline call beyond the state', async () => {
    const h = await waiting({});
    h.pipeline.action.customData = undefined;
    h.pipeline.variables = {};
    await h.approvalStarted(); // no image: escalated at once, the approval left to a person
    expect(await h.gate()).toMatchObject({ state: 'ACTED', outcome: 'ESCALATE' });
    const before = h.mocks.codepipeline.commandCalls(ListActionExecutionsCommand).length;
    await h.sweep();
    expect(h.mocks.codepipeline.commandCalls(ListActionExecutionsCommand).length).toBe(before);
    expect((await h.items()).filter((i) => i.type === 'GATE')).toHaveLength(1);
    expect(h.messages).toHaveLength(1);
  });
});

/**
 * The pipeline runs in PARALLEL mode: its state names no execution, the token is the run's
 * externalExecutionId. The stack's action glob names the approval (not its Source action) unless told.
 */
async function waitingInParallel(discovery: Partial<DiscoveryConfig>, minutes = 6): Promise<Harness> {
  const h = await waiting({ actions: [ACTION], ...discovery }, minutes);
  h.pipeline.stage.executionId = undefined;
  h.pipeline.action.externalExecutionId = TOKEN;
  h.pipeline.action.startedAt = new Date(START);
  return h;
}

const OTHER_EXECUTION = 'aaaaaaaa-1234-5678-abcd-12345678abcd';

/** The metrics the harness's functions add from now on, by name. */
function metricsAdded(h: Harness): [string, number][] {
  const added: [string, number][] = [];
  const add = h.runtime.metrics.addMetric.bind(h.runtime.metrics);
  vi.spyOn(h.runtime.metrics, 'addMetric').mockImplementation((name, unit, value) => {
    added.push([name, value]);
    return add(name, unit, value);
  });
  return added;
}

const executionsListed = (h: Harness) =>
  h.mocks.codepipeline.commandCalls(ListPipelineExecutionsCommand).map((c) => c.args[0].input);
const runsListed = (h: Harness) => h.mocks.codepipeline.commandCalls(ListActionExecutionsCommand).length;

describe('discovery in PARALLEL execution mode (the state names no execution)', () => {
  it("lists the pipeline's executions in progress and their runs, and opens the lost approval's gate", async () => {
    const h = await waitingInParallel({ pipelines: [PIPELINE] });
    const added = metricsAdded(h);
    await h.sweep();
    expect(executionsListed(h)).toEqual([{ pipelineName: PIPELINE, maxResults: 100 }]);
    const gate = await h.gate();
    expect(gate).toMatchObject({ key: KEY, actionExecutionId: ACTION_EXECUTION, startedAt: START });
    expect(gate?.timeline[0]?.what).toMatch(/^approval found in progress by the sweep/);
    await settled(h);
    // The gate answers with the run's externalExecutionId: the token of a PARALLEL-mode approval.
    expect(h.results.map((r) => [r.token, r.result?.status])).toEqual([[TOKEN, 'Approved']]);
    expect(added.filter(([name]) => name === 'ApprovalsFound')).toEqual([['ApprovalsFound', 1]]);
    // Decided and closed: swept again, nothing is opened twice.
    h.clock.advance(MINUTE);
    await h.sweep();
    expect(h.results).toHaveLength(1);
  });

  it("leaves a run younger than the grace period to its event, by the run's own start time", async () => {
    const h = await waitingInParallel({ pipelines: [PIPELINE] });
    h.pipeline.action.startedAt = new Date(h.clock.now().getTime() - 2 * MINUTE);
    await h.sweep();
    expect(await h.gate()).toBeUndefined();
    h.clock.advance(4 * MINUTE);
    await h.sweep();
    expect((await h.gate())?.state).toBe('WAITING');
  });

  it('an approval whose gate is open is known by it, not opened again; executions no longer in progress are not listed', async () => {
    // The same waiting gate swept with discovery on and off: discovery lists the execution's runs once
    // (only they say which run waits) and opens nothing.
    const runsOfSweep = async (discovery: boolean): Promise<number> => {
      const h = await waitingInParallel({ pipelines: [PIPELINE], everyMinutes: discovery ? 1 : 0 });
      h.scanner.coverage = undefined; // no scan yet: the event's gate waits
      await h.approvalStarted();
      expect((await h.gate())?.state).toBe('WAITING');
      const before = runsListed(h);
      await h.sweep();
      expect(executionsListed(h)).toHaveLength(discovery ? 1 : 0);
      expect((await h.items()).filter((i) => i.type === 'GATE')).toHaveLength(1);
      return runsListed(h) - before;
    };
    expect(await runsOfSweep(true)).toBe((await runsOfSweep(false)) + 1);

    const done = await waitingInParallel({ pipelines: [PIPELINE] });
    done.pipeline.executions = [
      { executionId: EXECUTION, status: 'Succeeded', startTime: new Date(START) },
      { executionId: OTHER_EXECUTION, status: 'Failed', startTime: new Date(START) },
    ];
    await done.sweep();
    expect(runsListed(done)).toBe(0);
    expect(await done.gate()).toBeUndefined();
  });

  it('looks through every page of executions that started within the lookback, and no further', async () => {
    const h = await waitingInParallel({ pipelines: [PIPELINE] });
    const old = new Date(h.clock.now().getTime() - PARALLEL_LOOKBACK_MS - MINUTE);
    h.pipeline.executions = [
      { executionId: OTHER_EXECUTION, status: 'Succeeded', startTime: new Date(START) },
      { executionId: EXECUTION, status: 'InProgress', startTime: new Date(START) },
      { executionId: '00000000-0000-4000-8000-000000000001', status: 'InProgress', startTime: old },
      { executionId: '00000000-0000-4000-8000-000000000002', status: 'InProgress', startTime: old },
    ];
    await h.sweep();
    // A page each: the third holds nothing recent and ends the listing.
    expect(executionsListed(h)).toHaveLength(3);
    expect((await h.gate())?.state).toBe('WAITING');
    expect(runsListed(h)).toBeGreaterThan(0);
    // Older than the lookback, on a page read: still in progress, so looked at; the next page is not read.
    const looked = h.mocks.codepipeline
      .commandCalls(ListActionExecutionsCommand)
      .map((c) => c.args[0].input.filter?.pipelineExecutionId);
    expect(new Set(looked)).toEqual(new Set([EXECUTION, '00000000-0000-4000-8000-000000000001']));
  });

  it('finds the approval of an execution that is stopping (stop and wait lets it finish)', async () => {
    const h = await waitingInParallel({ pipelines: [PIPELINE] });
    h.pipeline.executions = [{ executionId: EXECUTION, status: 'Stopping', startTime: new Date(START) }];
    await h.sweep();
    expect((await h.gate())?.state).toBe('WAITING');
  });

  it("one execution's runs that cannot be read do not hide the others', and fail the sweep", async () => {
    const h = await waitingInParallel({ pipelines: [PIPELINE] });
    h.pipeline.executions = [
      { executionId: OTHER_EXECUTION, status: 'InProgress', startTime: new Date(START) },
      { executionId: EXECUTION, status: 'InProgress', startTime: new Date(START) },
    ];
    h.fail('ListActionExecutions', pipelineThrottled, {
      when: (input) => (input.filter as Json | undefined)?.pipelineExecutionId === OTHER_EXECUTION,
    });
    const warned = vi.spyOn(h.runtime.logger, 'warn');
    await expect(h.sweep()).rejects.toThrow(
      /^discovery: 1 failure\(s\), so not every lost approval could be looked for or opened; the first: .*Rate exceeded/,
    );
    expect((await h.gate())?.state).toBe('WAITING');
    // The line names the execution only through the gates it could hold: the logs' rule for gate keys.
    const line = warned.mock.calls.find(([message]) =>
      String(message).startsWith("discovery: reading an execution's"),
    );
    expect(line?.[1]).toEqual({
      gates: [{ gate: gateId({ ...KEY, executionId: OTHER_EXECUTION }) }],
      error: expect.stringMatching(/Rate exceeded/),
    });
  });

  it('a pipeline with more recent executions than one look lists: what was listed is looked through, and the sweep fails', async () => {
    const h = await waitingInParallel({ pipelines: [PIPELINE] });
    const added = metricsAdded(h);
    h.pipeline.executions = [
      { executionId: EXECUTION, status: 'InProgress', startTime: new Date(START) },
      ...Array.from({ length: EXECUTION_PAGES_MAX }, (_, i) => ({
        executionId: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
        status: 'Succeeded',
        startTime: new Date(START),
      })),
    ];
    await expect(h.sweep()).rejects.toThrow(
      /^discovery: 1 failure\(s\), .*; the first: discovery: pipeline .+ has more executions since .+ than one look lists; those past the first 20 were not looked through$/,
    );
    expect((await h.gate())?.state).toBe('WAITING');
    expect(executionsListed(h)).toHaveLength(EXECUTION_PAGES_MAX);
    expect(added.filter(([name]) => name === 'DiscoveryFailures')).toEqual([['DiscoveryFailures', 1]]);
  });

  it("time running short while an execution's runs are listed: the executions left are not listed, counted, and the look fails saying so", async () => {
    // One ListActionExecutions per execution in progress, one after another: a busy pipeline ran on past
    // the sweep's stop until Lambda's timeout cut the invocation, its logs and metrics lost with it.
    const h = await waitingInParallel({ pipelines: [PIPELINE] });
    const added = metricsAdded(h);
    h.pipeline.executions = [
      { executionId: OTHER_EXECUTION, status: 'InProgress', startTime: new Date(START) },
      { executionId: EXECUTION, status: 'InProgress', startTime: new Date(START) },
      {
        executionId: '00000000-0000-4000-8000-000000000001',
        status: 'InProgress',
        startTime: new Date(START),
      },
    ];
    // The first listing takes the invocation's time below the sweep's stop (no failure injected).
    h.fail('ListActionExecutions', pipelineThrottled, {
      when: () => {
        h.remainingMs = 59_000;
        return false;
      },
    });
    const failed = await h.sweep().then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(runsListed(h)).toBe(1);
    expect(failed).toBeInstanceOf(Error);
    expect((failed as Error).message).toMatch(
      /^discovery: 1 failure\(s\), .*; the first: stopped short of the function's timeout: 2 pipeline\(s\), execution\(s\) or approval\(s\) left for the next look$/,
    );
    expect(await h.gate()).toBeUndefined();
    expect(added.filter(([name]) => name === 'DiscoveryFailures')).toEqual([['DiscoveryFailures', 1]]);
    // The next look, with its time, lists them and finds the approval.
    h.heal('ListActionExecutions');
    h.remainingMs = 300_000;
    h.clock.advance(MINUTE);
    await h.sweep();
    expect((await h.gate())?.state).toBe('WAITING');
  });

  it('opens nothing for a run that is not a Manual approval, whatever its name and external id', async () => {
    const h = await waitingInParallel({ pipelines: [PIPELINE] });
    h.pipeline.action.actionTypeId = { category: 'Build', owner: 'AWS', provider: 'CodeBuild', version: '1' };
    await h.sweep();
    expect(runsListed(h)).toBe(1);
    expect(await h.gate()).toBeUndefined();
  });

  it('a list of executions it cannot read fails the sweep, and the next discovery finds the approval', async () => {
    const h = await waitingInParallel({ pipelines: [PIPELINE] });
    const added = metricsAdded(h);
    h.fail('ListPipelineExecutions', pipelineThrottled);
    await expect(h.sweep()).rejects.toThrow(/^discovery: 1 failure\(s\), .*; the first: .*Rate exceeded/);
    expect(added.filter(([name]) => name === 'DiscoveryFailures')).toEqual([['DiscoveryFailures', 1]]);
    expect(await h.gate()).toBeUndefined();
    h.heal('ListPipelineExecutions');
    h.clock.advance(MINUTE);
    await h.sweep();
    expect((await h.gate())?.state).toBe('WAITING');
  });

  it("goes by the pipeline's mode: a PARALLEL pipeline whose state still names an execution from before is listed", async () => {
    // The stack's wildcard: ListPipelines gives the pipeline's mode.
    const h = await waitingInParallel({});
    h.pipeline.executionMode = 'PARALLEL';
    h.pipeline.stage = {
      executionId: OTHER_EXECUTION,
      status: 'Succeeded',
      token: undefined,
      actionExecutionId: '0b9e6a1c-0000-4000-8000-0000000000ff',
      since: new Date(START),
    };
    await h.sweep();
    expect(listed(h)).toBeGreaterThan(0);
    expect(executionsListed(h)).toEqual([{ pipelineName: PIPELINE, maxResults: 100 }]);
    expect(await h.gate()).toMatchObject({ key: KEY, actionExecutionId: ACTION_EXECUTION, startedAt: START });
    await settled(h);
    expect(h.results.map((r) => [r.token, r.result?.status])).toEqual([[TOKEN, 'Approved']]);
  });

  it('a mode not known (a literal glob the list lacks, or a summary without one) lists only for a stage whose state names no execution', async () => {
    // A literal glob the list lacks: no mode; a stage naming an execution is read from the state alone.
    const literal = await waitingInParallel({ pipelines: [PIPELINE] });
    literal.pipelineNames.splice(0, literal.pipelineNames.length, 'billing-api');
    literal.pipeline.executionMode = 'PARALLEL';
    literal.pipeline.stage = { executionId: OTHER_EXECUTION, status: 'Succeeded', token: undefined };
    await literal.sweep();
    expect(executionsListed(literal)).toEqual([]);
    // Listed, a literal glob's pipeline has its mode: PARALLEL lists the executions whatever the state names.
    const known = await waitingInParallel({ pipelines: [PIPELINE] });
    known.pipeline.executionMode = 'PARALLEL';
    known.pipeline.stage = { executionId: OTHER_EXECUTION, status: 'Succeeded', token: undefined };
    await known.sweep();
    expect(executionsListed(known)).toHaveLength(1);
    expect((await known.gate())?.state).toBe('WAITING');
    // A summary without a mode, the stage naming no execution: listed, as PARALLEL mode would show it.
    const unknown = await waitingInParallel({});
    unknown.pipeline.executionMode = null;
    await unknown.sweep();
    expect(executionsListed(unknown)).toHaveLength(1);
    expect((await unknown.gate())?.state).toBe('WAITING');
  });

  it('a SUPERSEDED or QUEUED pipeline whose gated stage names no execution: only executions left from PARALLEL mode are looked through, and a busy listing does not fail', async () => {
    for (const mode of ['SUPERSEDED', 'QUEUED'] as const) {
      const h = await waitingInParallel({});
      h.pipeline.executionMode = mode;
      // More than one look lists, all of the pipeline's own mode: their runs are not read (their approvals
      // show in the state), and the listing cut short fails nothing: no approval of PARALLEL mode can wait.
      h.pipeline.executions = Array.from({ length: EXECUTION_PAGES_MAX + 1 }, (_, i) => ({
        executionId: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
        status: 'InProgress',
        startTime: new Date(START),
      }));
      await expect(h.sweep()).resolves.toBeDefined();
      expect(executionsListed(h).length).toBeGreaterThan(0);
      expect(runsListed(h)).toBe(0);
      expect(await h.gate()).toBeUndefined();
    }
  });

  it('a pipeline switched from PARALLEL to SUPERSEDED: an approval of a PARALLEL execution still waiting is found', async () => {
    // The state shows the former mode's (AWS: "Pipelines changed from PARALLEL mode will display a previous
    // execution mode"): nothing of the execution that waits.
    const h = await waitingInParallel({});
    h.pipeline.executionMode = 'SUPERSEDED';
    h.pipeline.executions = [
      { executionId: EXECUTION, status: 'InProgress', startTime: new Date(START), executionMode: 'PARALLEL' },
    ];
    await h.sweep();
    const gate = await h.gate();
    expect(gate).toMatchObject({ key: KEY, actionExecutionId: ACTION_EXECUTION });
    expect(gate?.timeline[0]?.what).toMatch(/^approval found in progress by the sweep/);
  });
});
