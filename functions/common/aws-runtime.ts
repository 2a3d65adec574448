import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import type { AwsAdapters } from '../../adapters/aws/index.js';
import { createDocumentClient, DynamoStore } from '../../adapters/dynamodb/store.js';
import { DEFAULT_CONFIG, GateService } from '../../shared/gate/gate.js';
import { loadPolicyBundleSource } from './policy-bundle.js';
import { logPort, metricsPort, type Runtime } from './runtime.js';

/**
 * A Lambda runtime over the given AWS adapters, built once per cold start from the environment the stack sets:
 * `TOLLGATE_TABLE`, `TOLLGATE_TOPIC_ARN`, `TOLLGATE_SCAN_SOURCE` (`inspector` | `ecr`),
 * `TOLLGATE_POLICY_FILE` (default: `policy.json` beside the bundle, the policy bundle written at synth time by
 * `infra/bundling.ts`; never YAML, so the YAML parser is not in the bundle), `TOLLGATE_OWN_ROLES`
 * (comma-separated role names whose CloudTrail calls are Tollgate's own).
 */
export function buildAwsRuntime(
  env: NodeJS.ProcessEnv,
  adapters: (region: string, topicArn: string | undefined) => AwsAdapters,
): Runtime {
  const table = env.TOLLGATE_TABLE;
  if (!table) throw new Error('TOLLGATE_TABLE is not set: the function cannot find its store');
  const region = env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? '';
  const scanSource = env.TOLLGATE_SCAN_SOURCE === 'ecr' ? 'ecr' : 'inspector';
  const logger = new Logger({ serviceName: env.POWERTOOLS_SERVICE_NAME ?? 'tollgate' });
  const metrics = new Metrics({
    namespace: env.POWERTOOLS_METRICS_NAMESPACE ?? 'Tollgate',
    serviceName: env.POWERTOOLS_SERVICE_NAME ?? 'tollgate',
  });
  const policyFile = env.TOLLGATE_POLICY_FILE ?? join(dirname(fileURLToPath(import.meta.url)), 'policy.json');
  const policy = loadPolicyBundleSource(policyFile);
  if (!policy.ok)
    logger.error('the policy is invalid: every decision will escalate', { problem: policy.problem });
  const gate = new GateService({
    ...adapters(region, env.TOLLGATE_TOPIC_ARN),
    store: new DynamoStore(createDocumentClient({ region }), table),
    clock: { now: () => new Date() },
    log: logPort(logger),
    metrics: metricsPort(metrics),
    policy,
    config: {
      ...DEFAULT_CONFIG,
      region,
      account: undefined,
      scanSource,
      ownIdentities: (env.TOLLGATE_OWN_ROLES ?? '')
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== ''),
    },
  });
  return { gate, logger, metrics };
}
