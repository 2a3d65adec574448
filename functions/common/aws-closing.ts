import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { EventBridgeEvents } from '../../adapters/aws/eventbridge.js';
import { sdkClientConfig } from '../../adapters/aws/retry.js';
import { GateClosing } from '../../shared/gate/closing.js';
import { awsBase } from './aws-base.js';
import type { Runtime } from './runtime.js';

/**
 * The runtime of approval-ended, which closes gates and records reviewers: the store and Tollgate's events
 * only. It never reads a policy, a pipeline or findings, never resolves an approval nor escalates, so none of
 * that code or its SDK clients is in its bundle (and its role has none of their permissions).
 */
export function closingRuntime(env: NodeJS.ProcessEnv = process.env): Runtime<GateClosing> {
  const { region, deps, logger, metrics } = awsBase(env);
  const events = new EventBridgeEvents(new EventBridgeClient(sdkClientConfig(region || undefined)));
  return { gate: new GateClosing({ ...deps, events }), logger, metrics };
}
