import {
  ApprovalAlreadyCompletedException,
  PutApprovalResultCommand,
  type PutApprovalResultCommandInput,
} from '@aws-sdk/client-codepipeline';
import type { Finding as InspectorFinding } from '@aws-sdk/client-inspector2';
import { describe, expect, it, vi } from 'vitest';
import { DEFAULT_CONFIG, hashToken } from '../shared/gate/gate.js';
import {
  ACTION_EXECUTION,
  cleanFindings,
  createHarness,
  EXECUTION,
  exampleFindings,
  type Harness,
  TOKEN,
  TOLLGATE_IDENTITY,
  useLocalDynamo,
} from './gate-harness.js';

/*
 * The gate's life across invocations that lose what they did (a result whose answer never came back, an
 * action that could not be recorded), learn their run late, or read what they cannot parse.
 */

const dynamo = useLocalDynamo();
const setup = () => createHarness(dynamo());

const SECOND = 1_000;
const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;
const SCANNED = { statusCode: 'ACTIVE', reason: 'SUCCESSFUL' } as const;
const RETRY_RUN = '0d9c8b7a-6f5e-4d3c-2b1a-0f9e8d7c6b5a';
const RETRY_TOKEN = '5e6f7a8b-573f-4ea7-a67e-0123456789ab';

const putResults = (h: Harness): PutApprovalResultCommandInput[] =>
  h.mocks.codepipeline.commandCalls(PutApprovalResultCommand).map((c) => c.args[0].input);

const timedOut = () =>
  Object.assign(new Error('Connection timed out after 20000 ms'), { name: 'TimeoutError' });

/** The action records of the audit trail. */
async function actionRecords(h: Harness): Promise<{ action: { answer: string; status: string } }[]> {
  return (await h.items())
    .map((i) => i.record as { type?: string; action: { answer: string; status: string } } | undefined)
    .filter((r) => r?.type === 'action') as { action: { answer: string; status: string } }[];
}

/** The approval stops waiting, its end event lost: the state and the run both say so, or the state lags. */
function approvalOver(h: Harness, stateLags: boolean): void {
  h.pipeline.action.status = 'Succeeded';
  h.pipeline.stage.status = stateLags ? 'InProgress' : 'Succeeded';
}

/**
 * The stub's PutApprovalResult, but the first call lands (the approval completes) and every attempt of the
 * invocation times out: the adapter's retries exhaust, and nothing tells the gate the result went out.
 */
function everyAnswerLost(h: Harness, stateLags: boolean): { calls: () => number } {
  let calls = 0;
  h.mocks.codepipeline.on(PutApprovalResultCommand).callsFake(async () => {
    calls++;
    if (calls === 1) {
      approvalOver(h, stateLags);
      throw timedOut();
    }
    if (calls <= 3) throw timedOut();
    throw new ApprovalAlreadyCompletedException({
      message: 'The approval action has already been approved or rejected',
      $metadata: { httpStatusCode: 400 },
    });
  });
  return { calls: () => calls };
}

/** A decision whose every send was throttled: refused before it went out, so never in doubt. */
async function sendThrottled(): Promise<Harness> {
  const h = await setup();
  h.fail('PutApprovalResult', () =>
    Object.assign(new Error('Rate exceeded'), {
      name: 'ThrottlingException',
      $metadata: { httpStatusCode: 429 },
    }),
  );
  await h.approvalStarted();
  await expect(h.scanFinished()).rejects.toThrow();
  return h;
}

/**
 * A decision whose result CodePipeline accepted while every write recording it (the gate's move to ACTED)
 * failed: the gate is left DECIDED under its lease. `update` writes past the failure; `recover` ends it.
 */
async function acceptedButUnrecorded() {
  const h = await setup();
  const update = h.store.updateGate.bind(h.store);
  let down = true;
  vi.spyOn(h.store, 'updateGate').mockImplementation(async (gate, version, audit) => {
    if (down && gate.state === 'ACTED')
      throw Object.assign(new Error('DynamoDB down'), { name: 'InternalServerError' });
    return update(gate, version, audit);
  });
  await h.approvalStarted();
  await expect(h.scanFinished()).rejects.toThrow();
  return {
    h,
    update,
    recover: () => {
      down = false;
    },
  };
}

describe('a result that landed with nothing recorded of it', () => {
  it.each([
    ['the state still shows it waiting: sent again, CodePipeline says it is completed', true],
    ['the state shows it over', false],
  ] as const)(
    'every attempt of the send timed out, the first having landed (%s): ACTED as perhaps Tollgate’s own result, never "someone else", never STALE',
    async (_, stateLags) => {
      const h = await setup();
      const { calls } = everyAnswerLost(h, stateLags);
      await h.approvalStarted();
      await expect(h.scanFinished()).rejects.toThrow();
      expect(calls()).toBe(3);
      const failed = await h.gate();
      expect(failed?.state).toBe('DECIDED');
      expect(failed?.actingUntil).toBeUndefined(); // given back: nothing here says the result went out

      h.clock.advance(MINUTE);
      await h.sweep();
      const gate = await h.gate();
      expect(gate?.state).toBe('ACTED');
      expect(gate?.staleReason).toBeUndefined();
      expect(gate?.timeline.at(-1)?.what).toMatch(/an earlier invocation may have sent Approved/);
      expect(gate?.timeline.at(-1)?.what).not.toMatch(/someone else; nothing sent/);
      const actions = await actionRecords(h);
      expect(actions.map((r) => r.action)).toEqual([
        expect.objectContaining({ status: 'Approved', answer: 'completed-after-lost-answer' }),
      ]);
      // Never another result than the decision's.
      expect(new Set(putResults(h).map((r) => r.result?.status))).toEqual(new Set(['Approved']));
      expect(putResults(h)).toHaveLength(stateLags ? 4 : 3);

      // CloudTrail's record of the first call names Tollgate: the result is the approval's, not a borrowed role.
      await h.approvalEnded(h.cloudTrailEvent({ identity: TOLLGATE_IDENTITY, status: 'Approved' }));
      await h.approvalEnded(h.approvalEndedEvent('SUCCEEDED'));
      expect(await h.gate()).toMatchObject({
        state: 'CLOSED',
        approvalResult: { status: 'Approved' },
        reviewer: { tollgate: true },
      });
    },
  );

  it('accepted, then every write recording it failed: the sweep past the lease records the action (ACTED), not STALE', async () => {
    const { h, recover } = await acceptedButUnrecorded();
    expect(h.results).toHaveLength(1); // it went out
    expect((await h.gate())?.state).toBe('DECIDED');

    // The approval ended by that result; its end event is late. The store recovers.
    recover();
    h.clock.advance(DEFAULT_CONFIG.leaseMs + MINUTE);
    await h.sweep();
    const gate = await h.gate();
    expect(gate?.state).toBe('ACTED');
    expect(gate?.staleReason).toBeUndefined();
    expect(gate?.timeline.map((t) => t.what)).toContainEqual(expect.stringMatching(/lease ran out/));
    expect(gate?.timeline.at(-1)?.what).toMatch(
      /^the approval is over \(.*Succeeded.*\); nothing sent, and an earlier invocation may have sent Approved/,
    );
    expect((await actionRecords(h)).map((r) => r.action)).toEqual([
      expect.objectContaining({ status: 'Approved', answer: 'completed-after-lost-answer' }),
    ]);
    expect(putResults(h)).toHaveLength(1);
  }, 30_000);

  it('a send refused before it went out, then the approval answered by a person: recorded as perhaps either, sent once more at most, the same result', async () => {
    // The port cannot say which failures could not have landed: a failed send is in doubt, and the record
    // says "by that result or otherwise", which CloudTrail's record settles.
    const h = await setup();
    h.fail('PutApprovalResult', timedOut, { times: 3 });
    await h.approvalStarted();
    await expect(h.scanFinished()).rejects.toThrow();
    approvalOver(h, true);
    h.heal();
    h.clock.advance(MINUTE);
    await h.sweep();
    expect((await actionRecords(h)).map((r) => r.action.answer)).toEqual(['completed-after-lost-answer']);
    const person = `arn:aws:sts::123456789012:assumed-role/SecurityEngineer/alice`;
    await h.approvalEnded(h.cloudTrailEvent({ identity: person, status: 'Approved' }));
    const gate = await h.gate();
    expect(gate?.reviewer).toMatchObject({ identity: person, tollgate: false });
    expect(gate?.approvalResult).toBeUndefined();
  });
});

describe('a result in doubt found completed on a re-send', () => {
  it("keeps the token's hash, so CloudTrail's record of the earlier call finds the gate (not a borrowed role)", async () => {
    const { h, update, recover } = await acceptedButUnrecorded();
    recover();
    // A gate that never kept the token's hash (decided while the state could not be read).
    const decided = (await h.gate())!;
    await update({ ...decided, tokenHash: undefined, version: decided.version + 1 }, decided.version);
    // The state lags: the token still shows, the re-send hears the approval is completed.
    h.pipeline.stage.status = 'InProgress';
    h.clock.advance(DEFAULT_CONFIG.leaseMs + MINUTE);
    await h.sweep();
    const gate = await h.gate();
    expect(gate?.state).toBe('ACTED');
    expect(gate?.tokenHash).toBe(hashToken(TOKEN));
    await h.approvalEnded(h.cloudTrailEvent({ identity: TOLLGATE_IDENTITY, status: 'Approved' }));
    expect((await h.gate())?.reviewer).toMatchObject({ identity: TOLLGATE_IDENTITY, tollgate: true });
  }, 30_000);
});

describe('what CloudTrail says settles the doubt', () => {
  const person = 'arn:aws:sts::123456789012:assumed-role/SecurityEngineer/alice';

  it("a send in doubt, then a person's answer recorded: the approval found completed is the person's, not perhaps Tollgate's", async () => {
    const h = await setup();
    h.fail('PutApprovalResult', timedOut, { times: 3 });
    await h.approvalStarted();
    await expect(h.scanFinished()).rejects.toThrow();
    expect((await h.gate())?.resultInDoubt).toBeDefined();
    h.heal();
    // Not landed after all: a person rejected, and CloudTrail's record came before the end event.
    approvalOver(h, true);
    h.pipeline.action.status = 'Failed';
    await h.approvalEnded(h.cloudTrailEvent({ identity: person, status: 'Rejected' }));
    h.clock.advance(MINUTE);
    await h.sweep();
    // The state still shows the token: sent once more, and refused as already completed, by someone else.
    expect((await actionRecords(h)).map((r) => r.action)).toEqual([
      expect.objectContaining({ status: 'Approved', answer: 'already-completed' }),
    ]);
  });

  it("a STALE write that loses to CloudTrail's reviewer is made again under the lease, never left to run out", async () => {
    const h = await sendThrottled();
    h.heal();
    // A person rejects; the end event is late. CloudTrail's record lands while the sweep marks the gate STALE.
    approvalOver(h, false);
    h.pipeline.action.status = 'Failed';
    h.pipeline.stage.status = 'Failed';
    const update = h.store.updateGate.bind(h.store);
    let raced = false;
    vi.spyOn(h.store, 'updateGate').mockImplementation(async (gate, version, audit) => {
      if (!raced && gate.state === 'STALE') {
        raced = true;
        await h.approvalEnded(h.cloudTrailEvent({ identity: person, status: 'Rejected' }));
      }
      return update(gate, version, audit);
    });
    h.clock.advance(MINUTE);
    await h.sweep();
    expect(raced).toBe(true);
    const gate = await h.gate();
    expect(gate).toMatchObject({ state: 'STALE', reviewer: { identity: person } });
    expect(gate?.actingUntil).toBeUndefined();
    // Long after: nothing is recorded as Tollgate's result.
    h.clock.advance(DEFAULT_CONFIG.leaseMs + MINUTE);
    await h.sweep();
    expect(await actionRecords(h)).toEqual([]);
    expect((await h.gate())?.resultInDoubt).toBeUndefined();
  });
});

describe('a send refused before it went out', () => {
  it("throttled on every attempt, then the approval answered by a person: recorded as someone else's, not in doubt", async () => {
    const h = await sendThrottled();
    expect((await h.gate())?.resultInDoubt).toBeUndefined();
    approvalOver(h, true);
    h.heal();
    h.clock.advance(MINUTE);
    await h.sweep();
    expect((await actionRecords(h)).map((r) => r.action.answer)).toEqual(['already-completed']);
  });
});

describe('a gate that learns its run late', () => {
  /** A STARTED event that names no run, and the token not shown yet: the gate opens knowing neither. */
  async function openedBlind(h: Harness, stateNamesRun: boolean): Promise<void> {
    const event = h.approvalStartedEvent();
    delete event.detail['action-execution-id'];
    h.pipeline.stage.token = undefined;
    if (!stateNamesRun) h.pipeline.stage.actionExecutionId = null;
    await h.approvalStarted(event);
    const opened = await h.gate();
    expect(opened?.state).toBe('WAITING');
    expect(opened?.tokenHash).toBeUndefined();
    expect(opened?.actionExecutionId).toBeUndefined();
    // The token shows; the sweep learns it.
    h.pipeline.stage.token = TOKEN;
    h.clock.advance(MINUTE);
    await h.sweep();
    expect((await h.gate())?.tokenHash).toBe(hashToken(TOKEN));
  }

  /** A person rejects the gate's run, its end event is lost, and the stage is retried: a new run, a new token. */
  function rejectedAndRetried(h: Harness, stateNamesRun: boolean): void {
    h.pipeline.stage = {
      executionId: EXECUTION,
      status: 'InProgress',
      token: RETRY_TOKEN,
      actionExecutionId: stateNamesRun ? RETRY_RUN : null,
    };
    h.pipeline.action.actionExecutionId = RETRY_RUN;
    h.pipeline.action.earlierRuns = [{ actionExecutionId: ACTION_EXECUTION, status: 'Failed' }];
  }

  it('the token learnt with its run: the retried stage’s run is not the gate’s; STALE, nothing sent to it', async () => {
    const h = await setup();
    await openedBlind(h, true);
    expect((await h.gate())?.actionExecutionId).toBe(ACTION_EXECUTION);
    rejectedAndRetried(h, true);
    h.scanner.coverage = SCANNED;
    h.clock.advance(MINUTE);
    await h.scanFinished();
    const gate = await h.gate();
    expect(gate?.state).toBe('STALE');
    expect(await h.decision()).toBeUndefined();
    expect(putResults(h)).toHaveLength(0);
  });

  it('a state that names no run: the token, changed, says it is another run; STALE, nothing sent to it', async () => {
    const h = await setup();
    await openedBlind(h, false);
    rejectedAndRetried(h, false);
    h.scanner.coverage = SCANNED;
    h.clock.advance(MINUTE);
    await h.scanFinished();
    const gate = await h.gate();
    expect(gate).toMatchObject({
      state: 'STALE',
      staleReason: "the approval's token changed: another run of the action",
    });
    expect(await h.decision()).toBeUndefined();
    expect(putResults(h)).toHaveLength(0);
  });

  it('decided before the retry, acted on after it: the changed token is never sent a result', async () => {
    const h = await setup();
    await openedBlind(h, false);
    // Decided, and its send failed before going out (throttled): the sweep acts again later.
    h.fail('PutApprovalResult', () =>
      Object.assign(new Error('Rate exceeded'), {
        name: 'ThrottlingException',
        $metadata: { httpStatusCode: 429 },
      }),
    );
    h.scanner.coverage = SCANNED;
    await expect(h.scanFinished()).rejects.toThrow();
    expect((await h.gate())?.state).toBe('DECIDED');
    const tries = putResults(h).length;
    h.heal();
    rejectedAndRetried(h, false);
    h.clock.advance(MINUTE);
    await h.sweep();
    expect(putResults(h).slice(tries)).toHaveLength(0);
    expect(putResults(h).every((r) => r.token === TOKEN)).toBe(true);
    expect((await h.gate())?.state).not.toBe('DECIDED');
  });
});

describe('a stored scan status re-checked against coverage', () => {
  it('stored UNSUPPORTED_OS days ago, scanned now: the findings are read (two reads agree), not "scan incomplete"', async () => {
    const h = await setup();
    await h.scanFinished(h.inspectorScanEvent({ status: 'UNSUPPORTED_OS', counts: null }));
    h.clock.advance(2 * DAY);
    h.scanner.coverage = SCANNED;
    h.scanner.findings = exampleFindings('payments-api.list-findings.json');
    await h.approvalStarted();
    expect(await h.decision()).toBeUndefined();
    expect((await h.gate())?.state).toBe('WAITING');
    h.clock.advance(2 * MINUTE);
    await h.sweep();
    const record = (await h.decision())?.record;
    expect(record?.outcome).toBe('REJECT');
    expect(record?.violations.map((v) => v.rule)).toContain('no-critical');
    expect(record?.counts?.CRITICAL).toBeGreaterThan(0);
  });
});

describe('a finding the reader cannot parse', () => {
  it('a status of a later API (ARCHIVED): decided at once under onError, naming the field and the value', async () => {
    const h = await setup();
    h.scanner.findings = cleanFindings().map(
      (f) => ({ ...f, status: 'ARCHIVED' }) as unknown as InspectorFinding,
    );
    await h.approvalStarted();
    h.clock.advance(SECOND);
    await expect(h.scanFinished()).resolves.toBeDefined();
    const record = (await h.decision())?.record;
    expect(record?.outcome).toBe('ESCALATE');
    expect(record?.violations).toEqual([
      expect.objectContaining({
        rule: 'error',
        description: expect.stringMatching(
          /findings\[0\]\.status: expected a finding status.*; got "ARCHIVED"/,
        ),
      }),
    ]);
  });
});
