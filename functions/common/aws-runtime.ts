import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AwsAdapters } from '../../adapters/aws/index.js';
import type { Discovery } from '../../shared/gate/discovery.js';
import { DEFAULT_CONFIG, GateService } from '../../shared/gate/gate.js';
import { awsBase } from './aws-base.js';
import { loadPolicyBundleSource } from './policy-bundle.js';
import type { Runtime } from './runtime.js';

/**
 * The runtime of the functions that decide and act, over the given AWS adapters: `awsBase` plus
 * `TOLLGATE_TOPIC_ARN`, `TOLLGATE_SCAN_SOURCE` (`inspector` | `ecr`) and `TOLLGATE_POLICY_FILE` (default:
 * `policy.json` beside the bundle, the policy bundle written at synth time by `infra/bundling.ts`; never YAML,
 * so the YAML parser is not in the bundle).
 */
export function buildAwsRuntime(
  env: NodeJS.ProcessEnv,
  adapters: (region: string, topicArn: string | undefined) => AwsAdapters,
  discovery?: (parts: DiscoveryParts) => Discovery | undefined,
): Runtime {
  const { region, deps, logger, metrics } = awsBase(env);
  // The stack always sets it: anything else (a typo, `ECR`, unset) would quietly read the other scanner's
  // findings, or none.
  const scanSource = env.TOLLGATE_SCAN_SOURCE;
  if (scanSource !== 'inspector' && scanSource !== 'ecr')
    throw new Error(
      `TOLLGATE_SCAN_SOURCE: expected inspector or ecr; got ${JSON.stringify(scanSource) ?? 'nothing (unset)'}`,
    );
  const policyFile = env.TOLLGATE_POLICY_FILE ?? join(dirname(fileURLToPath(import.meta.url)), 'policy.json');
  const policy = loadPolicyBundleSource(policyFile);
  if (!policy.ok)
    logger.error('the policy is invalid: every decision will escalate', { problem: policy.problem });
  const built = adapters(region, env.TOLLGATE_TOPIC_ARN);
  const gate = new GateService({
    ...built,
    ...deps,
    policy,
    config: {
      ...DEFAULT_CONFIG,
      ...deps.config,
      scanSource,
    },
  });
  return {
    gate,
    logger,
    metrics,
    policyInvalid: !policy.ok,
    discovery: discovery?.({ region, adapters: built, deps, logger, gate }),
  };
}

/** What a discovery is built from: the runtime's own adapters, store and gate. */
export interface DiscoveryParts {
  readonly region: string;
  readonly adapters: AwsAdapters;
  readonly deps: ReturnType<typeof awsBase>['deps'];
  readonly logger: Runtime['logger'];
  readonly gate: GateService;
}
