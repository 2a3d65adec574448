import { PublishCommand, SNSClient, ThrottledException } from '@aws-sdk/client-sns';
import { mockClient } from 'aws-sdk-client-mock';
import { describe, expect, it } from 'vitest';
import { SnsNotifier } from '../adapters/aws/sns.js';
import { exampleEscalation } from '../shared/gate/escalation.example.js';
import { createHarness, exampleFindings, type Harness, logLines, useLocalDynamo } from './gate-harness.js';

/*
 * An escalation whose Publish attempt timed out may have been delivered all the same (SNS standard topics take
 * no deduplication id): the adapter says so, and the gate's record does not claim one message, or none.
 */

const TOPIC = 'arn:aws:sns:eu-central-1:123456789012:tollgate-escalations';
const MINUTE = 60_000;
const retry = { attempts: 3, baseMs: 1, maxDelayMs: 2, sleep: async () => {} };

/** @smithy/node-http-handler's request timeout: the request went out, its answer did not come. */
const requestTimedOut = () =>
  Object.assign(
    new Error(
      '@smithy/node-http-handler - the request socket timed out after 20000 ms of inactivity (configured by client requestHandler).',
    ),
    { name: 'TimeoutError' },
  );
/** Its connection timeout: nothing was sent. */
const neverConnected = () =>
  Object.assign(
    new Error(
      '@smithy/node-http-handler - the request socket did not establish a connection with the server within the configured timeout of 3000 ms.',
    ),
    { name: 'TimeoutError' },
  );
const throttled = () =>
  new ThrottledException({ message: 'Rate exceeded', $metadata: { httpStatusCode: 400 } });
const accepted = { MessageId: '5b4a3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d', $metadata: { httpStatusCode: 200 } };

function sns() {
  const client = new SNSClient({ region: 'eu-central-1' });
  const mock = mockClient(client);
  return { mock, notifier: new SnsNotifier(client, TOPIC, retry) };
}

describe('SnsNotifier: attempts that may have been delivered', () => {
  it('a timed-out attempt, then success: the message may have gone out twice', async () => {
    const { mock, notifier } = sns();
    mock.on(PublishCommand).rejectsOnce(requestTimedOut()).resolves(accepted);
    expect(await notifier.publish(exampleEscalation())).toEqual({ mayHaveDuplicated: true });
    expect(mock.commandCalls(PublishCommand)).toHaveLength(2);
  });

  it('refused before it went out (throttled, never connected), then success: no duplicate', async () => {
    const { mock, notifier } = sns();
    mock.on(PublishCommand).rejectsOnce(throttled()).rejectsOnce(neverConnected()).resolves(accepted);
    expect(await notifier.publish(exampleEscalation())).toEqual({ mayHaveDuplicated: false });
    expect(mock.commandCalls(PublishCommand)).toHaveLength(3);
  });

  it('every attempt timed out: the error says one may have been delivered', async () => {
    const { mock, notifier } = sns();
    mock.on(PublishCommand).rejects(requestTimedOut());
    await expect(notifier.publish(exampleEscalation())).rejects.toMatchObject({
      name: 'TimeoutError',
      resultMayHaveLanded: true,
    });
    expect(mock.commandCalls(PublishCommand)).toHaveLength(3);
  });

  it('an answer of 200 whose body failed (stalled, or did not parse) was accepted: not sent again', async () => {
    // The SDK gives the answer's $metadata to an error raised reading its body.
    const bodyStalled = () => Object.assign(requestTimedOut(), { $metadata: { httpStatusCode: 200 } });
    const garbled = () =>
      Object.assign(new SyntaxError('Unexpected end of JSON input'), { $metadata: { httpStatusCode: 200 } });
    for (const answer of [bodyStalled, garbled]) {
      const { mock, notifier } = sns();
      mock.on(PublishCommand).rejectsOnce(answer()).resolves(accepted);
      expect(await notifier.publish(exampleEscalation())).toEqual({ mayHaveDuplicated: false });
      expect(mock.commandCalls(PublishCommand)).toHaveLength(1);
    }
    // After an attempt whose answer was lost, the one answered 200 may be its second copy.
    const { mock, notifier } = sns();
    mock
      .on(PublishCommand)
      .rejectsOnce(requestTimedOut())
      .rejectsOnce(Object.assign(requestTimedOut(), { $metadata: { httpStatusCode: 200 } }));
    expect(await notifier.publish(exampleEscalation())).toEqual({ mayHaveDuplicated: true });
    expect(mock.commandCalls(PublishCommand)).toHaveLength(2);
  });

  it('every attempt refused before it went out: the error says none was delivered', async () => {
    const { mock, notifier } = sns();
    mock.on(PublishCommand).rejectsOnce(neverConnected()).rejects(throttled());
    await expect(notifier.publish(exampleEscalation())).rejects.toMatchObject({
      name: 'ThrottledException',
      resultMayHaveLanded: false,
    });
  });
});

describe('the gate: an escalation whose answer was lost', () => {
  const dynamo = useLocalDynamo();

  /** An escalating gate whose Publish is delivered, then times out `times` times (every attempt by default). */
  async function escalating(times = Number.POSITIVE_INFINITY): Promise<Harness> {
    const h = await createHarness(dynamo());
    h.scanner.findings = exampleFindings('orders-worker.list-findings.json');
    let lost = 0;
    h.onEscalation = async () => {
      if (lost++ < times) throw requestTimedOut();
    };
    await h.approvalStarted();
    return h;
  }

  it('delivered, timed out, sent again: ACTED with one accepted Publish, and the record says two may be out', async () => {
    const h = await escalating(1);
    await h.scanFinished();
    expect(h.messages).toHaveLength(2);
    const gate = await h.gate();
    expect(gate).toMatchObject({ state: 'ACTED', outcome: 'ESCALATE', notifications: 1 });
    expect(gate?.timeline.at(-1)?.what).toBe(
      'escalated: notification sent (an earlier attempt, its answer lost, may have been delivered too)',
    );
  });

  it('every attempt delivered and timed out: the record and the log say it may have gone out; the sweep sends again', async () => {
    const h = await escalating();
    await expect(h.scanFinished()).rejects.toThrow();
    expect(h.messages).toHaveLength(3);
    const failed = await h.gate();
    // Fail closed as before: DECIDED, nothing approved, the lease given back for the sweep.
    expect(failed).toMatchObject({ state: 'DECIDED', outcome: 'ESCALATE', notifications: 0 });
    expect(failed?.actingUntil).toBeUndefined();
    const what = "sending the escalation (an attempt's answer was lost: it may have gone out all the same)";
    expect(failed?.timeline.at(-1)?.what).toBe(`acting failed: ${what}`);
    expect(logLines.join('\n')).toContain(what);

    h.onEscalation = undefined;
    h.clock.advance(MINUTE);
    await h.sweep();
    expect(h.messages).toHaveLength(4);
    expect(await h.gate()).toMatchObject({ state: 'ACTED', notifications: 1 });
  });
});
