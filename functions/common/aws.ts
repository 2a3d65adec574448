import { createAwsAdapters } from '../../adapters/aws/index.js';
import { buildAwsRuntime } from './aws-runtime.js';
import type { Runtime } from './runtime.js';

/** The runtime of the functions that decide and act: every AWS adapter. */
export function awsRuntime(env: NodeJS.ProcessEnv = process.env): Runtime {
  return buildAwsRuntime(env, (region, topicArn) => createAwsAdapters({ region, topicArn }));
}
