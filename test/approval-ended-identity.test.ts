import { readFileSync } from 'node:fs';
import type { Context } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { approvalEndedHandler } from '../functions/approval-ended/handler.js';
import { localObservability } from '../functions/common/runtime.js';
import type { ApprovalResultCall, GateClosing } from '../shared/gate/closing.js';

/*
 * Who the approval-ended function names as the reviewer of a PutApprovalResult call, for the userIdentity
 * shapes CloudTrail documents (cloudtrail-event-reference-user-identity): the derived fixture with its
 * userIdentity replaced. Distinct callers must get distinct names: one shared literal would merge them in
 * the audit trail, `--reviewer` and Tollgate Gate Closed.
 */

type Json = Record<string, unknown>;

const FIXTURE = new URL('./fixtures/aws/cloudtrail-put-approval-result.derived.json', import.meta.url);

const context = {
  functionName: 'approval-ended',
  functionVersion: '$LATEST',
  invokedFunctionArn: 'arn:aws:lambda:eu-central-1:123456789012:function:approval-ended',
  memoryLimitInMB: '256',
  awsRequestId: 'c6af9ac6-7b61-11e6-9a41-93e812345678',
  logGroupName: '/aws/lambda/approval-ended',
  logStreamName: 'test',
  getRemainingTimeInMillis: () => 60_000,
} as unknown as Context;

function callWith(userIdentity: unknown): Json {
  const event = JSON.parse(readFileSync(FIXTURE, 'utf8')) as Json;
  (event.detail as Json).userIdentity = userIdentity;
  return event;
}

/** Runs the handler over the event; what it handed the gate (the stub records the call and matches nothing). */
async function reviewerOf(userIdentity: unknown): Promise<ApprovalResultCall> {
  const calls: ApprovalResultCall[] = [];
  const gate = {
    approvalResultCalled: async (e: ApprovalResultCall) => {
      calls.push(e);
      return undefined;
    },
    flush: async () => undefined,
  } as unknown as GateClosing;
  const handler = approvalEndedHandler({ gate, ...localObservability('SILENT') });
  await handler(callWith(userIdentity), context);
  expect(calls).toHaveLength(1);
  return calls[0]!;
}

// As CloudTrail documents a request made on behalf of an IAM Identity Center user: no ARN, no principal id.
const identityCenterUser = (userId: string): Json => ({
  type: 'IdentityCenterUser',
  accountId: '123456789012',
  onBehalfOf: {
    userId,
    identityStoreArn: 'arn:aws:identitystore::123456789012:identitystore/d-9067642ac7',
  },
  credentialId: 'EXAMPLEVHULjJdTUdPJfofVa1sufHDoj7aYcOYcxFVllWR_Whr1fEXAMPLE',
});

const ALICE_SSO = '544894e8-80c1-707f-60e3-3ba6510dfac1';
const BOB_SSO = '9a1c3e5f-7b2d-4f6a-8c0e-2d4f6a8c0e1b';

describe('the reviewer identity of a PutApprovalResult call', () => {
  it('is the ARN of an assumed role, as before', async () => {
    const fixture = (JSON.parse(readFileSync(FIXTURE, 'utf8')) as { detail: Json }).detail.userIdentity;
    const call = await reviewerOf(fixture);
    expect(call.identity).toBe('arn:aws:sts::123456789012:assumed-role/SecurityEngineer/alice');
    expect(call.identityType).toBe('AssumedRole');
  });

  it('names an IAM Identity Center user by its identity store and user id, one per user', async () => {
    const alice = await reviewerOf(identityCenterUser(ALICE_SSO));
    const bob = await reviewerOf(identityCenterUser(BOB_SSO));
    expect(alice.identity).toBe(
      `identitycenter:arn:aws:identitystore::123456789012:identitystore/d-9067642ac7/${ALICE_SSO}`,
    );
    expect(alice.identityType).toBe('IdentityCenterUser');
    expect(bob.identity).not.toBe(alice.identity);
    expect(bob.identity).toContain(BOB_SSO);
  });

  it('names an Identity Center user by its user id alone when CloudTrail gives no identity store', async () => {
    const who = identityCenterUser(ALICE_SSO);
    who.onBehalfOf = { userId: ALICE_SSO };
    expect((await reviewerOf(who)).identity).toBe(`identitycenter:${ALICE_SSO}`);
  });

  it('keeps the ARN of an identity-enhanced role session that also says on whose behalf', async () => {
    const fixture = (JSON.parse(readFileSync(FIXTURE, 'utf8')) as { detail: { userIdentity: Json } }).detail
      .userIdentity;
    const call = await reviewerOf({ ...fixture, onBehalfOf: identityCenterUser(ALICE_SSO).onBehalfOf });
    expect(call.identity).toBe('arn:aws:sts::123456789012:assumed-role/SecurityEngineer/alice');
  });

  it('names an AWS service by its invokedBy, one per service', async () => {
    const codepipeline = await reviewerOf({ type: 'AWSService', invokedBy: 'codepipeline.amazonaws.com' });
    const events = await reviewerOf({ type: 'AWSService', invokedBy: 'events.amazonaws.com' });
    expect(codepipeline.identity).toBe('service:codepipeline.amazonaws.com');
    expect(codepipeline.identityType).toBe('AWSService');
    expect(events.identity).toBe('service:events.amazonaws.com');
  });

  it('says which type of caller it could not name, rather than one shared name', async () => {
    expect((await reviewerOf({ type: 'AWSService' })).identity).toBe('unknown AWSService identity');
    expect((await reviewerOf({ type: 'IdentityCenterUser', accountId: '123456789012' })).identity).toBe(
      'unknown IdentityCenterUser identity',
    );
    // Empty strings name nobody: they fall through like absent fields.
    expect(
      (await reviewerOf({ type: 'AWSService', arn: '', invokedBy: 'codepipeline.amazonaws.com' })).identity,
    ).toBe('service:codepipeline.amazonaws.com');
    expect((await reviewerOf({})).identity).toBe('unknown untyped identity');
  });

  it('reads identity fields of another type as absent: the caller is named by what remains, the record kept', async () => {
    // Needed only when no ARN or principal id names the caller: refused, the record was dead-lettered and the
    // reviewer it names lost with it.
    expect((await reviewerOf({ type: 'AWSService', invokedBy: 42 })).identity).toBe(
      'unknown AWSService identity',
    );
    expect((await reviewerOf({ type: 'IdentityCenterUser', onBehalfOf: { userId: ['x'] } })).identity).toBe(
      'unknown IdentityCenterUser identity',
    );
    expect((await reviewerOf({ type: 'IdentityCenterUser', onBehalfOf: 'alice' })).identity).toBe(
      'unknown IdentityCenterUser identity',
    );
    // A store of another type is dropped, the user id kept.
    expect(
      (
        await reviewerOf({
          type: 'IdentityCenterUser',
          onBehalfOf: { userId: ALICE_SSO, identityStoreArn: null },
        })
      ).identity,
    ).toBe(`identitycenter:${ALICE_SSO}`);
    const fixture = (JSON.parse(readFileSync(FIXTURE, 'utf8')) as { detail: { userIdentity: Json } }).detail
      .userIdentity;
    expect((await reviewerOf({ ...fixture, invokedBy: { x: 1 }, onBehalfOf: [] })).identity).toBe(
      'arn:aws:sts::123456789012:assumed-role/SecurityEngineer/alice',
    );
  });

  it('refuses an ARN or principal id of another type: the event is malformed (retried, then dead-lettered)', async () => {
    const handler = approvalEndedHandler({
      gate: { flush: async () => undefined } as unknown as GateClosing,
      ...localObservability('SILENT'),
    });
    const malformed = /an event it must handle does not have the expected shape/;
    await expect(handler(callWith({ type: 'AssumedRole', arn: 42 }), context)).rejects.toThrow(malformed);
    await expect(handler(callWith({ type: 'IAMUser', principalId: ['x'] }), context)).rejects.toThrow(
      malformed,
    );
  });
});
