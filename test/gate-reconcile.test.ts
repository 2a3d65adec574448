import {
  ListActionExecutionsCommand,
  PipelineExecutionNotFoundException,
} from '@aws-sdk/client-codepipeline';
import { describe, expect, it, vi } from 'vitest';
import { RECONCILE_GIVE_UP_MS, RECONCILE_MS } from '../shared/gate/reconcile.js';
import {
  ACCOUNT,
  createHarness,
  exampleFindings,
  type Harness,
  type HarnessOptions,
  logLines,
  START,
  TOLLGATE_ROLE,
  useLocalDynamo,
} from './gate-harness.js';

/*
 * An ACTED gate whose approval's end event (and CloudTrail's record of who answered) never reached Tollgate:
 * EventBridge delivers "sometimes not at all", and a dead-lettered event may never be redriven. The sweep asks
 * CodePipeline's listing of the gate's run, and closes the gate as the end event would have.
 */

const dynamo = useLocalDynamo();
const MINUTE = 60_000;
const ENGINEER = `arn:aws:sts::${ACCOUNT}:assumed-role/SecurityEngineer/alice`;

function setup(options: HarnessOptions = {}): Promise<Harness> {
  return createHarness(dynamo(), options);
}

/** An escalated gate, ACTED: the policy escalates a fixable HIGH. */
async function escalated(): Promise<Harness> {
  const h = await setup();
  h.scanner.findings = exampleFindings('orders-worker.list-findings.json');
  await h.approvalStarted();
  h.clock.advance(MINUTE);
  await h.scanFinished();
  expect(await h.gate()).toMatchObject({ state: 'ACTED', outcome: 'ESCALATE' });
  return h;
}

/** A person answers in the console; neither the end event nor CloudTrail's record reaches Tollgate. */
function answeredUnseen(h: Harness, status: 'Succeeded' | 'Failed', summary = 'checked with the team'): Date {
  const at = h.clock.now();
  h.pipeline.action.startedAt = new Date(START);
  h.pipeline.action.status = status;
  h.pipeline.stage.status = status;
  h.pipeline.action.updatedBy = ENGINEER;
  h.pipeline.action.updatedAt = at;
  h.pipeline.action.summary = summary;
  return at;
}

/** How many times the functions count `GatesReconciled` from now on (each count is of one gate). */
function reconciledCounts(h: Harness): () => number[] {
  const added: number[] = [];
  const { metrics } = h.runtime;
  const addMetric = metrics.addMetric.bind(metrics);
  vi.spyOn(metrics, 'addMetric').mockImplementation((name, unit, value) => {
    if (name === 'GatesReconciled') added.push(value);
    return addMetric(name, unit, value);
  });
  return () => [...added];
}

function listings(h: Harness): number {
  return h.mocks.codepipeline.commandCalls(ListActionExecutionsCommand).length;
}

function resolutions(items: Record<string, unknown>[]): Record<string, unknown>[] {
  return items
    .map((i) => i.record as { type: string; resolution?: Record<string, unknown> } | undefined)
    .filter((r) => r?.type === 'resolution')
    .map((r) => r!.resolution!);
}

describe('an ACTED gate whose end never came', () => {
  it('is closed by the sweep from its run in the listing, its reviewer named by updatedBy, and recorded', async () => {
    const h = await escalated();
    const reconciled = reconciledCounts(h);
    h.clock.advance(5 * MINUTE);
    const at = answeredUnseen(h, 'Succeeded');

    // Not yet due: the end event and CloudTrail's record usually come within minutes, and are not raced.
    const before = listings(h);
    await h.sweep();
    expect(listings(h)).toBe(before);
    expect((await h.gate())?.state).toBe('ACTED');
    expect(reconciled()).toEqual([]);

    h.clock.advance(RECONCILE_MS);
    await h.sweep();
    // The closure, and the reviewer named: each counted.
    expect(reconciled()).toEqual([1, 1]);
    const gate = await h.gate();
    expect(gate).toMatchObject({
      state: 'CLOSED',
      outcome: 'ESCALATE',
      closure: { state: 'SUCCEEDED', at: at.toISOString() },
      reviewer: {
        identity: ENGINEER,
        status: 'Approved',
        summary: 'checked with the team',
        tollgate: false,
        source: 'listing',
      },
    });
    expect(gate?.reconcileAt).toBeUndefined();
    const recorded = resolutions(await h.items());
    expect(recorded.at(-1)).toMatchObject({
      reviewer: ENGINEER,
      status: 'Approved',
      byTollgate: false,
      source: 'listing',
    });

    // Closed, it left the sweep's index: later sweeps ask nothing.
    const after = listings(h);
    h.clock.advance(RECONCILE_MS);
    await h.sweep();
    expect(listings(h)).toBe(after);
    expect(reconciled()).toEqual([1, 1]);
  });

  it("a late CloudTrail record replaces the listing's reviewer (it says more); the listing never replaces CloudTrail's", async () => {
    const h = await escalated();
    answeredUnseen(h, 'Succeeded');
    h.clock.advance(RECONCILE_MS);
    await h.sweep();
    expect((await h.gate())?.reviewer).toMatchObject({ source: 'listing' });

    await h.approvalEnded(h.cloudTrailEvent());
    const reviewer = (await h.gate())?.reviewer;
    expect(reviewer).toMatchObject({ identity: ENGINEER, type: 'AssumedRole', status: 'Approved' });
    expect(reviewer).not.toHaveProperty('source');
    // Its record is appended, without the listing's mark: records of CloudTrail's reviewers hash as before.
    const last = resolutions(await h.items()).at(-1);
    expect(last).toMatchObject({ reviewer: ENGINEER, status: 'Approved' });
    expect(last).not.toHaveProperty('source');
    // Delivered again, CloudTrail's record changes nothing.
    const version = (await h.gate())?.version;
    await h.approvalEnded(h.cloudTrailEvent());
    expect((await h.gate())?.version).toBe(version);
  });

  it("keeps CloudTrail's reviewer when only the end event was lost", async () => {
    const h = await escalated();
    answeredUnseen(h, 'Failed');
    await h.approvalEnded(h.cloudTrailEvent({ status: 'Rejected' }));
    const reconciled = reconciledCounts(h);
    h.clock.advance(RECONCILE_MS);
    await h.sweep();
    // The closure only: CloudTrail's record named the reviewer.
    expect(reconciled()).toEqual([1]);
    const gate = await h.gate();
    expect(gate).toMatchObject({ state: 'CLOSED', closure: { state: 'FAILED' } });
    expect(gate?.reviewer).toMatchObject({ identity: ENGINEER, type: 'AssumedRole', status: 'Rejected' });
    expect(gate?.reviewer).not.toHaveProperty('source');
  });

  it('an end event arriving after the sweep closed the gate changes nothing', async () => {
    const h = await escalated();
    answeredUnseen(h, 'Succeeded');
    h.clock.advance(RECONCILE_MS);
    await h.sweep();
    const closed = await h.gate();
    await h.approvalEnded(h.approvalEndedEvent('SUCCEEDED'));
    expect((await h.gate())?.version).toBe(closed?.version);
  });

  it('still waiting for a person: asked again later, without growing the gate or its timeline', async () => {
    const h = await escalated();
    const acted = await h.gate();
    const reconciled = reconciledCounts(h);
    for (let i = 0; i < 3; i++) {
      h.clock.advance(RECONCILE_MS);
      await h.sweep();
    }
    expect(reconciled()).toEqual([]);
    const gate = await h.gate();
    expect(gate?.state).toBe('ACTED');
    expect(gate?.timeline).toEqual(acted?.timeline);
    expect(Date.parse(gate!.reconcileAt!)).toBe(h.clock.now().getTime() + RECONCILE_MS);
    // Asked once per due sweep, not on every sweep in between.
    const asked = listings(h);
    h.clock.advance(MINUTE);
    await h.sweep();
    expect(listings(h)).toBe(asked);
  });

  it("Tollgate's own APPROVE, its end and CloudTrail record lost: closed SUCCEEDED, the result recorded as Tollgate's", async () => {
    const h = await setup();
    await h.approvalStarted();
    h.clock.advance(MINUTE);
    await h.scanFinished();
    expect(await h.gate()).toMatchObject({ state: 'ACTED', outcome: 'APPROVE' });
    h.pipeline.action.status = 'Succeeded';
    h.pipeline.stage.status = 'Succeeded';
    // The listing may name the role itself rather than its session.
    h.pipeline.action.updatedBy = `arn:aws:iam::${ACCOUNT}:role/${TOLLGATE_ROLE}`;
    h.clock.advance(RECONCILE_MS);
    await h.sweep();
    expect(await h.gate()).toMatchObject({
      state: 'CLOSED',
      closure: { state: 'SUCCEEDED' },
      reviewer: { status: 'Approved', tollgate: true, source: 'listing' },
    });
  });

  it("Tollgate's own REJECT, its end and CloudTrail record lost: closed FAILED, the rejection recorded as Tollgate's", async () => {
    const h = await setup();
    h.scanner.findings = exampleFindings('payments-api.list-findings.json');
    await h.approvalStarted();
    h.clock.advance(MINUTE);
    await h.scanFinished();
    expect(await h.gate()).toMatchObject({ state: 'ACTED', outcome: 'REJECT' });
    h.pipeline.action.status = 'Failed';
    h.pipeline.stage.status = 'Failed';
    h.pipeline.action.updatedBy = `arn:aws:sts::${ACCOUNT}:assumed-role/${TOLLGATE_ROLE}/tollgate`;
    h.clock.advance(RECONCILE_MS);
    await h.sweep();
    expect(await h.gate()).toMatchObject({
      state: 'CLOSED',
      closure: { state: 'FAILED' },
      reviewer: { status: 'Rejected', tollgate: true, source: 'listing' },
    });
  });

  it("Tollgate's own REJECT whose end came before its action was recorded: still asked about, and named", async () => {
    const h = await setup();
    h.scanner.findings = exampleFindings('payments-api.list-findings.json');
    h.onApprovalResult = async () => {
      h.onApprovalResult = undefined;
      h.pipeline.action.status = 'Failed';
      h.pipeline.stage.status = 'Failed';
      h.pipeline.action.updatedBy = `arn:aws:sts::${ACCOUNT}:assumed-role/${TOLLGATE_ROLE}/tollgate`;
      await h.approvalEnded(h.approvalEndedEvent('FAILED'));
    };
    await h.approvalStarted();
    h.clock.advance(MINUTE);
    await h.scanFinished();
    const closed = await h.gate();
    expect(closed).toMatchObject({
      state: 'CLOSED',
      closure: { state: 'FAILED' },
      approvalResult: { status: 'Rejected' },
    });
    expect(closed?.reconcileAt).toBeDefined();
    h.clock.advance(RECONCILE_MS);
    await h.sweep();
    expect((await h.gate())?.reviewer).toMatchObject({
      status: 'Rejected',
      tollgate: true,
      source: 'listing',
    });
  });

  it('a pipeline deleted since: its listing is empty, and the asking ends at once, saying why', async () => {
    const h = await escalated();
    h.mocks.codepipeline.on(ListActionExecutionsCommand).resolves({ actionExecutionDetails: [] });
    h.clock.advance(RECONCILE_MS);
    await h.sweep();
    const gate = await h.gate();
    expect(gate?.endUnknown).toContain('CodePipeline lists no run of its execution');
    expect(gate?.reconcileAt).toBeUndefined();
  });

  it("an escalation approved under Tollgate's role pages once, though the listing names the role and CloudTrail its session", async () => {
    const h = await escalated();
    answeredUnseen(h, 'Succeeded');
    h.pipeline.action.updatedBy = `arn:aws:iam::${ACCOUNT}:role/${TOLLGATE_ROLE}`;
    await h.approvalEnded(h.approvalEndedEvent('SUCCEEDED'));
    h.clock.advance(RECONCILE_MS);
    await h.sweep();
    const borrowed = () =>
      logLines.filter((l) => l.includes("PutApprovalResult under Tollgate's role that Tollgate did not send"))
        .length;
    expect(borrowed()).toBe(1);
    await h.approvalEnded(
      h.cloudTrailEvent({ identity: `arn:aws:sts::${ACCOUNT}:assumed-role/${TOLLGATE_ROLE}/someone` }),
    );
    expect((await h.gate())?.reviewer).not.toHaveProperty('source');
    expect(borrowed()).toBe(1);
  });

  it('a run that ended without anyone named (expired) closes without a reviewer', async () => {
    const h = await escalated();
    h.pipeline.action.status = 'Failed';
    h.pipeline.stage.status = 'Failed';
    h.clock.advance(RECONCILE_MS);
    await h.sweep();
    const gate = await h.gate();
    expect(gate).toMatchObject({ state: 'CLOSED', closure: { state: 'FAILED' } });
    expect(gate?.reviewer).toBeUndefined();
    // A failed approval names nobody from the listing (a rejection or its timeout): nothing left to ask.
    expect(gate?.reconcileAt).toBeUndefined();
    const asked = listings(h);
    h.clock.advance(RECONCILE_MS);
    await h.sweep();
    expect(listings(h)).toBe(asked);
  });

  it('an execution CodePipeline no longer has: the gate says its end is unknown and leaves the index', async () => {
    const h = await escalated();
    h.mocks.codepipeline.on(ListActionExecutionsCommand).rejects(
      new PipelineExecutionNotFoundException({
        message: 'no such execution',
        $metadata: { httpStatusCode: 400 },
      }),
    );
    h.clock.advance(RECONCILE_MS);
    await h.sweep();
    const gate = await h.gate();
    expect(gate?.state).toBe('ACTED');
    expect(gate?.endUnknown).toContain('CodePipeline no longer has its execution');
    expect(gate?.reconcileAt).toBeUndefined();
    expect(gate?.timeline.at(-1)?.what).toContain('cannot be known');
    const asked = listings(h);
    h.clock.advance(RECONCILE_MS);
    await h.sweep();
    expect(listings(h)).toBe(asked);
  });

  it('a run never found gives up after any approval would have ended, rather than ask for ever', async () => {
    const h = await escalated();
    h.pipeline.action.unlisted = true;
    h.clock.advance(RECONCILE_MS);
    await h.sweep();
    expect((await h.gate())?.reconcileAt).toBeDefined();
    h.clock.advance(RECONCILE_GIVE_UP_MS);
    await h.sweep();
    expect((await h.gate())?.endUnknown).toContain('its run is not listed');
  });

  it('a listing that fails is asked again later, not at every sweep, and given up on after any approval ends', async () => {
    const h = await escalated();
    answeredUnseen(h, 'Succeeded');
    h.fail('ListActionExecutions', () => new Error('socket hang up'), { times: 100 });
    h.clock.advance(RECONCILE_MS);
    await h.sweep();
    expect((await h.gate())?.state).toBe('ACTED');
    const asked = listings(h);
    h.clock.advance(MINUTE);
    await h.sweep();
    expect(listings(h)).toBe(asked);
    h.heal();
    h.clock.advance(RECONCILE_MS);
    await h.sweep();
    expect((await h.gate())?.state).toBe('CLOSED');
  });

  it('a listing that keeps failing (a pipeline no longer granted) ends the asking 8 days on', async () => {
    const h = await escalated();
    h.fail('ListActionExecutions', () =>
      Object.assign(new Error('denied'), { name: 'AccessDeniedException' }),
    );
    h.clock.advance(RECONCILE_MS);
    await h.sweep();
    h.clock.advance(RECONCILE_GIVE_UP_MS);
    await h.sweep();
    const gate = await h.gate();
    expect(gate?.endUnknown).toContain('its listing still fails');
    expect(gate?.reconcileAt).toBeUndefined();
  });

  it('asks less often as the approval waits: a quarter of its age, at most 6 hours', async () => {
    const h = await escalated();
    h.clock.advance(2 * 24 * 60 * MINUTE);
    await h.sweep();
    const gate = await h.gate();
    expect(Date.parse(gate!.reconcileAt!) - h.clock.now().getTime()).toBe(6 * 60 * MINUTE);
  });

  it('names nobody for an abandoned or failed run (a rejection, or a timeout of any length), whatever updatedBy says', async () => {
    for (const [status, minutes] of [
      ['Abandoned', 0],
      ['Failed', 60], // an approval whose action times out after an hour
      ['Failed', 7 * 24 * 60],
    ] as const) {
      const h = await escalated();
      h.pipeline.action.startedAt = new Date(START);
      h.clock.advance(minutes * MINUTE + RECONCILE_MS);
      h.pipeline.action.status = status;
      h.pipeline.stage.status = status;
      h.pipeline.action.updatedBy = `arn:aws:sts::${ACCOUNT}:assumed-role/Deployer/bob`;
      h.pipeline.action.updatedAt = h.clock.now();
      await h.sweep();
      const gate = await h.gate();
      expect(gate?.state, status).toBe('CLOSED');
      expect(gate?.reviewer, status).toBeUndefined();
    }
  });
});

describe("a gate closed by a person's answer, its CloudTrail record lost", () => {
  it('is asked about until the listing names who answered, then leaves the index', async () => {
    const h = await escalated();
    answeredUnseen(h, 'Succeeded', 'base image checked');
    await h.approvalEnded(h.approvalEndedEvent('SUCCEEDED'));
    const closed = await h.gate();
    expect(closed).toMatchObject({ state: 'CLOSED', closure: { state: 'SUCCEEDED' } });
    expect(closed?.reconcileAt).toBeDefined();

    h.clock.advance(RECONCILE_MS);
    await h.sweep();
    const gate = await h.gate();
    expect(gate?.reviewer).toMatchObject({
      identity: ENGINEER,
      status: 'Approved',
      summary: 'base image checked',
      source: 'listing',
    });
    expect(gate?.reconcileAt).toBeUndefined();
    expect(resolutions(await h.items()).at(-1)).toMatchObject({ reviewer: ENGINEER, status: 'Approved' });
    const asked = listings(h);
    h.clock.advance(RECONCILE_MS);
    await h.sweep();
    expect(listings(h)).toBe(asked);
  });

  it("CloudTrail's record in time: nothing is left to ask", async () => {
    const h = await escalated();
    answeredUnseen(h, 'Succeeded');
    await h.approvalEnded(h.approvalEndedEvent('SUCCEEDED'));
    await h.approvalEnded(h.cloudTrailEvent());
    expect((await h.gate())?.reconcileAt).toBeUndefined();
    const asked = listings(h);
    h.clock.advance(RECONCILE_MS);
    await h.sweep();
    expect(listings(h)).toBe(asked);
  });

  it('an approval that ended before Tollgate saw it start gets its reviewer from the listing', async () => {
    const h = await setup();
    answeredUnseen(h, 'Succeeded');
    await h.approvalEnded(h.approvalEndedEvent('SUCCEEDED'));
    expect(await h.gate()).toMatchObject({ state: 'CLOSED', startUnseen: true });
    h.clock.advance(RECONCILE_MS);
    await h.sweep();
    expect((await h.gate())?.reviewer).toMatchObject({
      identity: ENGINEER,
      status: 'Approved',
      source: 'listing',
    });
  });

  it('closed by its end while Tollgate was escalating: still asked about, and its reviewer named', async () => {
    const h = await setup();
    h.scanner.findings = exampleFindings('orders-worker.list-findings.json');
    h.onEscalation = async () => {
      h.onEscalation = undefined;
      answeredUnseen(h, 'Succeeded');
      await h.approvalEnded(h.approvalEndedEvent('SUCCEEDED'));
    };
    await h.approvalStarted();
    h.clock.advance(MINUTE);
    await h.scanFinished();
    const closed = await h.gate();
    expect(closed).toMatchObject({ state: 'CLOSED', notifications: 1 });
    expect(closed?.reconcileAt).toBeDefined();
    h.clock.advance(RECONCILE_MS);
    await h.sweep();
    expect((await h.gate())?.reviewer).toMatchObject({ identity: ENGINEER, source: 'listing' });
  });

  it('an abandoned approval has nobody to name, and is not asked about', async () => {
    const h = await escalated();
    h.pipeline.action.status = 'Abandoned';
    await h.approvalEnded(h.approvalEndedEvent('ABANDONED'));
    expect((await h.gate())?.reconcileAt).toBeUndefined();
  });
});

describe('a gate given up STALE while its approval ended unseen', () => {
  /** A person approves in the console while the gate waits for its scan; their end event and record are lost. */
  async function staleUnseen(): Promise<{ h: Harness; at: Date }> {
    const h = await setup();
    h.scanner.findings = exampleFindings('orders-worker.list-findings.json');
    await h.approvalStarted();
    expect((await h.gate())?.state).toBe('WAITING');
    h.clock.advance(MINUTE);
    const at = answeredUnseen(h, 'Succeeded');
    h.clock.advance(MINUTE);
    await h.scanFinished();
    const gate = await h.gate();
    expect(gate).toMatchObject({ state: 'STALE', staleReason: expect.stringContaining('Succeeded') });
    expect(gate?.closure).toBeUndefined();
    return { h, at };
  }

  it('is closed by the sweep from its run: its end and resolution recorded, the person who let it through named', async () => {
    const { h, at } = await staleUnseen();
    expect(h.messages).toEqual([]);
    expect(resolutions(await h.items())).toEqual([]);

    h.clock.advance(RECONCILE_MS);
    await h.sweep();
    const gate = await h.gate();
    expect(gate).toMatchObject({
      state: 'STALE',
      closure: { state: 'SUCCEEDED', at: at.toISOString() },
      reviewer: { identity: ENGINEER, status: 'Approved', tollgate: false, source: 'listing' },
    });
    expect(gate?.reconcileAt).toBeUndefined();
    const recorded = resolutions(await h.items());
    expect(recorded.at(-1)).toMatchObject({ reviewer: ENGINEER, status: 'Approved', source: 'listing' });
    // Nothing was sent for an approval Tollgate never answered.
    expect(h.messages).toEqual([]);
    expect(h.results).toEqual([]);

    const after = listings(h);
    h.clock.advance(6 * 60 * MINUTE);
    await h.sweep();
    expect(listings(h)).toBe(after);
  });

  it('its end event and CloudTrail record in time: nothing is left to ask', async () => {
    const { h } = await staleUnseen();
    await h.approvalEnded(h.approvalEndedEvent('SUCCEEDED'));
    await h.approvalEnded(h.cloudTrailEvent({ identity: ENGINEER, status: 'Approved' }));
    const gate = await h.gate();
    expect(gate).toMatchObject({
      state: 'STALE',
      closure: { state: 'SUCCEEDED' },
      reviewer: { identity: ENGINEER },
    });
    expect(gate?.reconcileAt).toBeUndefined();
    const before = listings(h);
    h.clock.advance(RECONCILE_MS);
    await h.sweep();
    expect(listings(h)).toBe(before);
  });

  it('its end event in time, CloudTrail lost: asked about only for who answered', async () => {
    const { h } = await staleUnseen();
    await h.approvalEnded(h.approvalEndedEvent('SUCCEEDED'));
    expect((await h.gate())?.reconcileAt).toBeDefined();
    const reconciled = reconciledCounts(h);
    h.clock.advance(RECONCILE_MS);
    await h.sweep();
    // The reviewer only: the end event closed it.
    expect(reconciled()).toEqual([1]);
    const gate = await h.gate();
    expect(gate).toMatchObject({ state: 'STALE', reviewer: { identity: ENGINEER, source: 'listing' } });
    // The end's record, then the one naming who answered (as CloudTrail's record would append it).
    const recorded = resolutions(await h.items());
    expect(recorded).toHaveLength(2);
    expect(recorded[0]).not.toHaveProperty('source');
    expect(recorded[1]).toMatchObject({ reviewer: ENGINEER, source: 'listing' });
  });

  it('an execution CodePipeline no longer has: its end is unknown, said so, and the gate leaves the index', async () => {
    const { h } = await staleUnseen();
    h.fail(
      'ListActionExecutions',
      () =>
        new PipelineExecutionNotFoundException({
          message: 'Pipeline execution not found',
          $metadata: { httpStatusCode: 400 },
        }),
    );
    h.clock.advance(RECONCILE_MS);
    await h.sweep();
    const gate = await h.gate();
    expect(gate).toMatchObject({ state: 'STALE', endUnknown: expect.stringContaining('no longer has') });
    expect(gate?.reconcileAt).toBeUndefined();
  });
});
