import { createAwsAdapters } from '../../adapters/aws/index.js';
import type { Discovery } from '../../shared/gate/discovery.js';
import { buildAwsRuntime, type DiscoveryParts } from './aws-runtime.js';
import type { Runtime } from './runtime.js';

/** The runtime of the functions that decide and act: every AWS adapter (and the sweep's discovery). */
export function awsRuntime(
  env: NodeJS.ProcessEnv = process.env,
  discovery?: (parts: DiscoveryParts) => Discovery | undefined,
): Runtime {
  return buildAwsRuntime(env, (region, topicArn) => createAwsAdapters({ region, topicArn }), discovery);
}
