import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { EventBridgeEvents } from '../../adapters/aws/eventbridge.js';
import type { AwsAdapters } from '../../adapters/aws/index.js';
import { sdkClientConfig } from '../../adapters/aws/retry.js';
import { buildAwsRuntime } from './aws-runtime.js';
import type { Runtime } from './runtime.js';

/**
 * The runtime of approval-ended, which closes gates and records reviewers: the store and Tollgate's events
 * only. It never reads a pipeline or findings, never resolves an approval nor escalates, so the other SDK
 * clients stay out of its bundle (and its role has none of their permissions).
 */
export function closingRuntime(env: NodeJS.ProcessEnv = process.env): Runtime {
  return buildAwsRuntime(env, (region) => ({
    approvals: unavailable('CodePipeline'),
    findings: unavailable('Inspector and ECR findings'),
    images: unavailable('ECR images'),
    notifier: unavailable('SNS'),
    events: new EventBridgeEvents(new EventBridgeClient(sdkClientConfig(region || undefined))),
  }));
}

type Port = AwsAdapters['approvals'] &
  AwsAdapters['findings'] &
  AwsAdapters['images'] &
  AwsAdapters['notifier'];

/** A port this function has no client for: reaching it is a bug, said plainly rather than as an SDK error. */
function unavailable(what: string): Port {
  const fail = (): never => {
    throw new Error(`approval-ended has no ${what} client: closing a gate must not call it`);
  };
  return {
    pipelineState: fail,
    actionExecutions: fail,
    pipelineExecution: fail,
    putApprovalResult: fail,
    coverage: fail,
    inspectorFindings: fail,
    ecrScanFindings: fail,
    resolveTag: fail,
    publish: fail,
  };
}
